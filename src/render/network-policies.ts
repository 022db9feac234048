import {stringify} from 'yaml'

import type {Config} from '../config/schema.js'

/**
 * The cluster's NetworkPolicies (networking.k8s.io/v1), one of the three things the design
 * document's single-network MVP relies on ("Сетевая архитектура"). What each namespace is for
 * decides its policies:
 *  - the ingress controller's namespace receives the outside world on its hostPorts (the VM
 *    firewall limits who): no policy;
 *  - `labs` holds students' work: it takes traffic from itself, the ingress controller and the
 *    platform, and may send only to DNS, to namespaces that are not the platform's, and outside
 *    the cluster except the pod network and the VMs (the databases, GitLab, the API server);
 *  - every other namespace is the platform's: default-deny ingress, then traffic from the
 *    platform's namespaces and, where services are published (PUBLISHED), from the ingress
 *    controller.
 * Kubernetes has no "deny" rule: isolation is an allow-list once a policy selects a pod, so
 * `labs` is kept out of the platform by both sides (the platform's ingress lists only platform
 * namespaces; labs' egress excludes them). Applied by the k8s stage (network_policies), checked
 * by `autolabs status`; docs/network-policies.md explains them for teachers.
 */
export const INGRESS_NAMESPACE = 'ingress-nginx'
export const LABS_NAMESPACE = 'labs'
/** Namespaces whose services the ingress controller routes to. */
export const PUBLISHED = ['platform', 'auth', LABS_NAMESPACE]
/** The label every policy autolabs manages carries (how the stage finds stale ones). */
export const MANAGED_BY = {'app.kubernetes.io/managed-by': 'autolabs'}
/** Set by Kubernetes on every namespace (since 1.22): policies select namespaces by name with it. */
const NAME_LABEL = 'kubernetes.io/metadata.name'

type Peer = Record<string, unknown>
interface Policy {
  apiVersion: 'networking.k8s.io/v1'
  kind: 'NetworkPolicy'
  metadata: {name: string; namespace: string; labels: Record<string, string>}
  spec: Record<string, unknown>
}

const namespaces = (op: 'In' | 'NotIn', names: string[]): Peer => ({namespaceSelector: {matchExpressions: [{key: NAME_LABEL, operator: op, values: names}]}})
const policy = (namespace: string, name: string, spec: Record<string, unknown>): Policy => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: {name, namespace, labels: {...MANAGED_BY}},
  spec,
})

/** The platform's namespaces: the configured ones except the ingress controller's and labs. */
export function platformNamespaces(config: Config): string[] {
  return config.services.kubernetes.namespaces.filter((n) => n !== INGRESS_NAMESPACE && n !== LABS_NAMESPACE)
}

export function networkPolicies(config: Config): Policy[] {
  const all = config.services.kubernetes.namespaces
  const platform = platformNamespaces(config)
  const out: Policy[] = []
  const fromIngress = all.includes(INGRESS_NAMESPACE) ? [namespaces('In', [INGRESS_NAMESPACE])] : []
  for (const ns of platform) {
    out.push(policy(ns, 'default-deny-ingress', {podSelector: {}, policyTypes: ['Ingress']}))
    out.push(policy(ns, 'allow-from-platform', {podSelector: {}, policyTypes: ['Ingress'], ingress: [{from: [namespaces('In', platform)]}]}))
    if (PUBLISHED.includes(ns) && fromIngress.length > 0) {
      out.push(policy(ns, 'allow-from-ingress', {podSelector: {}, policyTypes: ['Ingress'], ingress: [{from: fromIngress}]}))
    }
  }
  if (all.includes(LABS_NAMESPACE)) {
    const k8s = config.services.kubernetes
    out.push(
      policy(LABS_NAMESPACE, 'labs-isolation', {
        podSelector: {},
        policyTypes: ['Ingress', 'Egress'],
        ingress: [{from: [namespaces('In', [LABS_NAMESPACE, ...platform]), ...fromIngress]}],
        egress: [
          // DNS: CoreDNS in kube-system (kubeadm labels its pods k8s-app=kube-dns).
          {
            to: [{...namespaces('In', ['kube-system']), podSelector: {matchLabels: {'k8s-app': 'kube-dns'}}}],
            ports: [
              {protocol: 'UDP', port: 53},
              {protocol: 'TCP', port: 53},
            ],
          },
          {to: [namespaces('NotIn', platform)]},
          {to: [{ipBlock: {cidr: '0.0.0.0/0', except: [k8s.podCidr, config.network.subnet]}}]},
        ],
      }),
    )
  }
  return out
}

/** The policies as one multi-document YAML stream (what the k8s stage applies). */
export function networkPoliciesYaml(config: Config): string {
  return networkPolicies(config)
    .map((p) => stringify(p, {lineWidth: 0}))
    .join('---\n')
}

/** "namespace/name" of each policy (what `status` expects to find). */
export function networkPolicyNames(config: Config): string[] {
  return networkPolicies(config).map((p) => `${p.metadata.namespace}/${p.metadata.name}`)
}
