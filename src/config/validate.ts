import type {z} from 'zod'

import type {FieldIssue} from '../errors.js'
import {DESIGN_SIZES, gitlabMinPostgres, VERSIONS} from './catalog.js'
import {freeRange} from './defaults.js'
import {cidrContains, cidrsOverlap, hasHostBits, intToIp, ipToInt, parseCidr} from './net.js'
import {type Config, postgresUser, ROLES} from './schema.js'

/** Levenshtein distance, for "did you mean". */
export function editDistance(a: string, b: string): number {
  const dp = Array.from({length: b.length + 1}, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]
    dp[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1))
      prev = tmp
    }
  }
  return dp[b.length]
}

export function didYouMean(word: string, candidates: string[]): string | undefined {
  let best: string | undefined
  let bestD = Infinity
  for (const c of candidates) {
    const d = editDistance(word, c)
    if (d < bestD) {
      bestD = d
      best = c
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined
}

/** Known keys at a path of the schema (for "did you mean" on unknown keys). */
function knownKeysAt(schema: z.ZodType, path: PropertyKey[]): string[] {
  let cur: any = schema
  for (const seg of path) {
    cur = unwrap(cur)
    if (cur?.shape && typeof seg === 'string') cur = cur.shape[seg]
    else if (cur?.def?.type === 'array') cur = cur.def.element
    else return []
  }
  cur = unwrap(cur)
  return cur?.shape ? Object.keys(cur.shape) : []
}

function unwrap(s: any): any {
  while (s && ['default', 'prefault', 'optional', 'nullable', 'pipe'].includes(s.def?.type)) s = s.def.innerType ?? s.def.in
  return s
}

const joinPath = (path: PropertyKey[]) => path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.').replaceAll('.[', '[')

/** Turn zod's issues into field issues with a path, what is wrong, and a fix. */
export function zodIssuesToFieldIssues(schema: z.ZodType, issues: z.core.$ZodIssue[]): FieldIssue[] {
  const out: FieldIssue[] = []
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const known = knownKeysAt(schema, issue.path)
      for (const key of issue.keys) {
        const guess = didYouMean(key, known)
        out.push({
          path: joinPath([...issue.path, key]) || key,
          message: 'unknown key',
          fix: guess ? `did you mean "${guess}"?` : `known keys here: ${known.join(', ')}`,
        })
      }
      continue
    }
    let message = issue.message
    if (issue.code === 'invalid_type' && /received undefined/.test(message)) message = 'is required'
    if (issue.code === 'invalid_type') message = message.replace(/^Invalid input: /, '')
    out.push({path: joinPath(issue.path) || '(top level)', message})
  }
  return out
}

/**
 * Rules that span fields: addresses inside the subnet and distinct, CIDRs not overlapping,
 * VMIDs distinct, sizes within the design table, versions that can work together.
 * `given`: the paths the user has just given (flags, a prompt); where two fields clash, the
 * one given is blamed, not the default it ran into.
 */
export function crossFieldIssues(c: Config, given: ReadonlySet<string> = new Set()): FieldIssue[] {
  const issues: FieldIssue[] = []
  const err = (path: string, message: string, fix?: string) => issues.push({path, message, fix, severity: 'error'})
  /** A clash between `path` (checked) and `other`: blame `other` when only it was given. */
  const clash = (path: string, other: string, message: string, otherMessage: string, fix: string, otherFix = fix) =>
    given.has(other) && !given.has(path) ? err(other, otherMessage, otherFix) : err(path, message, fix)
  const warn = (path: string, message: string, fix?: string) => issues.push({path, message, fix, severity: 'warning'})
  const {subnet, gateway} = c.network
  const net = parseCidr(subnet)

  if (hasHostBits(subnet)) err('network.subnet', `has host bits set`, `use the network address ${intToIp(net.network)}/${net.prefix}`)
  if (net.prefix > 29) err('network.subnet', `/${net.prefix} is too small for a gateway and three VMs`, 'use a /29 or larger, e.g. a /24')
  if (!cidrContains(subnet, gateway)) err('network.gateway', `${gateway} is outside network.subnet ${subnet}`, 'pick an address inside the subnet')
  else if (ipToInt(gateway) === net.network) err('network.gateway', `${gateway} is the network address of ${subnet}`, 'pick a host address, e.g. the first one')
  else if (ipToInt(gateway) === net.broadcast) err('network.gateway', `${gateway} is the broadcast address of ${subnet}`, 'pick a host address, e.g. the first one')

  const seen = new Map<string, string>()
  for (const role of ROLES) {
    const path = `network.vms.${role}.ip`
    const ip = c.network.vms[role].ip
    if (!cidrContains(subnet, ip)) err(path, `${ip} is outside network.subnet ${subnet}`, `pick an address inside ${subnet}`)
    else if (ipToInt(ip) === net.network) err(path, `${ip} is the network address of ${subnet}`, 'pick a host address')
    else if (ipToInt(ip) === net.broadcast) err(path, `${ip} is the broadcast address of ${subnet}`, 'pick a host address')
    if (ip === gateway) clash(path, 'network.gateway', `${ip} is the gateway address`, `${ip} is also network.vms.${role}.ip`, 'pick an address different from network.gateway', `pick an address different from network.vms.${role}.ip`)
    const other = seen.get(ip)
    if (other) clash(path, `network.vms.${other}.ip`, `${ip} is already used by network.vms.${other}.ip`, `${ip} is already used by ${path}`, 'give every VM its own address')
    seen.set(ip, role)
  }

  const pg = c.services.postgres
  const owners = new Map<string, string>()
  for (const db of Object.keys(pg.users)) {
    if (!pg.databases.includes(db)) err(`services.postgres.users.${db}`, `names no database in services.postgres.databases (${pg.databases.join(', ')})`, `remove it or add ${db} to services.postgres.databases`)
  }
  for (const db of pg.databases) {
    const user = postgresUser(c, db)
    if (user === 'postgres') err(`services.postgres.users.${db}`, 'is the superuser postgres', `use another name, e.g. ${db}_user`)
    const other = owners.get(user)
    if (other) err(`services.postgres.users.${db}`, `${user} already owns the database ${other}`, 'give every database its own user (pg_hba.conf lets each user into its own database only)')
    owners.set(user, db)
  }

  const k = c.services.kubernetes
  for (const [field, value] of [
    ['podCidr', k.podCidr],
    ['serviceCidr', k.serviceCidr],
  ] as const) {
    const path = `services.kubernetes.${field}`
    if (hasHostBits(value)) err(path, `${value} has host bits set`, `use the network address ${intToIp(parseCidr(value).network)}/${parseCidr(value).prefix}`)
    if (cidrsOverlap(value, subnet)) {
      // A suggestion that works: a free range of the same size, never the failing value.
      const other = field === 'podCidr' ? k.serviceCidr : k.podCidr
      const free = freeRange(field === 'podCidr' ? '10.244.0.0/16' : '10.96.0.0/12', [subnet, other, value])
      const instead = free ? `set ${path} to e.g. ${free} in autolabs.yaml` : `set ${path} to a range outside ${subnet} in autolabs.yaml`
      clash(path, 'network.subnet', `${value} overlaps the VM subnet ${subnet}`, `${subnet} overlaps ${path} ${value}`, instead, `choose a subnet outside ${value}, or ${instead}`)
    }
  }
  if (cidrsOverlap(k.podCidr, k.serviceCidr)) {
    const free = freeRange('10.96.0.0/12', [subnet, k.podCidr, k.serviceCidr])
    err('services.kubernetes.serviceCidr', `${k.serviceCidr} overlaps services.kubernetes.podCidr ${k.podCidr}`, `use separate ranges${free ? `, e.g. services.kubernetes.serviceCidr ${free}` : ''}`)
  }
  for (const [i, cidr] of c.network.adminCidrs.entries())
    if (hasHostBits(cidr)) err(`network.adminCidrs[${i}]`, `${cidr} has host bits set`, `use ${intToIp(parseCidr(cidr).network)}/${parseCidr(cidr).prefix}`)

  const vmids = new Map<number, string>([[c.proxmox.templateVmid, 'proxmox.templateVmid']])
  const names = new Map<string, string>()
  for (const role of ROLES) {
    const vm = c.vms[role]
    const other = vmids.get(vm.vmid)
    if (other) err(`vms.${role}.vmid`, `${vm.vmid} is already used by ${other}`, 'give every VM and the template its own VMID')
    vmids.set(vm.vmid, `vms.${role}.vmid`)
    const otherName = names.get(vm.name)
    if (otherName) err(`vms.${role}.name`, `"${vm.name}" is already used by ${otherName}`, 'give every VM its own name')
    names.set(vm.name, `vms.${role}.name`)

    const d = DESIGN_SIZES[role]
    if (role === 'k8s') {
      if (vm.cores < d.cores || vm.cores > DESIGN_SIZES.k8s.maxCores)
        err(`vms.k8s.cores`, `${vm.cores} is outside the design table's 4–16 cores`, 'choose 4 to 16')
      if (vm.memoryMiB < d.memoryMiB || vm.memoryMiB > DESIGN_SIZES.k8s.maxMemoryMiB)
        err(`vms.k8s.memoryMiB`, `${vm.memoryMiB} MiB is outside the design table's 8–16 GB`, 'choose 8192 to 16384')
    } else {
      if (vm.cores < d.cores) warn(`vms.${role}.cores`, `${vm.cores} is below the design table's ${d.cores} cores`, 'the services may be slow')
      if (vm.memoryMiB < d.memoryMiB) warn(`vms.${role}.memoryMiB`, `${vm.memoryMiB} MiB is below the design table's ${d.memoryMiB} MiB`, 'GitLab needs at least 8 GB to run well')
    }
    if (vm.diskGiB < d.diskGiB) warn(`vms.${role}.diskGiB`, `${vm.diskGiB} GiB is below the design table's ${d.diskGiB} GiB`)
  }

  const g = c.services.gitlab
  const need = gitlabMinPostgres(g.version)
  if (g.externalDatabase && pg.version < need)
    err('services.postgres.version', `GitLab ${g.version} needs PostgreSQL ${need} or newer for its external database, not ${pg.version}`, `set services.postgres.version to ${need} or newer`)
  if (g.externalDatabase && !pg.databases.includes('gitlab'))
    err('services.postgres.databases', 'has no "gitlab" database but services.gitlab.externalDatabase is true', 'add "gitlab" or set externalDatabase to false')
  if (new Set(pg.databases).size !== pg.databases.length) err('services.postgres.databases', 'lists a database twice', 'remove the duplicate')
  if (new Set(k.namespaces).size !== k.namespaces.length) err('services.kubernetes.namespaces', 'lists a namespace twice', 'remove the duplicate')
  const tls = g.tls
  const https = g.externalUrl?.startsWith('https://') ?? false
  if (https && !tls.letsencrypt && !tls.certFile)
    err(
      'services.gitlab.tls',
      `externalUrl ${g.externalUrl} is https but no certificate is configured`,
      "set tls.certFile and tls.keyFile (PEM; a self-signed certificate also needs tls.caFile), or tls.letsencrypt: true when the host is reachable from the internet",
    )
  if (tls.letsencrypt && tls.certFile) err('services.gitlab.tls.letsencrypt', 'is true while tls.certFile is set', "choose one: your certificate or Let's Encrypt")
  if (Boolean(tls.certFile) !== Boolean(tls.keyFile))
    err(tls.certFile ? 'services.gitlab.tls.keyFile' : 'services.gitlab.tls.certFile', 'is missing', 'set both tls.certFile and tls.keyFile')
  if (tls.caFile && !tls.certFile) err('services.gitlab.tls.caFile', 'is set without tls.certFile', 'set tls.certFile and tls.keyFile too, or remove caFile')
  if (!https && (tls.certFile || tls.letsencrypt))
    err('services.gitlab.tls', `is set but externalUrl ${g.externalUrl ?? '(default)'} is not https`, 'set services.gitlab.externalUrl to https://<host>, or remove tls')
  if (g.sshPort === 22) err('services.gitlab.sshPort', "22 is the host's own SSH port", 'use 2222 (the default)')
  if (g.registryPort === g.sshPort) err('services.gitlab.registryPort', `${g.registryPort} is also services.gitlab.sshPort`, 'use 5050 (the default)')
  const minor = Number(k.version.split('.')[1])
  if (minor < 33) err('services.kubernetes.version', `${k.version} is out of upstream support`, `use 1.33 or newer (default ${VERSIONS.kubernetes})`)

  if (c.proxmox.insecure && c.proxmox.fingerprint)
    err('proxmox.insecure', 'is true while proxmox.fingerprint pins the certificate', 'remove insecure: pinning is the safe way')
  return issues
}
