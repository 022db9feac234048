import {BlockList} from 'node:net'

import {parseAllDocuments} from 'yaml'
import {describe, expect, it} from 'vitest'

import {configSchema} from '../../../src/config/schema.js'
import {networkPolicies, networkPoliciesYaml, networkPolicyNames} from '../../../src/render/network-policies.js'
import {loadSchemas, validate} from '../../support/k8s-schema.js'

const config = configSchema.parse({})
const schemas = loadSchemas('networking-v1-networkpolicy.json')
const NP = 'io.k8s.api.networking.v1.NetworkPolicy'

type Selector = {matchLabels?: Record<string, string>; matchExpressions?: Array<{key: string; operator: string; values?: string[]}>}
type Peer = {podSelector?: Selector; namespaceSelector?: Selector; ipBlock?: {cidr: string; except?: string[]}}
type Rule = {from?: Peer[]; to?: Peer[]; ports?: Array<{protocol?: string; port?: number | string}>}
type Policy = {metadata: {name: string; namespace: string}; spec: {podSelector: Selector; policyTypes?: string[]; ingress?: Rule[]; egress?: Rule[]}}

/** An endpoint: a pod (namespace + labels) or an address outside the cluster. */
type End = {ns: string; labels?: Record<string, string>; ip?: string} | {ip: string; ns?: undefined}

const matches = (sel: Selector, labels: Record<string, string>) =>
  Object.entries(sel.matchLabels ?? {}).every(([k, v]) => labels[k] === v) &&
  (sel.matchExpressions ?? []).every((e) => {
    const has = e.key in labels
    if (e.operator === 'In') return has && e.values!.includes(labels[e.key])
    if (e.operator === 'NotIn') return !has || !e.values!.includes(labels[e.key])
    if (e.operator === 'Exists') return has
    return !has
  })
const inCidr = (ip: string, cidr: string) => {
  const [net, bits] = cidr.split('/')
  const b = new BlockList()
  b.addSubnet(net, Number(bits), 'ipv4')
  return b.check(ip, 'ipv4')
}
/** Whether `peer`, written in a policy of namespace `ns`, selects endpoint `e` (the NetworkPolicyPeer rules). */
function peerMatches(peer: Peer, ns: string, e: End): boolean {
  if (peer.ipBlock) return e.ip !== undefined && e.ns === undefined && inCidr(e.ip, peer.ipBlock.cidr) && !(peer.ipBlock.except ?? []).some((x) => inCidr(e.ip!, x))
  if (e.ns === undefined) return false
  const nsLabels = {'kubernetes.io/metadata.name': e.ns}
  const nsOk = peer.namespaceSelector ? matches(peer.namespaceSelector, nsLabels) : e.ns === ns
  return nsOk && (peer.podSelector ? matches(peer.podSelector, e.labels ?? {}) : true)
}
const portOk = (rule: Rule, port: number, protocol: string) => !rule.ports || rule.ports.some((p) => (p.protocol ?? 'TCP') === protocol && (p.port === undefined || p.port === port))
/**
 * Kubernetes' NetworkPolicy semantics: a direction is isolated once a policy of that type
 * selects the pod; then the traffic must match a rule of one of those policies. A connection
 * needs the sender's egress and the receiver's ingress.
 */
function allowed(policies: Policy[], from: End, to: End, port: number, protocol = 'TCP'): boolean {
  const side = (pod: End, type: 'Ingress' | 'Egress', other: End) => {
    if (pod.ns === undefined) return true
    const selecting = policies.filter((p) => p.metadata.namespace === pod.ns && matches(p.spec.podSelector, pod.labels ?? {}) && (p.spec.policyTypes ?? ['Ingress']).includes(type))
    if (selecting.length === 0) return true
    return selecting.some((p) =>
      ((type === 'Ingress' ? p.spec.ingress : p.spec.egress) ?? []).some(
        (r) => portOk(r, port, protocol) && (((type === 'Ingress' ? r.from : r.to) ?? undefined) === undefined || (type === 'Ingress' ? r.from! : r.to!).some((peer) => peerMatches(peer, p.metadata.namespace, other))),
      ),
    )
  }
  return side(from, 'Egress', to) && side(to, 'Ingress', from)
}

