import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {UsageError} from '../../errors.js'
import {findWorkspace} from '../../workspace/workspace.js'

type RestoreResult = {what: 'postgres' | 'etcd' | 'snapshot'; id: string; vm?: string; durationMs?: number; previousDataDir?: string}

export default class BackupRestore extends BaseCommand<typeof BackupRestore> {
  static override summary = 'Restore PostgreSQL or etcd from a backup, or roll a VM back to an autolabs snapshot.'
  static override description = `  backup restore postgres <id>
      replaces every database, role and grant with the dump (connections
      are closed)
  backup restore etcd <id>
      stops etcd, restores the snapshot into a new data dir (the old one is
      kept beside it), starts etcd
  backup restore snapshot <vm> <id>
      Proxmox rollback of <vm> (gitlab-vm, database-vm, k8s-vm or its role)
      to autolabs-<id>
Each asks for confirmation; without a terminal pass --yes. The backup's checksum is checked first.`
  static override examples = [
    {description: 'Restore the databases:', command: '<%= config.bin %> <%= command.id %> postgres 20261125-020000'},
    {description: 'Roll the database VM back:', command: '<%= config.bin %> <%= command.id %> snapshot database-vm 20261125-020000 --yes'},
  ]
  static override args = {
    what: Args.string({description: 'postgres, etcd or snapshot', required: true, options: ['postgres', 'etcd', 'snapshot']}),
    target: Args.string({description: 'The backup id (postgres/etcd) or the VM (snapshot).', required: true}),
    id: Args.string({description: 'The backup id (snapshot only).'}),
  }
  static override flags = {
    yes: Flags.boolean({char: 'y', summary: 'Do not ask for confirmation.', env: 'AUTOLABS_YES', default: false}),
  }

  public async run(): Promise<RestoreResult> {
    const {args, flags} = await this.parse(BackupRestore)
    const what = args.what as RestoreResult['what']
    const id = what === 'snapshot' ? args.id : args.target
    if (!id) throw new UsageError('backup restore snapshot needs the VM and the backup id: `autolabs backup restore snapshot <vm> <id>`.')
    if (what !== 'snapshot' && args.id) throw new UsageError(`backup restore ${what} takes only the backup id (got an extra "${args.id}").`)
    const ws = findWorkspace({dir: flags.dir})
    const [{openDayTwo}, restore, {canPrompt}] = await Promise.all([import('../../status/context.js'), import('../../backup/restore.js'), import('../../prompts/ask.js')])
    const ctx = await openDayTwo(ws, {warn: (m) => this.warnUser(m), withProxmox: what === 'snapshot'})
    try {
      const vm = what === 'snapshot' ? ctx.vms.find((v) => v.name === args.target || v.role === args.target) : undefined
      if (what === 'snapshot' && !vm) throw new UsageError(`No VM "${args.target}": use one of ${ctx.vms.map((v) => v.name).join(', ')}.`)
      const question =
        what === 'postgres'
          ? `Replace ALL PostgreSQL databases on ${ctx.vms.find((v) => v.role === 'database')!.name} with backup ${id}? Current data is lost.`
          : what === 'etcd'
            ? `Stop etcd on ${ctx.vms.find((v) => v.role === 'k8s')!.name} and restore the cluster state of backup ${id}?`
            : `Roll ${vm!.name} back to snapshot autolabs-${id}? Everything since is lost.`
      if (!flags.yes) {
        if (!canPrompt() || this.jsonEnabled()) throw new UsageError(`${question}\nThis needs confirmation.`, {suggestion: 'Pass --yes (or set AUTOLABS_YES=true) to confirm.'})
        const {confirm} = await import('@inquirer/prompts')
        if (!(await confirm({message: question, default: false}, {output: process.stderr}))) throw new UsageError('Not confirmed: nothing was changed.')
      }
      if (what === 'postgres') {
        const r = await restore.restorePostgres(ws.backupsDir, id, () => ctx.connect('database'), {logFile: ws.logFile(`restore-postgres-${id}.log`)})
        this.info(`PostgreSQL restored from ${id} in ${(r.durationMs / 1000).toFixed(1)} s.`)
        return {what, id, durationMs: r.durationMs}
      }
      if (what === 'etcd') {
        const r = await restore.restoreEtcd(ws.backupsDir, id, () => ctx.connect('k8s'), {logFile: ws.logFile(`restore-etcd-${id}.log`)})
        this.info(`etcd restored from ${id}; the previous data is kept in ${r.previousDataDir ?? '(none)'}.`)
        return {what, id, durationMs: r.durationMs, previousDataDir: r.previousDataDir}
      }
      if (!ctx.proxmox) throw new UsageError('Rolling back a snapshot needs Proxmox API credentials.', {suggestion: 'Set AUTOLABS_PROXMOX_TOKEN_SECRET or keep the token secret in .autolabs/secrets.yaml.'})
      const r = await restore.restoreSnapshot(ctx.proxmox, ctx.config.proxmox.node, vm!, id)
      this.info(`${r.vm} rolled back to ${r.snapshot}.`)
      return {what, id, vm: r.vm}
    } finally {
      await ctx.close()
    }
  }
}
