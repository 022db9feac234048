/**
 * `autolabs status`: every check at once, each under its own deadline, so one unreachable VM
 * costs the connect timeout and no more. The Proxmox API, SSH and HTTP are passed in (ports):
 * tests hand in the simulator, lab machines or fakes.
 */
import type {Role} from '../config/schema.js'
import {INGRESS_NAMESPACE} from '../render/network-policies.js'
import {certificateLife} from '../util/expiry.js'
import {applySlow, evaluate, fmtPct, metricWarnings} from './evaluate.js'
import {
  DISK_CMD,
  gitlabReadyCmd,
  httpVerdict,
  KUBE_CMD,
  parseDf,
  parseGitlabReadiness,
  parseKube,
  parsePgLogin,
  parseRedisPing,
  parseRunnerVerify,
  parseWalArchive,
  pgLoginCmd,
  redisPingCmd,
  RUNNER_VERIFY_CMD,
  walArchiveCmd,
  type WalArchiveFacts,
} from './probes.js'
import {type CheckResult, type CheckStatus, DEFAULT_THRESHOLDS, type StatusReport, type Thresholds, type VmMetrics} from './types.js'

export interface StatusTarget {
  role: Role
  name: string
  vmid: number
  ip: string
}

export interface ExecResult {
  code: number
  stdout: string
  stderr: string
}

/** The little status needs from an SSH session. */
export interface RemoteShell {
  exec(cmd: string, opts: {stdin?: string; timeoutMs: number; signal: AbortSignal}): Promise<ExecResult>
  close(): Promise<void> | void
}

/** Fields of GET /nodes/{node}/qemu/{vmid}/status/current that status reads. */
export interface PveVmStatus {
  status: string
  uptime?: number
  /** Fraction of the VM's CPUs in use, 0..1 (×maxcpu cores). */
  cpu?: number
  mem?: number
  maxmem?: number
  disk?: number
  maxdisk?: number
}

export interface StatusDeps {
  /** undefined: no Proxmox credentials in this workspace (the VM rows are skipped). */
  vmStatus?: (node: string, vmid: number, signal: AbortSignal) => Promise<PveVmStatus>
  connect: (vm: StatusTarget, signal: AbortSignal) => Promise<RemoteShell>
  /** GET url → HTTP status code (any status resolves; network errors reject). */
  httpStatus: (url: string, signal: AbortSignal) => Promise<number>
  /**
   * TLS handshake with `host:port` presenting `servername`: the certificate's end and whether it
   * verifies (against `ca`, else the system's CAs). Network errors reject.
   */
  tlsPeer?: (peer: TlsPeerQuery, signal: AbortSignal) => Promise<TlsPeer>
}

export interface TlsPeerQuery {
  host: string
  port: number
  servername: string
  ca?: string
}
export interface TlsPeer {
  validTo: Date
  authorized: boolean
  /** Why it does not verify (Node's code, e.g. UNABLE_TO_VERIFY_LEAF_SIGNATURE). */
  authorizationError?: string
}

export interface StatusPlan {
  node: string
  vms: StatusTarget[]
  /** database name → its owner (services.postgres.users, default `<db>_user`) and password. */
  postgresUsers: Record<string, {user: string; password: string}>
  redisPassword?: string
  objectStoragePort: number
  registryPort: number
  /** GitLab's external_url: its readiness endpoint listens on that URL's port. */
  gitlabExternalUrl: string
  /** services.gitlab.tls.caFile is set: readiness verifies GitLab's certificate against that CA. */
  gitlabPrivateCa?: boolean
  /** An https external URL: its certificate, as served by gitlab-vm, is checked (end date, trust). */
  gitlabTls?: {servername: string; port: number; ca?: string}
  namespaces: string[]
  /** "namespace/name" of the NetworkPolicies autolabs applies. */
  networkPolicies?: string[]
  /** services.postgres.walArchiving: the archive on database-vm and the base backups it replays from. */
  walArchive?: {archiveDir: string; baseDir: string; localBase?: Date}
  thresholds?: Thresholds
  /** SSH connect / TCP connect bound (default 3 s). */
  connectTimeoutMs?: number
  /** Bound on any one check after connecting (default 8 s; answers over `slowMs` warn). */
  checkTimeoutMs?: number
}

type Verdict = {status: CheckStatus; detail: string; metrics?: VmMetrics; walArchive?: WalArchiveFacts}

class Unreachable extends Error {}

