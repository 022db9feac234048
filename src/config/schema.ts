import {z} from 'zod'

import {parseJumpHost} from '../ssh/jump-spec.js'
import {DEFAULT_BUCKETS, DEFAULT_NAMESPACES, DESIGN_SIZES, GUEST_OS, VERSIONS} from './catalog.js'
import {LIMITS, type RuleName, ruleProblem, urlProblem} from './grammar.js'

/**
 * The schema of autolabs.yaml: every non-secret setting. Secrets live in
 * .autolabs/secrets.yaml (see src/workspace/secrets.ts). Unknown keys are rejected.
 * Cross-field rules are in validate.ts.
 */

export const ROLES = ['gitlab', 'database', 'k8s'] as const
export type Role = (typeof ROLES)[number]

/** A string following one rule of the grammar table (grammar.ts). */
const str = (name: RuleName) =>
  z.string({message: 'must be a string'}).check((ctx) => {
    const problem = ruleProblem(name, ctx.value)
    if (problem) ctx.issues.push({code: 'custom', message: problem, input: ctx.value})
  })
const url = (schemes: string[], opts: {path?: boolean} = {}) =>
  z.string({message: 'must be a string'}).check((ctx) => {
    const problem = urlProblem(ctx.value, {schemes, ...opts})
    if (problem) ctx.issues.push({code: 'custom', message: problem, input: ctx.value})
  })

const dnsLabel = str('dnsLabel')

const ipv4 = z.ipv4({message: 'must be an IPv4 address like 192.168.100.10'})
const cidr = z.cidrv4({message: 'must be an IPv4 network in CIDR form like 192.168.100.0/24'})
const vmid = z
  .number({message: 'must be a number'})
  .int('must be a whole number')
  .min(100, 'must be at least 100 (Proxmox reserves lower VMIDs)')
  .max(999_999_999, 'must be at most 999999999')

/** An age public key (X25519 age1…, or the post-quantum hybrid age1pq1…), bech32. */
export const AGE_RECIPIENT = /^age1(?:pq1)?[02-9ac-hj-np-z]{58,}$/

const vmSize = (role: Role) =>
  z
    .strictObject({
      name: dnsLabel.default(`${role}-vm`),
      vmid: vmid.default({gitlab: 110, database: 120, k8s: 130}[role]),
      cores: z.number().int('must be a whole number').min(1, 'must be at least 1').max(LIMITS.cores, `must be at most ${LIMITS.cores}`).default(DESIGN_SIZES[role].cores),
      memoryMiB: z
        .number()
        .int('must be a whole number in MiB')
        .min(512, 'must be at least 512 MiB')
        .max(LIMITS.memoryMiB, `must be at most ${LIMITS.memoryMiB} MiB (4 TiB, the most Proxmox gives a VM)`)
        .default(DESIGN_SIZES[role].memoryMiB),
      diskGiB: z
        .number()
        .int('must be a whole number in GiB')
        .min(10, 'must be at least 10 GiB')
        .max(LIMITS.diskGiB, `must be at most ${LIMITS.diskGiB} GiB (128 TiB)`)
        .default(DESIGN_SIZES[role].diskGiB),
    })
    .prefault({})

