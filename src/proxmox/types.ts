/** Shapes returned by ProxmoxClient (normalised: numbers are numbers, lists are arrays). */

export interface NodeInfo {
  node: string
  status: string
  maxcpu?: number
  maxmem?: number
  mem?: number
  cpu?: number
  uptime?: number
}

export interface NodeStatus {
  cpus: number
  cpuModel: string
  /** 0..1 */
  cpuUsage: number
  memTotal: number
  memUsed: number
  memFree: number
  uptime: number
  pveVersion: string
}

export interface StorageInfo {
  storage: string
  type: string
  content: string[]
  active: boolean
  enabled: boolean
  shared: boolean
  /** bytes */
  total: number
  used: number
  avail: number
}

export interface Volume {
  volid: string
  content: string
  format?: string
  size?: number
  vmid?: number
}

export interface Bridge {
  iface: string
  type: string
  active: boolean
  cidr?: string
  address?: string
  gateway?: string
  ports?: string
  comments?: string
}

export type VmConfig = Record<string, string>

export interface VmInfo {
  vmid: number
  name: string
  status: string
  template: boolean
  lock?: string
  tags: string[]
  config?: VmConfig
}

export interface VmStatus {
  vmid: number
  name: string
  status: string
  /** 0..1 of the VM's cores */
  cpu: number
  cpus: number
  mem: number
  maxmem: number
  disk: number
  maxdisk: number
  uptime: number
  lock?: string
  template: boolean
  agent: boolean
}

export interface Snapshot {
  name: string
  description: string
  snaptime?: number
  vmstate: boolean
  parent?: string
}

export interface TaskStatus {
  upid: string
  node: string
  type: string
  id: string
  user: string
  status: 'running' | 'stopped'
  exitstatus?: string
  starttime: number
}

export interface ClusterResource {
  id: string
  type: string
  node?: string
  vmid?: number
  name?: string
  status?: string
  storage?: string
  [key: string]: unknown
}

export interface BackupJob {
  id: string
  schedule?: string
  storage?: string
  vmids: number[]
  all: boolean
  mode?: string
  enabled: boolean
  pruneBackups?: string
  comment?: string
  nextRun?: number
  compress?: string
}

export interface BackupJobSpec {
  id: string
  /** systemd-like calendar event, e.g. "02:00" or "sun 01:00". */
  schedule: string
  storage: string
  vmids: number[]
  mode?: 'snapshot' | 'suspend' | 'stop'
  enabled?: boolean
  prune?: {last?: number; hourly?: number; daily?: number; weekly?: number; monthly?: number; yearly?: number}
  comment?: string
  notesTemplate?: string
  /** vzdump compression (the design document's job uses zstd). */
  compress?: '0' | '1' | 'gzip' | 'lzo' | 'zstd'
}
