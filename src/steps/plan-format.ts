import Table from 'cli-table3'

import type {Plan} from './plan.js'

const gb = (mib: number) => `${Math.round((mib / 1024) * 10) / 10} GB`

/** Pure rows for the VM table (tests read these; the display adds borders). */
export function planVmRows(plan: Plan): string[][] {
  return plan.vms.map((v) => [v.name, String(v.vmid), String(v.cores), gb(v.memoryMiB), `${v.diskGiB} GB`, v.ip, v.purpose])
}

export function formatPlan(plan: Plan): string {
  const table = new Table({head: ['VM', 'VMID', 'Cores', 'RAM', 'Disk', 'IP', 'Role'], style: {head: [], border: []}})
  for (const row of planVmRows(plan)) table.push(row)
  table.push(['total', '', String(plan.totals.cores), gb(plan.totals.memoryMiB), `${plan.totals.diskGiB} GB`, '', ''])

  const lines: string[] = []
  lines.push(`Environment "${plan.environment}" on ${plan.proxmox.url} (node ${plan.proxmox.node}, storage ${plan.proxmox.vmStorage}, bridge ${plan.proxmox.bridge})`)
  lines.push(`Template ${plan.template.vmid}: ${plan.template.os} from ${plan.template.image}`)
  lines.push(`Network ${plan.network.subnet}, gateway ${plan.network.gateway}, DNS ${plan.network.dns.join(', ')}`)
  lines.push('', table.toString(), '', 'Stages (3 and later run over SSH on the three VMs at once; steps in order within a VM):')
  for (const s of plan.stages) {
    lines.push(`  ${s.order}. ${s.title}`)
    for (const vm of s.vms) {
      lines.push(`     ${vm.name}:`)
      for (const [i, step] of vm.steps.entries()) lines.push(`       ${s.order}.${i + 1} ${step.title}`)
    }
  }
  if (plan.files.length > 0) {
    lines.push('', 'Files written:')
    for (const f of plan.files) lines.push(`  ${f}`)
  }
  return lines.join('\n')
}