export async function collectStatus(plan: StatusPlan, deps: StatusDeps): Promise<StatusReport> {
  const t0 = Date.now()
  const thresholds = plan.thresholds ?? DEFAULT_THRESHOLDS
  const connectMs = plan.connectTimeoutMs ?? 3000
  const checkMs = plan.checkTimeoutMs ?? 8000
  const checks: Array<Promise<CheckResult>> = []
  const shells: Array<Promise<RemoteShell>> = []

  const run = (
    target: CheckResult['target'],
    id: string,
    name: string,
    timeoutMs: number,
    fn: (signal: AbortSignal) => Promise<Verdict>,
    onTimeout: CheckStatus = 'fail',
  ): void => {
    checks.push(
      (async () => {
        const start = Date.now()
        const ac = new AbortController()
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<Verdict>((resolve) => {
          timer = setTimeout(() => {
            // Settle first: an aborted check rejecting at once must not win the race.
            resolve({status: onTimeout, detail: `no answer within ${timeoutMs / 1000} s`})
            ac.abort(new Error('timeout'))
          }, timeoutMs)
        })
        let v: Verdict
        try {
          v = await Promise.race([fn(ac.signal), timeout])
        } catch (error) {
          v = error instanceof Unreachable ? {status: 'unreachable', detail: error.message} : {status: 'fail', detail: oneLine(error)}
        } finally {
          clearTimeout(timer)
          ac.abort()
        }
        return applySlow({id: `${target}/${id}`, target, name, status: v.status, detail: v.detail, durationMs: Date.now() - start, ...(v.metrics ? {metrics: v.metrics} : {}), ...(v.walArchive ? {walArchive: v.walArchive} : {})}, thresholds)
      })(),
    )
  }

  for (const vm of plan.vms) {
    // Proxmox: state, uptime, CPU and memory.
    if (deps.vmStatus) {
      const vmStatus = deps.vmStatus
      run(vm.role, 'vm', `VM ${vm.name} (${vm.vmid})`, connectMs + checkMs, async (signal) => {
        let s: PveVmStatus
        try {
          s = await vmStatus(plan.node, vm.vmid, signal)
        } catch (error) {
          const msg = oneLine(error)
          // The API answering with an error (no such VM) is a failure; no answer at all is "unreachable".
          if ((error as Error)?.name === 'ProxmoxUnreachableError' || /ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|fetch failed|timeout|certificate|socket/i.test(msg)) {
            throw new Unreachable(`Proxmox API: ${msg}`)
          }
          return {status: 'fail', detail: `Proxmox: ${msg}`}
        }
        const metrics: VmMetrics = {state: s.status, uptimeSec: s.uptime}
        if (s.cpu !== undefined) metrics.cpuPct = round1(s.cpu * 100)
        if (s.mem !== undefined && s.maxmem) metrics.memPct = round1((s.mem / s.maxmem) * 100)
        // QEMU VMs report disk=0 without a guest agent; the guest's own df (below) is preferred.
        if (s.disk && s.maxdisk) {
          metrics.diskPct = round1((s.disk / s.maxdisk) * 100)
          metrics.diskSource = 'proxmox'
        }
        if (s.status !== 'running') return {status: 'fail', detail: `VM is ${s.status}`, metrics}
        const warn = metricWarnings({cpuPct: metrics.cpuPct, memPct: metrics.memPct}, thresholds)
        const detail = `running; CPU ${metrics.cpuPct === undefined ? '?' : fmtPct(metrics.cpuPct)}, memory ${metrics.memPct === undefined ? '?' : fmtPct(metrics.memPct)}`
        return warn.length > 0 ? {status: 'warn', detail: warn.join('; '), metrics} : {status: 'ok', detail, metrics}
      }, 'unreachable')
    } else {
      run(vm.role, 'vm', `VM ${vm.name} (${vm.vmid})`, 1000, async () => ({status: 'skipped', detail: 'no Proxmox credentials in this workspace'}))
    }

    // SSH: one connection per VM shared by that VM's checks (ssh2 multiplexes channels).
    const connAc = new AbortController()
    const shell = (async () => {
      const timer = setTimeout(() => connAc.abort(new Error('timeout')), connectMs)
      try {
        return await deps.connect(vm, connAc.signal)
      } catch (error) {
        throw new Unreachable(`SSH to ${vm.ip}: ${connAc.signal.aborted ? `no answer within ${connectMs / 1000} s` : oneLine(error)}`)
      } finally {
        clearTimeout(timer)
      }
    })()
    shell.catch(() => undefined)
    shells.push(shell)
    // The check's own deadline starts once connected: a slow connect is the SSH check's story.
    const exec = async (cmd: string, signal: AbortSignal, stdin?: string): Promise<ExecResult> => {
      const sh = await shell
      return deadline(checkMs, signal, (s) => sh.exec(cmd, {stdin, timeoutMs: checkMs, signal: s}))
    }

    run(vm.role, 'ssh', 'SSH + disk', connectMs + checkMs, async (signal) => {
      const r = await exec(DISK_CMD, signal)
      const diskPct = parseDf(r.stdout)
      if (r.code !== 0 || diskPct === undefined) return {status: 'fail', detail: `SSH works, but \`df /\` failed: ${oneLine(r.stderr || r.stdout)}`}
      const metrics: VmMetrics = {diskPct: round1(diskPct), diskSource: 'guest'}
      const warn = metricWarnings({diskPct}, thresholds)
      return warn.length > 0 ? {status: 'warn', detail: warn.join('; '), metrics} : {status: 'ok', detail: `disk ${fmtPct(diskPct)} used`, metrics}
    })

    if (vm.role === 'database') {
      if (Object.keys(plan.postgresUsers).length === 0) {
        run(vm.role, 'postgres-login', 'PostgreSQL logins', 1000, async () => ({status: 'skipped', detail: 'no database passwords in .autolabs/secrets.yaml'}))
      }
      for (const [db, {user, password}] of Object.entries(plan.postgresUsers)) {
        const c = pgLoginCmd(vm.ip, user, db)
        run(vm.role, `postgres-login/${db}`, `PostgreSQL login ${db} as ${user}`, connectMs + checkMs, async (signal) => {
          const r = await exec(c.cmd, signal, c.stdin(password))
          return parsePgLogin(r.code, r.stdout, r.stderr)
        })
      }
      if (!plan.redisPassword) run(vm.role, 'redis', 'Redis PING (AUTH)', 1000, async () => ({status: 'skipped', detail: 'no Redis password in .autolabs/secrets.yaml'}))
      else {
        const c = redisPingCmd(vm.ip)
        const pw = plan.redisPassword
        run(vm.role, 'redis', 'Redis PING (AUTH)', connectMs + checkMs, async (signal) => {
          const r = await exec(c.cmd, signal, c.stdin(pw))
          return parseRedisPing(r.code, r.stdout, r.stderr)
        })
      }
      const wa = plan.walArchive
      if (wa) {
        run(vm.role, 'wal-archive', 'WAL archive and base backups', connectMs + checkMs, async (signal) => {
          const r = await exec(walArchiveCmd(wa.archiveDir, wa.baseDir), signal)
          const v = parseWalArchive(r.code, r.stdout, r.stderr, {freeDiskPct: thresholds.freeDiskPct, localBase: wa.localBase, now: new Date()})
          return {status: v.status, detail: v.detail, walArchive: v.facts}
        })
      }
      run(vm.role, 'object-storage', 'Object storage (S3)', connectMs + checkMs, async (signal) => {
        const base = `http://${vm.ip}:${plan.objectStoragePort}`
        const health = await httpOrUnreachable(deps, `${base}/healthz`, signal, checkMs)
        if (health === 200) return {status: 'ok', detail: 'GET /healthz: HTTP 200'}
        // Older SeaweedFS without /healthz: the S3 root answers 200 or 403 (anonymous) when up.
        return withPrefix('GET /', httpVerdict(await httpOrUnreachable(deps, `${base}/`, signal, checkMs), [200, 403]))
      })
    }

    if (vm.role === 'gitlab') {
      run(vm.role, 'gitlab-readiness', 'GitLab readiness', connectMs + checkMs, async (signal) => {
        const r = await exec(gitlabReadyCmd(plan.gitlabExternalUrl, {privateCa: plan.gitlabPrivateCa}), signal)
        return parseGitlabReadiness(r.code, r.stdout, r.stderr)
      })
      run(vm.role, 'registry', 'Container registry /v2/', connectMs + checkMs, async (signal) =>
        withPrefix('GET /v2/', httpVerdict(await httpOrUnreachable(deps, `http://${vm.ip}:${plan.registryPort}/v2/`, signal, checkMs), [200, 401])),
      )
      const tls = plan.gitlabTls
      if (tls && deps.tlsPeer) {
        const tlsPeer = deps.tlsPeer
        run(vm.role, 'gitlab-certificate', 'GitLab HTTPS certificate', connectMs + checkMs, async (signal) => {
          let peer: TlsPeer
          try {
            peer = await deadline(connectMs + checkMs, signal, (s) => tlsPeer({host: vm.ip, port: tls.port, servername: tls.servername, ca: tls.ca}, s))
          } catch (error) {
            return {status: 'fail', detail: `${vm.ip}:${tls.port}: ${oneLine(error)}`}
          }
          return certificateVerdict(peer, tls.servername, new Date(), thresholds.certificateDays)
        })
      }
      run(vm.role, 'runner', 'GitLab Runner online', connectMs + checkMs, async (signal) => {
        const r = await exec(RUNNER_VERIFY_CMD, signal)
        return parseRunnerVerify(r.code, r.stdout)
      })
    }

    if (vm.role === 'k8s') {
      // One kubectl call feeds five checks.
      let kube: Promise<ReturnType<typeof parseKube>> | undefined
      const kubeOnce = (signal: AbortSignal) =>
        (kube ??= exec(KUBE_CMD, signal).then((r) => parseKube(r.code, r.stdout, r.stderr, plan.namespaces, INGRESS_NAMESPACE, plan.networkPolicies)))
      const parts = [
        ['node', 'Kubernetes node Ready'],
        ['systemPods', 'System pods (kube-system)'],
        ['ingress', 'Ingress controller'],
        ['namespaces', 'Namespaces'],
        ['networkPolicies', 'NetworkPolicies (labs isolated)'],
      ] as const
      for (const [key, label] of parts) {
        run(vm.role, `k8s-${key.toLowerCase()}`, label, connectMs + checkMs, async (signal) => (await kubeOnce(signal))[key])
      }
    }
  }

  const results = await Promise.all(checks)
  await Promise.all(shells.map((s) => s.then((sh) => sh.close()).catch(() => undefined)))

  const vms = plan.vms.map((vm) => {
    const metrics: VmMetrics = {}
    for (const c of results.filter((r) => r.target === vm.role && r.metrics)) {
      for (const [k, v] of Object.entries(c.metrics!)) {
        // The guest's df wins over Proxmox's disk figure.
        if ((k === 'diskPct' || k === 'diskSource') && metrics.diskSource === 'guest') continue
        ;(metrics as Record<string, unknown>)[k] = v
      }
    }
    return {role: vm.role, name: vm.name, vmid: vm.vmid, ip: vm.ip, ...metrics}
  })
  const {overall, exitCode, summary} = evaluate(results)
  return {schemaVersion: 1, checkedAt: new Date(t0).toISOString(), durationMs: Date.now() - t0, overall, exitCode, summary, vms, checks: results}
}

