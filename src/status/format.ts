import {fmtPct, fmtUptime} from './evaluate.js'
import type {CheckStatus, StatusReport} from './types.js'

const MARK: Record<CheckStatus, string> = {ok: 'ok', warn: 'WARN', fail: 'FAIL', unreachable: 'UNREACHABLE', skipped: 'skipped'}

export interface Rows {
  vms: string[][]
  checks: string[][]
  footer: string
}

/** Pure: the report as table rows (header first). The display adds alignment and colour. */
export function toRows(r: StatusReport): Rows {
  const vms = [['VM', 'VMID', 'IP', 'STATE', 'UPTIME', 'CPU', 'MEM', 'DISK']]
  for (const v of r.vms) {
    vms.push([
      v.name,
      String(v.vmid),
      v.ip,
      v.state ?? '?',
      fmtUptime(v.uptimeSec),
      v.cpuPct === undefined ? '-' : fmtPct(v.cpuPct),
      v.memPct === undefined ? '-' : fmtPct(v.memPct),
      v.diskPct === undefined ? '-' : fmtPct(v.diskPct),
    ])
  }
  const checks = [['TARGET', 'CHECK', 'STATUS', 'TIME', 'DETAIL']]
  for (const c of r.checks) checks.push([c.target, c.name, MARK[c.status], `${c.durationMs} ms`, c.detail])
  const s = r.summary
  const footer = `${r.overall.toUpperCase()} (exit ${r.exitCode}): ${s.ok} ok, ${s.warn} warning${s.warn === 1 ? '' : 's'}, ${s.fail} failed, ${s.unreachable} unreachable — checked in ${(r.durationMs / 1000).toFixed(1)} s at ${r.checkedAt}`
  return {vms, checks, footer}
}

/** Plain aligned text (no table borders: diffable, greppable, fits 100 columns). */
export function renderText(r: StatusReport, opts: {color?: boolean; maxDetail?: number} = {}): string {
  const rows = toRows(r)
  const paint = (status: string, text: string) => {
    if (!opts.color) return text
    const code = status === 'ok' ? 32 : status === 'WARN' ? 33 : status === 'skipped' ? 90 : 31
    return `\u001B[${code}m${text}\u001B[0m`
  }
  const maxDetail = opts.maxDetail ?? 70
  const table = (data: string[][], statusCol?: number) => {
    const clipped = data.map((row) => row.map((cell, i) => (i === row.length - 1 && cell.length > maxDetail ? cell.slice(0, maxDetail - 1) + '…' : cell)))
    const widths = clipped[0].map((_, i) => Math.max(...clipped.map((row) => row[i].length)))
    return clipped
      .map((row, ri) =>
        row
          .map((cell, i) => {
            const padded = i === row.length - 1 ? cell : cell.padEnd(widths[i])
            return ri > 0 && i === statusCol ? paint(cell, padded) : padded
          })
          .join('  ')
          .trimEnd(),
      )
      .join('\n')
  }
  return `${table(rows.vms)}\n\n${table(rows.checks, 2)}\n\n${rows.footer}\n`
}