export const configSchema = z.strictObject({
  version: z.literal(1, {message: 'must be 1 (the autolabs.yaml format version)'}).default(1),
  name: dnsLabel.default('autolabs'),
  proxmox: z
    .strictObject({
      url: url(['https:']).default('https://pve.example:8006'),
      node: str('nodeName').default('pve'),
      auth: z.enum(['token', 'password']).default('token'),
      tokenId: str('tokenId').default('root@pam!autolabs'),
      username: str('userRealm').default('root@pam'),
      fingerprint: z
        .string()
        .regex(/^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/, 'must be a SHA-256 fingerprint: 32 hex pairs separated by ":"')
        .nullable()
        .default(null),
      caFile: str('filePath').nullable().default(null),
      insecure: z.boolean().default(false),
      vmStorage: str('storageId').default('local-lvm'),
      imageStorage: str('storageId').default('local'),
      bridge: str('bridge').default('vmbr0'),
      templateVmid: vmid.default(9000),
      /** The least-privilege user, role and token autolabs creates for Terraform. */
      terraformUser: str('userRealm').default('autolabs@pve'),
      terraformRole: str('roleId').default('AutolabsTerraform'),
    })
    .prefault({}),
  image: z
    .strictObject({
      os: z.enum(GUEST_OS, {message: `must be one of ${GUEST_OS.join(', ')}`}).default('ubuntu-22.04'),
      /** Override the catalog's image URL (e.g. a local mirror). */
      url: url(['https:', 'http:'], {path: true}).nullable().default(null),
      /** SHA-256 (Ubuntu) or SHA-512 (Debian) of the image; resolved at init when null. */
      checksum: z.string().regex(/^([0-9a-f]{64}|[0-9a-f]{128})$/, 'must be a lowercase hex SHA-256 or SHA-512').nullable().default(null),
    })
    .prefault({}),
  network: z
    .strictObject({
      subnet: cidr.default('192.168.100.0/24'),
      gateway: ipv4.default('192.168.100.1'),
      dns: z.array(ipv4).min(1, 'needs at least one DNS server').max(3, 'Proxmox cloud-init takes at most 3 DNS servers').default(['1.1.1.1', '9.9.9.9']),
      searchDomain: str('dnsName').nullable().default(null),
      /** Where SSH is allowed from (ufw). Keys only; tighten to your admin network. */
      adminCidrs: z.array(cidr).min(1).default(['0.0.0.0/0']),
      /** apt proxy for offline/proxied installs (apt-cacher-ng, a university proxy). */
      aptProxy: str('aptProxy').nullable().default(null),
      vms: z
        .strictObject({
          gitlab: z.strictObject({ip: ipv4.default('192.168.100.10')}).prefault({}),
          database: z.strictObject({ip: ipv4.default('192.168.100.20')}).prefault({}),
          k8s: z.strictObject({ip: ipv4.default('192.168.100.30')}).prefault({}),
        })
        .prefault({}),
    })
    .prefault({}),
  vms: z
    .strictObject({
      gitlab: vmSize('gitlab'),
      database: vmSize('database'),
      k8s: vmSize('k8s'),
    })
    .prefault({}),
  ssh: z
    .strictObject({
      publicKeyFile: str('filePath').default('~/.ssh/id_ed25519.pub'),
      /** Private key used by autolabs; default: publicKeyFile without ".pub". */
      privateKeyFile: str('filePath').nullable().default(null),
      /** Login user on the VMs; default: the image's cloud user (ubuntu / debian). */
      user: str('linuxUser').nullable().default(null),
      /** How SSH reaches the VMs: auto (direct if routed, else via the Proxmox node), none, or user@host[:port]. */
      jumpHost: z
        .string()
        .refine((v) => v === 'auto' || v === 'none' || typeof parseJumpHost(v) !== 'string', {
          message: 'must be auto, none, or user@host[:port] (e.g. root@pve.example.lan or admin@10.0.0.2:2222)',
        })
        .default('auto'),
      /** The jump host's SSH host key (SHA256:…), checked on first contact; null = trust on first use. */
      jumpHostFingerprint: z
        .string()
        .regex(/^SHA256:[A-Za-z0-9+/]{43}$/, 'must be an SSH host key fingerprint like SHA256:… (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)')
        .nullable()
        .default(null),
    })
    .prefault({}),
  cloudInit: z
    .strictObject({
      /**
       * builtin: Proxmox's own cloud-init (user, keys, network) — needs only the API token.
       * snippet: also a user-data snippet (guest agent and apt proxy at first boot); the
       * provider uploads it over SSH to the node, so it needs root SSH to the Proxmox host.
       */
      mode: z.enum(['builtin', 'snippet']).default('builtin'),
      snippetStorage: str('storageId').default('local'),
    })
    .prefault({}),
  services: z
    .strictObject({
      postgres: z
        .strictObject({
          version: z.number().int().min(13, 'must be 13 or newer').max(18, 'must be 18 or older').default(VERSIONS.postgres),
          walArchiving: z.boolean().default(true),
          // GitLab's installation requirements ask for at least 400 (since 16.0 it opens two
          // connection pools to the same database), and the server is shared with the platform.
          maxConnections: z.number().int().min(100, 'must be 100 or more').max(10000, 'must be 10000 or less').default(400),
          databases: z.array(dnsLabel).min(1).default(['autolabs', 'zitadel', 'gitlab']),
          /**
           * The login role that owns each database, where it is not `<database>_user` (the design
           * document's names: autolabs_user, zitadel_user, gitlab_user). Workspaces deployed before
           * that default get their existing names pinned here (src/config/migrate.ts).
           */
          users: z
            .record(
              z.string(),
              z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a PostgreSQL role name: lower-case letters, digits and _, not starting with a digit, at most 63 characters'),
            )
            .default({}),
        })
        .prefault({}),
      redis: z
        .strictObject({
          version: z.string().regex(/^7(\.\d+){0,2}$/, 'must be a Redis 7 version like 7.2 (Redis 7 is pinned by design)').default(VERSIONS.redis),
        })
        .prefault({}),
      objectStorage: z
        .strictObject({
          engine: z.literal('seaweedfs', {message: 'must be seaweedfs (MinIO community edition is archived)'}).default('seaweedfs'),
          version: z.string().regex(/^\d+\.\d+$/, 'must be a SeaweedFS release like 4.44').default(VERSIONS.seaweedfs),
          port: z.number().int().min(1).max(65535).default(8333),
          buckets: z.array(dnsLabel).default(DEFAULT_BUCKETS),
        })
        .prefault({}),
      gitlab: z
        .strictObject({
          version: z.string().regex(/^\d+\.\d+\.\d+-ce\.\d+$/, 'must be a GitLab CE image tag like 19.6.0-ce.0').default(VERSIONS.gitlab),
          runnerVersion: z.string().regex(/^\d+\.\d+\.\d+$/, 'must be a version like 19.6.0').default(VERSIONS.gitlabRunner),
          /** Default: http://<gitlab ip>. */
          externalUrl: url(['https:', 'http:']).nullable().default(null),
          sshPort: z.number().int().min(1).max(65535).default(2222),
          registryPort: z.number().int().min(1).max(65535).default(5050),
          shmSize: z.string().regex(/^\d+[kmg]$/, 'must be a size like 256m').default('256m'),
          /** Use the PostgreSQL `gitlab` database on database-vm instead of GitLab's bundled one. */
          externalDatabase: z.boolean().default(true),
          /** HTTPS for an https:// externalUrl: the administrator's certificate, or Let's Encrypt. */
          tls: z
            .strictObject({
              certFile: str('filePath').nullable().default(null),
              keyFile: str('filePath').nullable().default(null),
              caFile: str('filePath').nullable().default(null),
              letsencrypt: z.boolean().default(false),
            })
            .prefault({}),
        })
        .prefault({}),
      kubernetes: z
        .strictObject({
          version: z.string().regex(/^1\.\d+$/, 'must be a Kubernetes minor like 1.36').default(VERSIONS.kubernetes),
          podCidr: cidr.default('10.244.0.0/16'),
          serviceCidr: cidr.default('10.96.0.0/12'),
          calicoVersion: z.string().regex(/^v\d+\.\d+\.\d+$/, 'must be a Calico release like v3.32.1').default(VERSIONS.calico),
          ingressVersion: z.string().regex(/^\d+\.\d+\.\d+$/).default(VERSIONS.nginxIngress),
          namespaces: z.array(dnsLabel).min(1).default(DEFAULT_NAMESPACES),
        })
        .prefault({}),
    })
    .prefault({}),
  backup: z
    .strictObject({
      keepDaily: z.number().int().min(0).max(10000, 'must be at most 10000').default(7),
      keepWeekly: z.number().int().min(0).max(10000, 'must be at most 10000').default(4),
      /** Proxmox storage for the scheduled vzdump job. */
      storage: str('storageId').default('local'),
      schedule: str('calendarEvent').default('02:00'),
      recipients: z.array(z.string().regex(AGE_RECIPIENT, 'must be an age public key (age1…, from `autolabs workspace keygen` or `age-keygen`)')).default([]),
      workspaceCopyTo: z.array(z.enum(ROLES)).default(['database']),
    })
    .prefault({}),
})

/** autolabs.yaml as the user writes it (everything optional). */
export type ConfigInput = z.input<typeof configSchema>
/** autolabs.yaml with every default applied. */
export type Config = z.output<typeof configSchema>

/** The login role that owns database `db`: services.postgres.users, else `<db>_user`. */
export function postgresUser(config: Pick<Config, 'services'>, db: string): string {
  return config.services.postgres.users[db] ?? `${db}_user`
}
