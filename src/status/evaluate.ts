import type {CheckResult, CheckStatus, Overall, Thresholds, VmMetrics} from './types.js'

/**
 * Overall verdict and exit code, pure:
 * - unreachable (3): something could not be asked at all (the Proxmox API, a VM over SSH) —
 *   the picture is incomplete, which matters more than any single failure;
 * - degraded (1): everything answered, but a service is down;
 * - healthy (0): everything answered and is up. Threshold warnings (CPU, memory, disk, slow
 *   answers) are reported but keep the exit code 0: they ask for attention, not for paging.
 */
export function evaluate(checks: CheckResult[]): {overall: Overall; exitCode: 0 | 1 | 3; summary: Record<CheckStatus, number>} {
  const summary: Record<CheckStatus, number> = {ok: 0, warn: 0, fail: 0, unreachable: 0, skipped: 0}
  for (const c of checks) summary[c.status]++
  if (summary.unreachable > 0) return {overall: 'unreachable', exitCode: 3, summary}
  if (summary.fail > 0) return {overall: 'degraded', exitCode: 1, summary}
  return {overall: 'healthy', exitCode: 0, summary}
}

/** Resource warnings for one VM's metrics (empty when within the thresholds). */
export function metricWarnings(m: VmMetrics, t: Thresholds): string[] {
  const w: string[] = []
  if (m.cpuPct !== undefined && m.cpuPct > t.cpuPct) w.push(`CPU ${fmtPct(m.cpuPct)} > ${t.cpuPct} %`)
  if (m.memPct !== undefined && m.memPct > t.memPct) w.push(`memory ${fmtPct(m.memPct)} > ${t.memPct} %`)
  if (m.diskPct !== undefined && 100 - m.diskPct < t.freeDiskPct) w.push(`free disk ${fmtPct(100 - m.diskPct)} < ${t.freeDiskPct} %`)
  return w
}

/** A check that answered ok but slower than the threshold becomes a warning. */
export function applySlow(c: CheckResult, t: Thresholds): CheckResult {
  if (c.status === 'ok' && c.durationMs > t.slowMs) {
    return {...c, status: 'warn', detail: `slow: answered in ${(c.durationMs / 1000).toFixed(1)} s (> ${t.slowMs / 1000} s)${c.detail ? `; ${c.detail}` : ''}`}
  }
  return c
}

export function fmtPct(v: number): string {
  return `${Math.round(v * 10) / 10} %`
}

export function fmtUptime(sec: number | undefined): string {
  if (sec === undefined) return '-'
  if (sec < 3600) return `${Math.floor(sec / 60)}m`
  if (sec < 86_400) return `${Math.floor(sec / 3600)}h ${Math.floor((sec % 3600) / 60)}m`
  return `${Math.floor(sec / 86_400)}d ${Math.floor((sec % 86_400) / 3600)}h`
}
