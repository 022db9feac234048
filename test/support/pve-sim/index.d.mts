// Types for the JavaScript simulator (kept in .mjs so it runs without a TypeScript loader).
export interface PveSimOptions {
  /** Which PVE release to simulate; the schema used for validation follows it. Default '9.1'. */
  version?: '9.1' | '8.4'
  /** What GET /version reports (default: the schema's version, 8.4.2 or 9.1.3). */
  reportVersion?: string
  node?: string
  cpus?: number
  memoryGiB?: number
  /** Delay before a 401, like pveproxy's (real: ~3 s). Default 50 ms. */
  authFailureDelayMs?: number
  /** How long tasks stay running. Default 20 ms. */
  taskDurationMs?: number
  host?: string
  port?: number
}

export interface SimRequest {
  method: string
  path: string
  params: Record<string, string | string[]>
  status: number
  statusText: string
  /** Set when the request failed schema validation (400) or matched no endpoint (501). */
  invalid?: Record<string, string>
  auth?: string
  /** The delay applied before a 401 answer (authFailureDelayMs), as PVE delays failed logins. */
  delayedMs?: number
}

export interface SimVm {
  vmid: number
  node: string
  status: 'running' | 'stopped'
  lock?: string
  config: Record<string, string>
  snapshots: Array<{name: string; description: string; snaptime: number; vmstate: boolean; parent?: string; config: Record<string, string>}>
  parent?: string
  agent: {
    running: boolean
    files: Map<string, string>
    interfaces?: unknown[]
    exec?: (command: string[], input?: string) => {exitcode: number; out?: string; err?: string}
  }
}

export interface SimStorage {
  storage: string
  type: string
  path?: string
  content: Set<string>
  total: number
  used: number
  enabled: boolean
  shared: boolean
}

export interface SimTask {
  upid: string
  node: string
  type: string
  id: string
  user: string
  status: 'running' | 'stopped'
  exitstatus?: string
  log: string[]
}

export interface SimState {
  node: string
  nodeInfo: {cpus: number; maxmem: number; mem: number; cpu: number; uptime: number}
  storages: Map<string, SimStorage>
  volumes: Map<string, {volid: string; storage: string; content: string; format: string; size: number; vmid?: number; ctime: number}>
  network: Array<Record<string, unknown> & {iface: string; type: string}>
  vms: Map<number, SimVm>
  tasks: Map<string, SimTask>
  users: Map<string, {userid: string; enable: number; expire: number; comment?: string; password?: string; tokens: Map<string, {privsep: number; expire: number; comment?: string; secret: string}>}>
  roles: Map<string, {privs: Set<string>; special: number}>
  acl: Array<{path: string; type: 'user' | 'token' | 'group'; ugid: string; roleid: string; propagate: number}>
  backupJobs: Map<string, Record<string, unknown> & {id: string}>
  downloads: Map<string, {size?: number; sha256?: string}>
}

export declare class PveSim {
  readonly url: string
  readonly port: number
  readonly release: '9.1' | '8.4'
  /** Full version, e.g. "9.1.3". */
  readonly pveVersion: string
  readonly node: string
  /** SHA-256 of the served certificate, colon-separated uppercase hex. */
  readonly fingerprint: string
  readonly certificate: {key: string; cert: string; fingerprint: string}
  readonly adminTokenId: string
  readonly adminTokenSecret: string
  readonly rootPassword: string
  readonly state: SimState
  readonly requests: SimRequest[]
  readonly invalidRequests: SimRequest[]
  taskDurationMs: number
  authFailureDelayMs: number
  stop(): Promise<void>
  clearRequests(): void
  failNext(count?: number, message?: string): void
  failNextTask(opts?: {type?: string; message?: string; log?: string[]}): void
  setTaskDuration(ms: number): void
  /** A second concurrent clone of the same source fails with PVE's lock timeout. */
  exclusiveClones(on?: boolean): void
  setResponseDelay(ms: number): void
  expireCredentials(): void
  lockVm(vmid: number, lock?: string): void
  unlockVm(vmid: number): void
  rotateCertificate(): Promise<string>
  addVm(vmid: number, spec?: {name?: string; config?: Record<string, string>; status?: 'running' | 'stopped'; template?: boolean}): SimVm
  vm(vmid: number): SimVm
  setAgentFile(vmid: number, file: string, content: string): void
  setAgentRunning(vmid: number, running: boolean): void
  setStorage(id: string, patch: Partial<Omit<SimStorage, 'content'>> & {content?: string[]}): SimStorage
  addVolume(volid: string, opts?: {content?: string; size?: number; format?: string; vmid?: number}): void
  setNode(patch: Partial<SimState['nodeInfo']>): void
  /** Privileges a user/token has on an ACL path (for assertions). */
  privileges(auth: {userid: string; tokenid?: string; privsep?: boolean}, path: string): Set<string>
}

export declare function startPveSim(opts?: PveSimOptions): Promise<PveSim>
export declare function makeCertificate(cn?: string): Promise<{key: string; cert: string; fingerprint: string}>