/** Runs fn under its own deadline (also aborted with the parent signal). */
async function deadline<T>(ms: number, parent: AbortSignal, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController()
  const onAbort = () => ac.abort(parent.reason)
  parent.addEventListener('abort', onAbort, {once: true})
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      fn(ac.signal),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`no answer within ${ms / 1000} s`))
          ac.abort(new Error('timeout'))
        }, ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
    parent.removeEventListener('abort', onAbort)
    ac.abort()
  }
}

async function httpOrUnreachable(deps: StatusDeps, url: string, signal: AbortSignal, ms: number): Promise<number> {
  try {
    return await deadline(ms, signal, (s) => deps.httpStatus(url, s))
  } catch (error) {
    // Nothing listening is a service down; the VM itself being gone shows in its SSH check.
    throw new Error(`${new URL(url).host}: ${oneLine(error)}`)
  }
}

const round1 = (v: number) => Math.round(v * 10) / 10

/** Expired or untrusted: a failure (clients refuse it); ending within `warnDays`: a warning. */
export function certificateVerdict(peer: TlsPeer, servername: string, now: Date, warnDays: number): Verdict {
  const {end, days, left} = certificateLife(peer.validTo, now)
  if (days < 0) return {status: 'fail', detail: `expired on ${end}`}
  if (!peer.authorized) return {status: 'fail', detail: `not trusted for ${servername}: ${peer.authorizationError ?? 'unknown reason'}`}
  return days < warnDays ? {status: 'warn', detail: `expires on ${end}, in ${left}`} : {status: 'ok', detail: `valid until ${end} (${left})`}
}

function withPrefix(prefix: string, v: Verdict): Verdict {
  return {...v, detail: `${prefix}: ${v.detail}`}
}

function oneLine(error: unknown): string {
  const e = error as {message?: string; cause?: {code?: string; message?: string}}
  const msg = e?.message ?? String(error)
  const cause = e?.cause?.code ?? e?.cause?.message
  return (cause && !msg.includes(cause) ? `${msg} (${cause})` : msg).split('\n')[0].slice(0, 200)
}
