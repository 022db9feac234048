import {createHash} from 'node:crypto'

import {IMAGES} from '../config/catalog.js'
import {type Config, postgresUser, type Role} from '../config/schema.js'
import type {GitlabTls} from '../config/tls.js'
import {networkPoliciesYaml, networkPolicyNames} from '../render/network-policies.js'
import type {StageDef, StepDef} from '../steps/stages.js'
import type {Secrets} from '../workspace/secrets.js'

/**
 * The stage scripts' parameters for one VM: what goes into its 0600 env file. Keys are the
 * names the scripts read (documented at the top of each script); every value is a string.
 * Secrets appear only here, never on a command line.
 */
export type StageParams = Record<string, string>

/** The VMs' addresses (from state.json after provisioning, else from autolabs.yaml). */
export type VmAddresses = Record<Role, string>

/**
 * SHA-256 of SeaweedFS release tarballs we have verified, by version and architecture.
 * SeaweedFS publishes no SHA-256 (only an .md5 beside each archive), so an entry needs the
 * archive downloaded and hashed by us; none is here yet (4.44 could not be downloaded where it
 * was pinned). A release without an entry is verified against its published MD5, which
 * catches a damaged download but not a tampered release; the stage warns.
 */
export const SEAWEEDFS_SHA256: Record<string, Partial<Record<'amd64' | 'arm64', string>>> = {}

/** Ports a role's services listen on: open to the VM subnet (ROLE_PORTS) and, for what people use directly, to the admin networks too (PUBLIC_PORTS). */
export function rolePorts(role: Role, config: Config): {subnet: string[]; public: string[]} {
  const g = config.services.gitlab
  switch (role) {
    case 'database':
      return {subnet: ['5432/tcp', '6379/tcp', `${config.services.objectStorage.port}/tcp`], public: []}
    case 'gitlab': {
      // GitLab's nginx listens on the external URL's port: http://host:8929 needs 8929 open too.
      const urlPort = g.externalUrl ? new URL(g.externalUrl).port : ''
      const extra = urlPort && urlPort !== '80' && urlPort !== '443' ? [`${urlPort}/tcp`] : []
      const web = ['80/tcp', '443/tcp', ...extra, `${g.sshPort}/tcp`, `${g.registryPort}/tcp`]
      return {subnet: web, public: web}
    }
    case 'k8s':
      return {subnet: ['6443/tcp', '80/tcp', '443/tcp', '10250/tcp'], public: ['6443/tcp', '80/tcp', '443/tcp']}
  }
}

/** Env-file variable holding database `db`'s password ("-" is not valid in a shell name). */
export function pgPasswordVar(db: string): string {
  return `PG_PASSWORD__${db.replaceAll('-', '_')}`
}

/** GitLab's database on database-vm (one of services.postgres.databases). */
export const GITLAB_DATABASE = 'gitlab'

/** The parameter naming database `db`'s owner (services.postgres.users, default `<db>_user`). */
export function pgUserVar(db: string): string {
  return `PG_USER__${db.replaceAll('-', '_')}`
}

export function gitlabExternalUrl(config: Config, ips: VmAddresses): string {
  return config.services.gitlab.externalUrl ?? `http://${ips.gitlab}`
}

