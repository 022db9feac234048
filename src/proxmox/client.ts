import {AsyncLocalStorage} from 'node:async_hooks'
import {readFile} from 'node:fs/promises'

import type {ProxmoxEngine} from 'proxmox-api'
import {type Agent, fetch as undiciFetch, type RequestInit, Response} from 'undici'

import {UsageError, UserError} from '../errors.js'
import {checkpoint, interruptSignal, sleepInterruptibly} from '../util/interrupt.js'
import {redact, registerSecret} from '../util/redact.js'
import {
  CertificateMismatchError,
  ProxmoxAuthError,
  ProxmoxError,
  ProxmoxNotImplementedError,
  ProxmoxParameterError,
  ProxmoxPermissionError,
  ProxmoxServerError,
  ProxmoxTaskError,
  ProxmoxTaskTimeoutError,
  ProxmoxUnreachableError,
  UntrustedCertificateError,
} from './errors.js'
import {createDispatcher, getServerFingerprint, INSECURE_WARNING, type TlsTrust} from './tls.js'
import type {
  BackupJob,
  BackupJobSpec,
  Bridge,
  ClusterResource,
  NodeInfo,
  NodeStatus,
  Snapshot,
  StorageInfo,
  TaskStatus,
  Volume,
  VmConfig,
  VmInfo,
  VmStatus,
} from './types.js'

export type ProxmoxAuth = {type: 'token'; tokenId: string; secret: string} | {type: 'password'; username: string; password: string}

export interface ProxmoxClientOptions {
  /** https://host:8006 (the port is required by proxmox-api; 8006 is added when missing). */
  url: string
  auth: ProxmoxAuth
  /** Pinned fingerprint, CA file, or the explicit insecure opt-in. */
  tls: {fingerprint?: string | null; caFile?: string | null; insecure?: boolean}
  /** Per-request timeout. Default 30 s. */
  timeoutMs?: number
  /** Attempts for idempotent reads (GET) on network errors and 5xx. Default 3. */
  readAttempts?: number
  /** Called once with the --insecure warning (default: stderr). */
  warn?: (message: string) => void
  /** Debug log of every call (already redacted). */
  debug?: (line: string) => void
}

interface CallContext {
  response?: {status: number; statusText: string; body: string}
  networkError?: unknown
}

/** Endpoints that newer PVE versions added, for the 501 message. */
const MIN_VERSION: Array<[RegExp, string]> = [
  [/\/download-url$/, '>= 8.4 (download-url with content=import)'],
  [/\/agent\/file-read$/, '>= 7.0'],
  [/^\/cluster\/backup/, '>= 6.0'],
]

/**
 * The one Proxmox VE API client of autolabs, over `proxmox-api`'s engine (auth, parameter
 * encoding, ticket handling). Wrapped because of what STYLE.md lists about that package:
 *  - it retries any request, POST included, once on a network error → our fetch never throws
 *    (it reports the failure through an AsyncLocalStorage context and returns a synthetic
 *    response), so nothing is ever re-sent behind our back; we retry only GETs, ourselves;
 *  - its errors are plain strings → we read status, reason and `errors` from the same context
 *    and throw typed errors (401/403/400/501/500/unreachable);
 *  - TLS: our fetch uses an undici dispatcher pinned to the certificate's fingerprint (or a CA);
 *    NODE_TLS_REJECT_UNAUTHORIZED is never set.
 */
export class ProxmoxClient {
  readonly url: string
  readonly who: string
  private readonly engine: ProxmoxEngine
  private readonly dispatcher: Agent
  private readonly als = new AsyncLocalStorage<CallContext>()
  private readonly timeoutMs: number
  private readonly readAttempts: number
  private readonly debug?: (line: string) => void
  private serverVersion?: string

