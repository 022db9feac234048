import {hang, wrap} from '../ui/text.js'
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

/** Below this many columns for DETAIL, details go on their own lines under the check. */
const MIN_DETAIL = 30

/**
 * Plain aligned text (no table borders: diffable, greppable). Nothing is cut: with `width` (a
 * terminal's columns) the DETAIL column wraps at spaces, continuing under itself, or, on a narrow
 * terminal, each detail goes below its check, indented (the VM table's columns are short and fixed); without `width` (a pipe) each row is one line.
 */
export function renderText(r: StatusReport, opts: {color?: boolean; width?: number} = {}): string {
  const rows = toRows(r)
  const paint = (status: string, text: string) => {
    if (!opts.color) return text
    const code = status === 'ok' ? 32 : status === 'WARN' ? 33 : status === 'skipped' ? 90 : 31
    return `\u001B[${code}m${text}\u001B[0m`
  }
  const table = (data: string[][], statusCol?: number, width?: number) => {
    const widths = data[0].map((_, i) => Math.max(...data.map((row) => row[i].length)))
    const lead = widths.slice(0, -1).reduce((a, w) => a + w + 2, 0)
    const room = width === undefined ? Number.POSITIVE_INFINITY : width - lead
    const cells = (row: string[], ri: number) =>
      row.slice(0, -1).map((cell, i) => (ri > 0 && i === statusCol ? paint(cell, cell.padEnd(widths[i])) : cell.padEnd(widths[i])))
    return data
      .map((row, ri) => {
        const detail = row.at(-1) ?? ''
        if (detail.length <= room) return [...cells(row, ri), detail].join('  ').trimEnd()
        if (room >= MIN_DETAIL) {
          const [first, ...rest] = wrap(detail, room)
          return [[...cells(row, ri), first].join('  '), ...rest.map((l) => ' '.repeat(lead) + l)].join('\n')
        }
        return [cells(row, ri).join('  ').trimEnd(), hang('    ', detail, 4, width!)].join('\n')
      })
      .join('\n')
  }
  const footer = opts.width === undefined ? rows.footer : hang('', rows.footer, 2, opts.width)
  return `${table(rows.vms)}\n\n${table(rows.checks, 2, opts.width)}\n\n${footer}\n`
}
