import {BaseCommand} from '../../base-command.js'
import type {BackupListing} from '../../backup/list.js'
import {ExitCode} from '../../errors.js'
import {findWorkspace} from '../../workspace/workspace.js'

export default class BackupList extends BaseCommand<typeof BackupList> {
  static override summary = 'List local backups (backups/<id>/) and the VM snapshots, marking those autolabs made.'
  static override examples = [{description: 'Machine-readable:', command: '<%= config.bin %> <%= command.id %> --json'}]

  public async run(): Promise<BackupListing> {
    const ws = findWorkspace({dir: this.flags.dir})
    const [{openDayTwo}, {listBackups, formatBytes}] = await Promise.all([import('../../status/context.js'), import('../../backup/list.js')])
    const ctx = await openDayTwo(ws, {warn: (m) => this.warnUser(m)})
    try {
      const r = await listBackups(ws.backupsDir, {api: ctx.proxmox, node: ctx.config.proxmox.node, vms: ctx.vms})
      if (!this.jsonEnabled()) {
        const lines = ['LOCAL BACKUPS (' + ws.backupsDir + ')']
        if (r.local.length === 0) lines.push('  none — take one with `autolabs backup now`')
        for (const b of r.local) lines.push(`  ${b.id}  ${b.status.padEnd(10)} ${formatBytes(b.bytes).padStart(10)}  ${b.parts.map((p) => `${p.part}${p.status === 'ok' ? '' : ' (failed)'}`).join(', ')}`)
        lines.push('', 'SNAPSHOTS')
        if (!ctx.proxmox) lines.push('  (no Proxmox credentials in this workspace)')
        for (const s of r.snapshots) lines.push(`  ${s.vm.padEnd(12)} ${s.name.padEnd(28)} ${s.autolabs ? 'autolabs' : 'other (never pruned)'}`)
        for (const e of r.snapshotErrors) lines.push(`  ! ${e}`)
        process.stdout.write(lines.join('\n') + '\n')
      }
      // A listing with holes is not a success: a script must not take "no snapshots" for true.
      const unread = [...r.snapshotErrors, ...r.local.filter((b) => b.problem).map((b) => `${b.id}: ${b.problem}`)]
      if (unread.length > 0) {
        this.warnUser(`the listing is incomplete; could not read:\n  ${unread.join('\n  ')}`)
        process.exitCode = r.snapshotErrors.some((e) => /Cannot reach Proxmox/.test(e)) ? ExitCode.unreachable : ExitCode.failure
      }
      return r
    } finally {
      await ctx.close()
    }
  }
}