  private constructor(engineCtor: typeof ProxmoxEngine, opts: ProxmoxClientOptions, trust: TlsTrust) {
    const u = parseApiUrl(opts.url)
    this.url = u.origin
    this.timeoutMs = opts.timeoutMs ?? 30_000
    this.readAttempts = Math.max(1, opts.readAttempts ?? 3)
    this.debug = opts.debug
    this.dispatcher = createDispatcher(this.url, trust)
    const fetchImpl = async (input: string | URL, init?: RequestInit): Promise<Response> => {
      const ctx = this.als.getStore()
      try {
        // A stop signal abandons a read. A change already sent is waited for: its answer may
        // hold what Proxmox shows only once (a new token's secret).
        const reading = (init?.method ?? 'GET') === 'GET'
        const signal = !reading ? init?.signal : init?.signal ? AbortSignal.any([init.signal as AbortSignal, interruptSignal()]) : interruptSignal()
        const res = await undiciFetch(input, {...init, signal, dispatcher: this.dispatcher})
        const body = await res.text()
        if (ctx) ctx.response = {status: res.status, statusText: res.statusText, body}
        return new Response(body, {status: res.status, statusText: res.statusText, headers: res.headers})
      } catch (error) {
        if (ctx) ctx.networkError = error
        // Not thrown on purpose: proxmox-api would re-send the request (a create, twice).
        return new Response('', {status: 599, statusText: 'network error', headers: {'content-type': 'text/plain'}})
      }
    }
    const common = {host: u.hostname, port: Number(u.port), schema: 'https' as const, authTimeout: this.timeoutMs, queryTimeout: this.timeoutMs, fetch: fetchImpl}
    if (opts.auth.type === 'token') {
      const {tokenId, secret} = opts.auth
      if (!/^[^\s@!]+@[^\s@!]+![A-Za-z][A-Za-z0-9._-]+$/.test(tokenId))
        throw new UsageError(`Proxmox token ID "${tokenId}" must look like user@realm!tokenname (e.g. root@pam!autolabs).`, {
          suggestion: 'Pass --proxmox-token-id user@realm!tokenname.',
        })
      const lower = secret.trim().toLowerCase()
      if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(lower))
        throw new UsageError('The Proxmox token secret must be a UUID like 12345678-1234-1234-1234-1234567890ab.', {
          suggestion: 'Copy the secret shown once when the token was created (AUTOLABS_PROXMOX_TOKEN_SECRET or --proxmox-token-secret-file); if it is lost, create a new token.',
        })
      registerSecret(lower)
      this.who = `token ${tokenId}`
      this.engine = new engineCtor({...common, tokenID: tokenId, tokenSecret: lower})
    } else {
      registerSecret(opts.auth.password)
      this.who = `user ${opts.auth.username}`
      this.engine = new engineCtor({...common, username: opts.auth.username, password: opts.auth.password})
    }
  }

  /** Build a client; reads the CA file and prints the --insecure warning. */
  static async connect(opts: ProxmoxClientOptions): Promise<ProxmoxClient> {
    const {ProxmoxEngine} = await import('proxmox-api')
    let caPem: string | undefined
    if (opts.tls.caFile) {
      try {
        caPem = await readFile(opts.tls.caFile, 'utf8')
      } catch (error) {
        throw new UsageError(`Cannot read the Proxmox CA file ${opts.tls.caFile}: ${(error as Error).message}`, {suggestion: 'Fix proxmox.caFile in autolabs.yaml.'})
      }
    }
    if (opts.tls.insecure && !opts.tls.fingerprint && !caPem) (opts.warn ?? ((m) => process.stderr.write(`WARNING: ${m}\n`)))(INSECURE_WARNING)
    return new ProxmoxClient(ProxmoxEngine, opts, {fingerprint: opts.tls.fingerprint, caPem, insecure: opts.tls.insecure})
  }

  async close(): Promise<void> {
    await this.dispatcher.close()
  }

  // ---- the one request path ----------------------------------------------------------------
  /**
   * One API call. `path` is below /api2/json and already encoded (use `p()` for segments).
   * GETs are retried on network errors and 5xx; every other method is sent exactly once.
   */
  async request<T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, params?: Record<string, unknown>): Promise<T> {
    const attempts = method === 'GET' ? this.readAttempts : 1
    const started = Date.now()
    let lastError: unknown
    for (let attempt = 1; attempt <= attempts; attempt++) {
      // No new request to Proxmox after a stop signal.
      checkpoint()
      try {
        return await this.once<T>(method, path, params)
      } catch (error) {
        lastError = error
        const retriable = error instanceof ProxmoxUnreachableError || (error instanceof ProxmoxServerError && isTransient(error))
        if (!retriable || attempt === attempts) {
          // The message tells the whole wait, every attempt and the pauses between them included.
          if (error instanceof ProxmoxUnreachableError && attempt > 1)
            throw new ProxmoxUnreachableError(this.url, Date.now() - started, `${error.reason} (${attempt} attempts)`, {method, path})
          throw error
        }
        this.debug?.(`retrying ${method} ${path} after: ${(error as Error).message}`)
        await sleepInterruptibly(Math.min(4000, 300 * 2 ** (attempt - 1)))
      }
    }
    throw lastError
  }

  private async once<T>(method: string, path: string, params?: Record<string, unknown>): Promise<T> {
    const ctx: CallContext = {}
    const started = Date.now()
    const req = {method, path}
    const clean = params ? Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined && v !== null)) : undefined
    this.debug?.(redact(`proxmox ${method} ${path}${clean && Object.keys(clean).length ? ` ${JSON.stringify(clean)}` : ''}`))
    try {
      return (await this.als.run(ctx, () => this.engine.doRequest(method, `/api2/json${path}`, path, clean))) as T
    } catch (error) {
      const mapped = this.mapError(error, ctx, req, Date.now() - started)
      if (mapped instanceof UntrustedCertificateError && !mapped.fingerprint) {
        // Show the fingerprint to pin, so the user can compare it with `pvenode cert info`.
        const fp = await getServerFingerprint(this.url, {timeoutMs: 5000}).then((c) => c.fingerprint, () => undefined)
        throw new UntrustedCertificateError(this.url, mapped.reason, fp)
      }
      throw mapped
    }
  }

  private mapError(error: unknown, ctx: CallContext, req: {method: string; path: string}, waitedMs: number): Error {
    if (ctx.networkError !== undefined) {
      const chain = causes(ctx.networkError)
      const mismatch = chain.find((e) => e instanceof CertificateMismatchError)
      if (mismatch) return mismatch as CertificateMismatchError
      const code = chain.map((e) => (e as NodeJS.ErrnoException)?.code).find((c) => typeof c === 'string')
      if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT_ALTNAME/.test(code)) return new UntrustedCertificateError(this.url, code)
      const aborted = chain.some((e) => (e as Error)?.name === 'AbortError' || (e as Error)?.name === 'TimeoutError')
      const reason = aborted ? `no answer within ${Math.round(this.timeoutMs / 1000)} s` : (code ?? chain.map((e) => (e as Error)?.message).filter(Boolean).pop() ?? 'network error')
      return new ProxmoxUnreachableError(this.url, waitedMs, reason, req)
    }
    const res = ctx.response
    if (!res) return new ProxmoxError(`Proxmox request ${req.method} ${req.path} failed: ${redact(String((error as Error)?.message ?? error))}`, req)
    let body: {errors?: Record<string, string>; message?: string} = {}
    try {
      body = res.body ? JSON.parse(res.body) : {}
    } catch {
      // Not JSON (a proxy's HTML page): the status line is all we have.
    }
    const reason = (res.statusText || body.message || `HTTP ${res.status}`).trim()
    if (res.status < 300)
      return new ProxmoxError(`${this.url} answered ${req.method} ${req.path} with something that is not the Proxmox API's JSON.`, {
        ...req,
        status: res.status,
        suggestion: 'Check that the URL points at pveproxy (port 8006) and not at a web proxy or another service.',
      })
    switch (res.status) {
      case 401:
        return new ProxmoxAuthError(this.url, this.who.replace(/^(token|user) /, ''), reason, req)
      case 403:
        return new ProxmoxPermissionError(this.who.replace(/^(token|user) /, ''), reason, req)
      case 400:
        return new ProxmoxParameterError(body.errors ?? {'(request)': reason}, req)
      case 501:
        return new ProxmoxNotImplementedError(this.url, this.serverVersion, MIN_VERSION.find(([re]) => re.test(req.path))?.[1], req)
      default:
        return new ProxmoxServerError(res.status, redact(body.message?.trim() || reason), req)
    }
  }

  // ---- tasks ---------------------------------------------------------------------------------
  /**
   * Poll a worker task until it stops (backoff 250 ms → 2 s). Polls are reads and survive
   * transient errors; a failed task throws ProxmoxTaskError with the log's tail.
   */
  async waitForTask(upid: string, opts: {timeoutMs?: number; onProgress?: (s: TaskStatus, elapsedMs: number) => void; what?: string} = {}): Promise<TaskStatus> {
    const node = upidNode(upid)
    const timeoutMs = opts.timeoutMs ?? 10 * 60_000
    const started = Date.now()
    let delay = 250
    for (;;) {
      const status = await this.request<TaskStatus>('GET', `/nodes/${p(node)}/tasks/${p(upid)}/status`)
      opts.onProgress?.(status, Date.now() - started)
      if (status.status === 'stopped') {
        const exit = status.exitstatus ?? 'unknown'
        if (exit === 'OK' || /^WARNINGS: \d+$/.test(exit)) return status
        throw new ProxmoxTaskError(upid, exit, await this.taskLogTail(upid, 20).catch(() => []), opts.what)
      }
      if (Date.now() - started >= timeoutMs) throw new ProxmoxTaskTimeoutError(upid, Date.now() - started)
      await sleepInterruptibly(Math.min(delay, Math.max(0, timeoutMs - (Date.now() - started))))
      delay = Math.min(2000, Math.round(delay * 1.5))
    }
  }

  async taskLog(upid: string, opts: {start?: number; limit?: number} = {}): Promise<Array<{n: number; t: string}>> {
    return this.request('GET', `/nodes/${p(upidNode(upid))}/tasks/${p(upid)}/log`, {start: opts.start, limit: opts.limit})
  }

  async taskLogTail(upid: string, lines = 20): Promise<string[]> {
    const all = await this.taskLog(upid, {start: 0, limit: 5000})
    return all.slice(-lines).map((l) => l.t)
  }

  /** Run a task-returning call and wait for it. */
  private async task(method: 'POST' | 'PUT' | 'DELETE', path: string, params: Record<string, unknown> | undefined, what: string, timeoutMs?: number): Promise<TaskStatus> {
    const upid = await this.request<string>(method, path, params)
    if (typeof upid !== 'string' || !upid.startsWith('UPID:')) return {status: 'stopped', exitstatus: 'OK'} as TaskStatus
    return this.waitForTask(upid, {what, timeoutMs})
  }

  // ---- cluster and nodes ---------------------------------------------------------------------
  async version(): Promise<{version: string; release: string; major: number; minor: number; patch: number}> {
    const v = await this.request<{version: string; release: string}>('GET', '/version')
    const [major, minor, patch] = String(v.version).split(/[.-]/).map((x) => Number.parseInt(x, 10))
    this.serverVersion = v.version
    return {version: v.version, release: v.release, major: major || 0, minor: minor || 0, patch: patch || 0}
  }

  async nodes(): Promise<NodeInfo[]> {
    const list = await this.request<Array<Record<string, unknown>>>('GET', '/nodes')
    return list.map((n) => ({
      node: String(n.node),
      status: String(n.status ?? 'unknown'),
      maxcpu: num(n.maxcpu),
      maxmem: num(n.maxmem),
      mem: num(n.mem),
      cpu: num(n.cpu),
      uptime: num(n.uptime),
    }))
  }

  async nodeStatus(node: string): Promise<NodeStatus> {
    const s = await this.request<Record<string, any>>('GET', `/nodes/${p(node)}/status`)
    return {
      cpus: Number(s.cpuinfo?.cpus ?? 0),
      cpuModel: String(s.cpuinfo?.model ?? ''),
      cpuUsage: Number(s.cpu ?? 0),
      memTotal: Number(s.memory?.total ?? 0),
      memUsed: Number(s.memory?.used ?? 0),
      memFree: Number(s.memory?.free ?? Number(s.memory?.total ?? 0) - Number(s.memory?.used ?? 0)),
      uptime: Number(s.uptime ?? 0),
      pveVersion: String(s.pveversion ?? ''),
    }
  }

  async clusterResources(type?: 'vm' | 'storage' | 'node'): Promise<ClusterResource[]> {
    return this.request('GET', '/cluster/resources', {type})
  }

  async nextId(): Promise<number> {
    return Number(await this.request('GET', '/cluster/nextid'))
  }

  // ---- storage and network -------------------------------------------------------------------
  async storages(node: string, opts: {content?: string} = {}): Promise<StorageInfo[]> {
    const list = await this.request<Array<Record<string, unknown>>>('GET', `/nodes/${p(node)}/storage`, {content: opts.content})
    return list.map(toStorage)
  }

  async storageStatus(node: string, storage: string): Promise<StorageInfo> {
    return toStorage({...(await this.request<Record<string, unknown>>('GET', `/nodes/${p(node)}/storage/${p(storage)}/status`)), storage})
  }

  async storageContent(node: string, storage: string, content?: string): Promise<Volume[]> {
    return this.request('GET', `/nodes/${p(node)}/storage/${p(storage)}/content`, {content})
  }

  /** The storage's cluster-wide configuration (needs Datastore.Allocate). */
  async storageConfig(storage: string): Promise<{storage: string; type: string; content: string[]}> {
    const c = await this.request<Record<string, unknown>>('GET', `/storage/${p(storage)}`)
    return {storage, type: String(c.type), content: splitList(c.content)}
  }

  /** Add a content type to a storage (e.g. `import`). Returns false when it was already there. */
  async enableStorageContent(storage: string, type: string): Promise<boolean> {
    const cfg = await this.storageConfig(storage)
    if (cfg.content.includes(type)) return false
    await this.request('PUT', `/storage/${p(storage)}`, {content: [...cfg.content, type].join(',')})
    return true
  }

  async bridges(node: string): Promise<Bridge[]> {
    const list = await this.request<Array<Record<string, unknown>>>('GET', `/nodes/${p(node)}/network`, {type: 'any_bridge'})
    return list.map((n) => ({
      iface: String(n.iface),
      type: String(n.type),
      active: Number(n.active ?? 0) === 1,
      cidr: n.cidr ? String(n.cidr) : undefined,
      address: n.address ? String(n.address) : undefined,
      gateway: n.gateway ? String(n.gateway) : undefined,
      ports: n.bridge_ports ? String(n.bridge_ports) : undefined,
      comments: n.comments ? String(n.comments).trim() : undefined,
    }))
  }

  // ---- VMs -----------------------------------------------------------------------------------
  /** VMs on a node; with `withConfig`, each VM's config too (for the planned-IP check). */
  async listVms(node: string, opts: {withConfig?: boolean} = {}): Promise<VmInfo[]> {
    const list = await this.request<Array<Record<string, unknown>>>('GET', `/nodes/${p(node)}/qemu`)
    const vms: VmInfo[] = list.map((v) => ({
      vmid: Number(v.vmid),
      name: v.name ? String(v.name) : '',
      status: String(v.status ?? 'unknown'),
      template: Number(v.template ?? 0) === 1,
      lock: v.lock ? String(v.lock) : undefined,
      tags: splitList(v.tags),
    }))
    vms.sort((a, b) => a.vmid - b.vmid)
    if (opts.withConfig) for (const vm of vms) vm.config = await this.vmConfig(node, vm.vmid)
    return vms
  }

  async vmConfig(node: string, vmid: number): Promise<VmConfig> {
    const c = await this.request<Record<string, unknown>>('GET', `/nodes/${p(node)}/qemu/${vmid}/config`)
    return Object.fromEntries(Object.entries(c).filter(([k]) => k !== 'digest').map(([k, v]) => [k, String(v)]))
  }

  async vmStatus(node: string, vmid: number): Promise<VmStatus> {
    const s = await this.request<Record<string, unknown>>('GET', `/nodes/${p(node)}/qemu/${vmid}/status/current`)
    return {
      vmid,
      name: s.name ? String(s.name) : '',
      status: String(s.status ?? 'unknown'),
      cpu: Number(s.cpu ?? 0),
      cpus: Number(s.cpus ?? 0),
      mem: Number(s.mem ?? 0),
      maxmem: Number(s.maxmem ?? 0),
      disk: Number(s.disk ?? 0),
      maxdisk: Number(s.maxdisk ?? 0),
      uptime: Number(s.uptime ?? 0),
      lock: s.lock ? String(s.lock) : undefined,
      template: Number(s.template ?? 0) === 1,
      agent: Number(s.agent ?? 0) === 1,
    }
  }

  async startVm(node: string, vmid: number): Promise<TaskStatus> {
    return this.task('POST', `/nodes/${p(node)}/qemu/${vmid}/status/start`, undefined, `start VM ${vmid}`)
  }

  async shutdownVm(node: string, vmid: number, opts: {timeoutS?: number} = {}): Promise<TaskStatus> {
    return this.task('POST', `/nodes/${p(node)}/qemu/${vmid}/status/shutdown`, {timeout: opts.timeoutS}, `shut down VM ${vmid}`)
  }

  async stopVm(node: string, vmid: number): Promise<TaskStatus> {
    return this.task('POST', `/nodes/${p(node)}/qemu/${vmid}/status/stop`, undefined, `stop VM ${vmid}`)
  }

  // ---- snapshots -----------------------------------------------------------------------------
  async listSnapshots(node: string, vmid: number): Promise<Snapshot[]> {
    const list = await this.request<Array<Record<string, unknown>>>('GET', `/nodes/${p(node)}/qemu/${vmid}/snapshot`)
    return list
      .filter((s) => s.name !== 'current')
      .map((s) => ({
        name: String(s.name),
        description: s.description ? String(s.description) : '',
        snaptime: s.snaptime === undefined ? undefined : Number(s.snaptime),
        vmstate: Number(s.vmstate ?? 0) === 1,
        parent: s.parent ? String(s.parent) : undefined,
      }))
  }

  async createSnapshot(node: string, vmid: number, name: string, opts: {description?: string; vmstate?: boolean; timeoutMs?: number} = {}): Promise<TaskStatus> {
    // PVE's pve-configid format: checked here so the user gets the rule, not a 400.
    if (!/^[a-z][a-z0-9_-]+$/i.test(name) || name.length > 40)
      throw new UsageError(`"${name}" cannot be a Proxmox snapshot name: it must start with a letter, then letters, digits, "-" or "_" (2–40 characters).`)
    return this.task('POST', `/nodes/${p(node)}/qemu/${vmid}/snapshot`, {snapname: name, description: opts.description, vmstate: opts.vmstate}, `snapshot ${name} of VM ${vmid}`, opts.timeoutMs)
  }

  async deleteSnapshot(node: string, vmid: number, name: string): Promise<TaskStatus> {
    return this.task('DELETE', `/nodes/${p(node)}/qemu/${vmid}/snapshot/${p(name)}`, undefined, `delete snapshot ${name} of VM ${vmid}`)
  }

  async rollbackSnapshot(node: string, vmid: number, name: string, opts: {start?: boolean} = {}): Promise<TaskStatus> {
    return this.task('POST', `/nodes/${p(node)}/qemu/${vmid}/snapshot/${p(name)}/rollback`, {start: opts.start}, `roll back VM ${vmid} to ${name}`)
  }

  // ---- backup jobs ---------------------------------------------------------------------------
  async listBackupJobs(): Promise<BackupJob[]> {
    const list = await this.request<Array<Record<string, unknown>>>('GET', '/cluster/backup')
    return list.map((j) => ({
      id: String(j.id),
      schedule: j.schedule ? String(j.schedule) : undefined,
      storage: j.storage ? String(j.storage) : undefined,
      vmids: splitList(j.vmid).map(Number),
      all: Number(j.all ?? 0) === 1,
      mode: j.mode ? String(j.mode) : undefined,
      enabled: Number(j.enabled ?? 1) === 1,
      pruneBackups: pruneString(j['prune-backups']),
      comment: j.comment ? String(j.comment) : undefined,
      nextRun: j['next-run'] === undefined ? undefined : Number(j['next-run']),
      compress: j.compress === undefined ? undefined : String(j.compress),
    }))
  }

  /** Create or update a vzdump job by id. Returns what happened. */
  async upsertBackupJob(spec: BackupJobSpec): Promise<'created' | 'updated' | 'unchanged'> {
    const prune = Object.entries(spec.prune ?? {})
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `keep-${k}=${v}`)
      .join(',')
    const wanted = {
      schedule: spec.schedule,
      storage: spec.storage,
      vmid: spec.vmids.join(','),
      mode: spec.mode ?? 'snapshot',
      enabled: spec.enabled ?? true,
      'prune-backups': prune || undefined,
      comment: spec.comment,
      'notes-template': spec.notesTemplate,
      compress: spec.compress,
    }
    const existing = (await this.listBackupJobs()).find((j) => j.id === spec.id)
    if (!existing) {
      await this.request('POST', '/cluster/backup', {id: spec.id, ...wanted})
      return 'created'
    }
    const same =
      existing.schedule === wanted.schedule &&
      existing.storage === wanted.storage &&
      existing.vmids.join(',') === wanted.vmid &&
      existing.mode === wanted.mode &&
      existing.enabled === wanted.enabled &&
      sortedList(existing.pruneBackups) === sortedList(wanted['prune-backups']) &&
      (existing.comment ?? '') === (wanted.comment ?? '') &&
      (spec.compress === undefined || existing.compress === spec.compress)
    if (same) return 'unchanged'
    await this.request('PUT', `/cluster/backup/${p(spec.id)}`, wanted)
    return 'updated'
  }

  async deleteBackupJob(id: string): Promise<void> {
    await this.request('DELETE', `/cluster/backup/${p(id)}`)
  }

  // ---- guest agent ---------------------------------------------------------------------------
  /**
   * Read a file inside the VM through the guest agent (e.g. its SSH host key, to cross-check
   * what SSH presents). Null when no agent is configured, running or answering — the caller
   * then falls back to trust-on-first-use.
   */
  async agentFileRead(node: string, vmid: number, file: string): Promise<string | null> {
    try {
      const r = await this.request<{content: string}>('GET', `/nodes/${p(node)}/qemu/${vmid}/agent/file-read`, {file})
      return r.content
    } catch (error) {
      if (error instanceof ProxmoxServerError && /guest agent|not running|No QEMU guest agent|got timeout/i.test(error.reason)) return null
      throw error
    }
  }

  async agentNetworkInterfaces(node: string, vmid: number): Promise<Array<{name: string; ips: string[]}> | null> {
    try {
      const r = await this.request<{result: Array<{name: string; 'ip-addresses'?: Array<{'ip-address': string}>}>}>('GET', `/nodes/${p(node)}/qemu/${vmid}/agent/network-get-interfaces`)
      return r.result.map((i) => ({name: i.name, ips: (i['ip-addresses'] ?? []).map((a) => a['ip-address'])}))
    } catch (error) {
      if (error instanceof ProxmoxServerError && /guest agent|not running|got timeout/i.test(error.reason)) return null
      throw error
    }
  }

  // ---- access control (used by access.ts) ----------------------------------------------------
  async users(): Promise<Array<{userid: string; enable: boolean; comment?: string}>> {
    const list = await this.request<Array<Record<string, unknown>>>('GET', '/access/users')
    return list.map((u) => ({userid: String(u.userid), enable: Number(u.enable ?? 1) === 1, comment: u.comment ? String(u.comment) : undefined}))
  }
  async createUser(userid: string, opts: {comment?: string} = {}): Promise<void> {
    await this.request('POST', '/access/users', {userid, comment: opts.comment})
  }
  async roles(): Promise<Array<{roleid: string; privs: string[]; special: boolean}>> {
    const list = await this.request<Array<Record<string, unknown>>>('GET', '/access/roles')
    return list.map((r) => ({roleid: String(r.roleid), privs: splitList(r.privs), special: Number(r.special ?? 0) === 1}))
  }
  async createRole(roleid: string, privs: string[]): Promise<void> {
    await this.request('POST', '/access/roles', {roleid, privs: privs.join(',')})
  }
  async setRolePrivileges(roleid: string, privs: string[]): Promise<void> {
    await this.request('PUT', `/access/roles/${p(roleid)}`, {privs: privs.join(',')})
  }
  async acl(): Promise<Array<{path: string; type: string; ugid: string; roleid: string; propagate: boolean}>> {
    const list = await this.request<Array<Record<string, unknown>>>('GET', '/access/acl')
    return list.map((e) => ({path: String(e.path), type: String(e.type), ugid: String(e.ugid), roleid: String(e.roleid), propagate: Number(e.propagate ?? 1) === 1}))
  }
  async setAcl(entry: {path: string; roles: string[]; users?: string[]; tokens?: string[]; propagate?: boolean; delete?: boolean}): Promise<void> {
    await this.request('PUT', '/access/acl', {
      path: entry.path,
      roles: entry.roles.join(','),
      users: entry.users?.join(','),
      tokens: entry.tokens?.join(','),
      propagate: entry.propagate,
      delete: entry.delete,
    })
  }
  async tokens(userid: string): Promise<Array<{tokenid: string; privsep: boolean; expire: number}>> {
    const list = await this.request<Array<Record<string, unknown>>>('GET', `/access/users/${p(userid)}/token`)
    return list.map((t) => ({tokenid: String(t.tokenid), privsep: Number(t.privsep ?? 1) === 1, expire: Number(t.expire ?? 0)}))
  }
  async createToken(userid: string, tokenid: string, opts: {privsep?: boolean; comment?: string} = {}): Promise<{fullTokenId: string; secret: string}> {
    const r = await this.request<{'full-tokenid': string; value: string}>('POST', `/access/users/${p(userid)}/token/${p(tokenid)}`, {
      privsep: opts.privsep ?? true,
      comment: opts.comment,
    })
    registerSecret(r.value)
    return {fullTokenId: r['full-tokenid'], secret: r.value}
  }
  async deleteToken(userid: string, tokenid: string): Promise<void> {
    await this.request('DELETE', `/access/users/${p(userid)}/token/${p(tokenid)}`)
  }
  /** Effective privileges of the caller (or of `userid`, a user or token) on `path`. */
  async permissions(path: string, userid?: string): Promise<string[]> {
    const r = await this.request<Record<string, Record<string, number>>>('GET', '/access/permissions', {path, userid})
    return Object.keys(r[path] ?? {}).sort()
  }
}