export function buildParams(
  role: Role,
  config: Config,
  secrets: Secrets,
  ips: VmAddresses,
  arch: 'amd64' | 'arm64' = 'amd64',
  tls: GitlabTls | null = null,
): StageParams {
  const ports = rolePorts(role, config)
  const p: StageParams = {
    VM_ROLE: role,
    VM_IP: ips[role],
    VM_SUBNET: config.network.subnet,
    ADMIN_CIDRS: config.network.adminCidrs.join(' '),
    APT_PROXY: config.network.aptProxy ?? '',
    ROLE_PORTS: ports.subnet.join(' '),
    PUBLIC_PORTS: ports.public.join(' '),
  }
  const s = config.services
  if (role === 'database') {
    Object.assign(p, {
      PG_VERSION: String(s.postgres.version),
      PG_WAL_ARCHIVE: String(s.postgres.walArchiving),
      PG_MAX_CONNECTIONS: String(s.postgres.maxConnections),
      PG_DATABASES: s.postgres.databases.join(' '),
      REDIS_VERSION: s.redis.version,
      REDIS_PASSWORD: secrets.redis.password,
      SEAWEEDFS_VERSION: s.objectStorage.version,
      SEAWEEDFS_SHA256: SEAWEEDFS_SHA256[s.objectStorage.version]?.[arch] ?? '',
      S3_PORT: String(s.objectStorage.port),
      S3_ACCESS_KEY: secrets.objectStorage.accessKey,
      S3_SECRET_KEY: secrets.objectStorage.secretKey,
      S3_BUCKETS: s.objectStorage.buckets.join(' '),
    })
    for (const db of s.postgres.databases) {
      const pw = secrets.postgres.users[db]
      if (!pw) throw new Error(`secrets.postgres.users.${db} is missing`)
      p[pgPasswordVar(db)] = pw
      p[pgUserVar(db)] = postgresUser(config, db)
    }
  }
  if (role === 'gitlab') {
    Object.assign(p, {
      GITLAB_VERSION: s.gitlab.version,
      GITLAB_EXTERNAL_URL: gitlabExternalUrl(config, ips),
      GITLAB_SSH_PORT: String(s.gitlab.sshPort),
      GITLAB_REGISTRY_PORT: String(s.gitlab.registryPort),
      GITLAB_SHM_SIZE: s.gitlab.shmSize,
      GITLAB_ROOT_PASSWORD: secrets.gitlab.rootPassword,
      GITLAB_EXTERNAL_DB: String(s.gitlab.externalDatabase),
      GITLAB_DB_NAME: GITLAB_DATABASE,
      GITLAB_DB_USER: postgresUser(config, GITLAB_DATABASE),
      GITLAB_DB_PASSWORD: secrets.postgres.users.gitlab ?? '',
      DB_HOST: ips.database,
      RUNNER_VERSION: s.gitlab.runnerVersion,
      // PEM text: the key is a secret like the passwords (0600 env file, never argv).
      GITLAB_TLS_CERT: tls?.certPem ?? '',
      GITLAB_TLS_KEY: tls?.keyPem ?? '',
      GITLAB_TLS_CA: tls?.caPem ?? '',
      GITLAB_LETSENCRYPT: String(s.gitlab.tls.letsencrypt),
    })
  }
  if (role === 'k8s') {
    Object.assign(p, {
      K8S_VERSION: s.kubernetes.version,
      POD_CIDR: s.kubernetes.podCidr,
      SERVICE_CIDR: s.kubernetes.serviceCidr,
      CALICO_VERSION: s.kubernetes.calicoVersion,
      INGRESS_VERSION: s.kubernetes.ingressVersion,
      K8S_NAMESPACES: s.kubernetes.namespaces.join(' '),
      K8S_NETWORK_POLICIES: networkPoliciesYaml(config),
      K8S_NETWORK_POLICY_NAMES: networkPolicyNames(config).join(' '),
      BOOTSTRAP_TOKEN: secrets.kubernetes.bootstrapToken,
      REGISTRY: `${ips.gitlab}:${s.gitlab.registryPort}`,
    })
  }
  return p
}

/** The env file the scripts source: KEY='value' lines (single-quoted, so nothing expands). */
export function envFileText(params: StageParams): string {
  return (
    Object.entries(params)
      .map(([k, v]) => {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`bad parameter name ${k}`)
        return `${k}='${v.replaceAll("'", `'\\''`)}'`
      })
      .join('\n') + '\n'
  )
}

/** The parameters a step declares as inputs (a trailing `*` matches a prefix). */
export function stepInputs(step: StepDef, params: StageParams): Array<[string, string]> {
  const out: Array<[string, string]> = []
  for (const name of step.inputs ?? []) {
    if (name.endsWith('*')) {
      const prefix = name.slice(0, -1)
      for (const k of Object.keys(params).sort()) if (k.startsWith(prefix)) out.push([k, params[k]])
    } else out.push([name, params[name] ?? ''])
  }
  return out
}

/**
 * What a step's result depends on: its stage script and the shared library (any change to the
 * code re-runs the stage), the step's id and the values of its declared inputs (a changed
 * password re-runs only the step that sets it).
 */
export function stepInputHash(stage: StageDef, step: StepDef, params: StageParams, scriptText: string, libText: string): string {
  const h = createHash('sha256')
  h.update(`stage:${stage.id}\nstep:${step.id}\n`)
  h.update(createHash('sha256').update(scriptText).digest('hex'))
  h.update(createHash('sha256').update(libText).digest('hex'))
  for (const [k, v] of stepInputs(step, params)) h.update(`\n${k}=${createHash('sha256').update(v).digest('hex')}`)
  return `sha256:${h.digest('hex')}`
}

/** The login user on the VMs: ssh.user, else the cloud image's default user. */
export function sshUser(config: Config): string {
  return config.ssh.user ?? IMAGES[config.image.os].defaultUser
}
