import type {Role} from '../config/schema.js'
import {CERT_WARN_DAYS} from '../util/expiry.js'
import type {WalArchiveFacts} from './probes.js'

/**
 * The result of `autolabs status`, also its `--json` shape (documented in docs/day-two.md;
 * `schemaVersion` changes only on a breaking change).
 */

/** ok: fine · warn: a threshold crossed · fail: down · unreachable: could not be asked · skipped: not applicable. */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'unreachable' | 'skipped'

export interface VmMetrics {
  /** Proxmox state: running, stopped, … */
  state?: string
  uptimeSec?: number
  cpuPct?: number
  memPct?: number
  diskPct?: number
  /** Where diskPct came from: the guest's `df /` over SSH, or Proxmox (0 for most QEMU VMs). */
  diskSource?: 'guest' | 'proxmox'
}

export interface CheckResult {
  /** Stable id, e.g. `database/postgres-login/autolabs`. */
  id: string
  /** The VM role, or `proxmox` for the API itself. */
  target: Role | 'proxmox'
  /** What is checked, for humans: "PostgreSQL login autolabs". */
  name: string
  status: CheckStatus
  /** One line: the reason for anything but ok, a short value otherwise. */
  detail: string
  durationMs: number
  metrics?: VmMetrics
  /** database/wal-archive only: the archive's size, ages and the archiver's state. */
  walArchive?: WalArchiveFacts
}

export type Overall = 'healthy' | 'degraded' | 'unreachable'

export interface StatusReport {
  schemaVersion: 1
  checkedAt: string
  durationMs: number
  overall: Overall
  exitCode: 0 | 1 | 3
  summary: Record<CheckStatus, number>
  vms: Array<{role: Role; name: string; vmid: number; ip: string} & VmMetrics>
  checks: CheckResult[]
}

export interface Thresholds {
  cpuPct: number
  memPct: number
  /** Warn when free disk is below this (i.e. used above 100 − this). */
  freeDiskPct: number
  slowMs: number
  /** Warn when GitLab's HTTPS certificate ends within this many days (as preflight does). */
  certificateDays: number
}

/** The design document's monitoring thresholds ("Мониторинг инфраструктуры"), and preflight's certificate bound. */
export const DEFAULT_THRESHOLDS: Thresholds = {cpuPct: 80, memPct: 90, freeDiskPct: 20, slowMs: 5000, certificateDays: CERT_WARN_DAYS}