// ---- helpers -------------------------------------------------------------------------------------
/** Encode one path segment (UPIDs contain ':' and '@', user IDs '@', token IDs '!'). */
export function p(segment: string | number): string {
  return encodeURIComponent(String(segment))
}

export function upidNode(upid: string): string {
  const parts = upid.split(':')
  if (parts[0] !== 'UPID' || parts.length < 9) throw new UserError(`"${upid}" is not a Proxmox task ID (UPID).`)
  return parts[1]
}

function parseApiUrl(raw: string): URL {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new UsageError(`"${raw}" is not a URL.`, {suggestion: 'Pass --proxmox-url https://<host>:8006'})
  }
  if (u.protocol !== 'https:') throw new UsageError(`The Proxmox URL must use https (got ${u.protocol}//).`, {suggestion: 'Pass --proxmox-url https://<host>:8006'})
  // proxmox-api has no default port.
  if (!u.port) u.port = '8006'
  return u
}

function toStorage(s: Record<string, unknown>): StorageInfo {
  const total = Number(s.total ?? 0)
  const used = Number(s.used ?? 0)
  return {
    storage: String(s.storage),
    type: String(s.type ?? ''),
    content: splitList(s.content),
    active: Number(s.active ?? 1) === 1,
    enabled: Number(s.enabled ?? 1) === 1,
    shared: Number(s.shared ?? 0) === 1,
    total,
    used,
    avail: s.avail === undefined ? total - used : Number(s.avail),
  }
}