describe('NetworkPolicies (src/render/network-policies.ts)', () => {
  const docs = parseAllDocuments(networkPoliciesYaml(config)).map((d) => d.toJS() as Policy)

  it('are valid networking.k8s.io/v1 NetworkPolicy objects for Kubernetes 1.35 (strict: no unknown field)', () => {
    expect(docs.length).toBeGreaterThan(0)
    for (const d of docs) expect(validate(d, NP, schemas), `${d.metadata.namespace}/${d.metadata.name}`).toEqual([])
  })

  it('pass the API server’s own validation rules that a schema does not carry', () => {
    // pkg/apis/networking/validation (ValidateNetworkPolicySpec) and meta/v1 validation.
    for (const d of docs) {
      expect(d.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
      for (const t of d.spec.policyTypes ?? []) expect(['Ingress', 'Egress']).toContain(t)
      for (const r of [...(d.spec.ingress ?? []), ...(d.spec.egress ?? [])]) {
        for (const p of r.ports ?? []) expect(['TCP', 'UDP', 'SCTP']).toContain(p.protocol)
        for (const peer of [...(r.from ?? []), ...(r.to ?? [])]) {
          // ipBlock excludes the selectors; each except is inside the cidr.
          if (peer.ipBlock) {
            expect(peer.podSelector ?? peer.namespaceSelector).toBeUndefined()
            for (const x of peer.ipBlock.except ?? []) expect(inCidr(x.split('/')[0], peer.ipBlock.cidr)).toBe(true)
          }
          for (const e of [...(peer.namespaceSelector?.matchExpressions ?? []), ...(peer.podSelector?.matchExpressions ?? [])]) {
            expect(['In', 'NotIn', 'Exists', 'DoesNotExist']).toContain(e.operator)
            if (e.operator === 'In' || e.operator === 'NotIn') expect(e.values!.length).toBeGreaterThan(0)
          }
        }
      }
    }
  })

  it('the schema check catches a misspelt field and a wrong type (it can fail)', () => {
    const bad = structuredClone(docs[0]) as unknown as {spec: Record<string, unknown>}
    bad.spec.podSelektor = {}
    bad.spec.policyTypes = 'Ingress'
    expect(validate(bad, NP, schemas).sort()).toEqual(['$.spec.policyTypes: expected an array', '$.spec: unknown field "podSelektor"'])
    const noCidr = structuredClone(docs.find((d) => d.metadata.namespace === 'labs')!) as unknown as {spec: {egress: Array<{to: Array<Record<string, unknown>>}>}}
    noCidr.spec.egress[2].to[0] = {ipBlock: {except: ['10.0.0.0/8']}}
    expect(validate(noCidr, NP, schemas)).toEqual(['$.spec.egress[2].to[0].ipBlock: missing required field "cidr"'])
  })

  describe('what they allow, by Kubernetes’ NetworkPolicy rules', () => {
    const pols = networkPolicies(config) as unknown as Policy[]
    const pod = (ns: string, labels: Record<string, string> = {app: 'x'}) => ({ns, labels})
    const platform = ['platform', 'auth', 'infrastructure', 'messaging']

    it('labs cannot reach the platform, auth, infrastructure or messaging', () => {
      for (const ns of platform) expect(allowed(pols, pod('labs'), pod(ns), 8080), ns).toBe(false)
    })
    it('the platform’s namespaces reach each other, and labs', () => {
      expect(allowed(pols, pod('platform'), pod('messaging'), 5672)).toBe(true)
      expect(allowed(pols, pod('platform'), pod('auth'), 8080)).toBe(true)
      expect(allowed(pols, pod('auth'), pod('infrastructure'), 6379)).toBe(true)
      expect(allowed(pols, pod('platform'), pod('labs'), 8000)).toBe(true)
    })
    it('the ingress controller reaches the published namespaces only', () => {
      for (const ns of ['platform', 'auth', 'labs']) expect(allowed(pols, pod('ingress-nginx', {app: 'nginx-ingress'}), pod(ns), 80), ns).toBe(true)
      for (const ns of ['infrastructure', 'messaging']) expect(allowed(pols, pod('ingress-nginx', {app: 'nginx-ingress'}), pod(ns), 80), ns).toBe(false)
    })
    it('labs keep DNS, each other and the internet, but not the VMs or other pods’ addresses', () => {
      const dns = pod('kube-system', {'k8s-app': 'kube-dns'})
      expect(allowed(pols, pod('labs'), dns, 53, 'UDP')).toBe(true)
      expect(allowed(pols, pod('labs'), dns, 53, 'TCP')).toBe(true)
      expect(allowed(pols, pod('labs'), pod('labs'), 8000)).toBe(true)
      expect(allowed(pols, pod('labs'), {ip: '151.101.1.1'}, 443)).toBe(true)
      expect(allowed(pols, pod('labs'), {ip: '192.168.100.20'}, 5432)).toBe(false) // database-vm
      expect(allowed(pols, pod('labs'), {ip: '10.244.3.7'}, 8080)).toBe(false) // a pod by address
    })
    it('other namespaces (kube-system) cannot reach the platform either', () => {
      expect(allowed(pols, pod('kube-system'), pod('platform'), 8080)).toBe(false)
      expect(allowed(pols, pod('default'), pod('auth'), 8080)).toBe(false)
    })
  })

  it('follow the configured namespaces: a namespace not configured gets no policy and is not named', () => {
    const c = configSchema.parse({services: {kubernetes: {namespaces: ['platform', 'labs', 'ingress-nginx']}}})
    expect(networkPolicyNames(c)).toEqual(['platform/default-deny-ingress', 'platform/allow-from-platform', 'platform/allow-from-ingress', 'labs/labs-isolation'])
    expect(networkPoliciesYaml(c)).not.toMatch(/messaging|auth|infrastructure/)
  })
})
