import type {ChalkInstance} from 'chalk'

import {hang, wrap} from '../ui/text.js'
import type {Plan} from './plan.js'

const gb = (mib: number) => `${Math.round((mib / 1024) * 10) / 10} GB`

/** Pure rows for the VM table (tests read these; the display aligns them). */
export function planVmRows(plan: Plan): string[][] {
  return plan.vms.map((v) => [v.name, String(v.vmid), String(v.cores), gb(v.memoryMiB), `${v.diskGiB} GB`, v.ip, v.purpose])
}

/**
 * The plan for a person: fits 80 columns (the last column of the VM table wraps, long lines
 * continue indented), headings in bold where colour is on.
 */
export function formatPlan(plan: Plan, opts: {width?: number; color?: ChalkInstance} = {}): string {
  const width = opts.width ?? 80
  const bold = (s: string) => (opts.color ? opts.color.bold(s) : s)
  const head = ['VM', 'VMID', 'Cores', 'RAM', 'Disk', 'IP', 'Role']
  const rows = [...planVmRows(plan), ['total', '', String(plan.totals.cores), gb(plan.totals.memoryMiB), `${plan.totals.diskGiB} GB`, '', '']]
  const widths = head.slice(0, -1).map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const used = widths.reduce((a, w) => a + w + 2, 0)
  const roleWidth = Math.max(16, width - used)
  const line = (cells: string[]) =>
    wrap(cells.at(-1) ?? '', roleWidth)
      .map((part, i) => [...cells.slice(0, -1).map((c, j) => (i === 0 ? c : '').padEnd(widths[j])), part].join('  ').trimEnd())
      .join('\n')

  /** `text` after `first`, continued on lines indented by `indent` spaces, within the width. */
  const fit = (first: string, text: string, indent: number) => hang(first, text, indent, width)
  const para = (text: string) => fit('', text, 2)
  const lines: string[] = []
  lines.push(para(`Environment "${plan.environment}" on ${plan.proxmox.url} (node ${plan.proxmox.node}, storage ${plan.proxmox.vmStorage}, bridge ${plan.proxmox.bridge})`))
  lines.push(para(`Template ${plan.template.vmid}: ${plan.template.os} from ${plan.template.image}`))
  lines.push(para(`Network ${plan.network.subnet}, gateway ${plan.network.gateway}, DNS ${plan.network.dns.join(', ')}`))
  lines.push('', bold(line(head)), ...rows.slice(0, -1).map(line), widths.map((w) => '-'.repeat(w)).join('  '), line(rows.at(-1)!))
  const stages = para('Stages (3 and later run over SSH on the three VMs at once; steps in order within a VM):')
  lines.push('', bold('Stages') + stages.slice('Stages'.length))
  for (const s of plan.stages) {
    lines.push(fit(`  ${s.order}. `, s.title, 5))
    for (const vm of s.vms) {
      lines.push(`     ${vm.name}:`)
      for (const [i, step] of vm.steps.entries()) lines.push(fit(`       ${s.order}.${i + 1} `, step.title, 12))
    }
  }
  if (plan.files.length > 0) {
    lines.push('', bold('Files written:'))
    for (const f of plan.files) lines.push(`  ${f}`)
  }
  return lines.join('\n')
}