function splitList(v: unknown): string[] {
  return v === undefined || v === null
    ? []
    : String(v)
        .split(/[,;\s]+/)
        .filter(Boolean)
}

function sortedList(v: string | undefined): string {
  return (v ?? '').split(',').filter(Boolean).sort().join(',')
}

/** Some PVE versions return `prune-backups` parsed (an object), others as the property string. */
function pruneString(v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined
  if (typeof v === 'object')
    return Object.entries(v as Record<string, unknown>)
      .map(([k, n]) => `${k}=${n}`)
      .join(',')
  return String(v)
}

function num(v: unknown): number | undefined {
  return v === undefined || v === null ? undefined : Number(v)
}

function causes(error: unknown): unknown[] {
  const out: unknown[] = []
  let cur: unknown = error
  for (let i = 0; i < 8 && cur; i++) {
    out.push(cur)
    const next = (cur as {cause?: unknown}).cause
    if (Array.isArray((cur as AggregateError).errors)) out.push(...(cur as AggregateError).errors)
    cur = next
  }
  return out
}

/**
 * PVE answers every runtime failure with 500 ("does not exist" as much as "timeout"), so only
 * gateway-type statuses and 500s whose reason says "try again" are worth re-reading.
 */
function isTransient(error: ProxmoxServerError): boolean {
  if (error.status === 502 || error.status === 503 || error.status === 504 || error.status === 595 || error.status === 596) return true
  return error.status === 500 && /timeout|timed out|temporar|try again|connection (refused|reset)|got no worker|unable to connect/i.test(error.reason)
}
