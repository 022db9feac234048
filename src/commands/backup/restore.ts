import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {UsageError} from '../../errors.js'
import {sshFlags, sshOptions} from '../../ssh/flags.js'
import {findWorkspace} from '../../workspace/workspace.js'

import type {PitrResult} from '../../backup/pitr.js'

type RestoreResult = {what: 'postgres' | 'etcd' | 'snapshot'; id: string; vm?: string; durationMs?: number; previousDataDir?: string; pitr?: PitrResult}

export default class BackupRestore extends BaseCommand<typeof BackupRestore> {
  static override summary = 'Restore PostgreSQL or etcd from a backup, or roll a VM back to an autolabs snapshot.'
  static override description = `  backup restore postgres --to <time>
      point in time: the newest base backup before <time>, replayed through
      the WAL archive up to <time> ("latest": to the end of the archive);
      the current data directory is kept on the VM
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
    {description: 'Undo a dropped table: back to 14:04 today (your time zone):', command: '<%= config.bin %> <%= command.id %> postgres --to "2026-12-01 14:04"'},
    {description: 'Restore the databases from a dump:', command: '<%= config.bin %> <%= command.id %> postgres 20261125-020000'},
    {description: 'Roll the database VM back:', command: '<%= config.bin %> <%= command.id %> snapshot database-vm 20261125-020000 --yes'},
  ]
  static override args = {
    what: Args.string({description: 'postgres, etcd or snapshot', required: true, options: ['postgres', 'etcd', 'snapshot']}),
    target: Args.string({description: 'The backup id (postgres/etcd) or the VM (snapshot).'}),
    id: Args.string({description: 'The backup id (snapshot only).'}),
  }
  static override flags = {
    yes: Flags.boolean({char: 'y', summary: 'Do not ask for confirmation.', env: 'AUTOLABS_YES', default: false}),
    ...sshFlags,
    to: Flags.string({summary: 'postgres only: restore to this time ("YYYY-MM-DD HH:MM[:SS]", your time zone unless given) or "latest", from a base backup and the WAL archive.', env: 'AUTOLABS_RESTORE_TO'}),
  }

  public async run(): Promise<RestoreResult> {
    const {args, flags} = await this.parse(BackupRestore)
    const what = args.what as RestoreResult['what']
    if (flags.to !== undefined) return this.pointInTime(what, flags.to, args.target, flags.yes, flags.dir)
    if (!args.target) throw new UsageError(`backup restore ${what} needs ${what === 'snapshot' ? 'the VM and the backup id' : 'the backup id'}${what === 'postgres' ? ', or --to <time>' : ''}.`, {suggestion: 'List the backups with `autolabs backup list`.'})
    const id = what === 'snapshot' ? args.id : args.target
    if (!id) throw new UsageError('backup restore snapshot needs the VM and the backup id: `autolabs backup restore snapshot <vm> <id>`.')
    if (what !== 'snapshot' && args.id) throw new UsageError(`backup restore ${what} takes only the backup id (got an extra "${args.id}").`)
    const ws = findWorkspace({dir: flags.dir})
    const [{openDayTwo}, restore, {canPrompt}] = await Promise.all([import('../../status/context.js'), import('../../backup/restore.js'), import('../../prompts/ask.js')])
    const ctx = await openDayTwo(ws, {warn: (m) => this.warnUser(m), withProxmox: what === 'snapshot', ssh: what === 'snapshot' ? undefined : sshOptions(flags, canPrompt() && !this.jsonEnabled())})
    try {
      const vm = what === 'snapshot' ? ctx.vms.find((v) => v.name === args.target || v.role === args.target) : undefined
      if (what === 'snapshot' && !vm) throw new UsageError(`No VM "${args.target}": use one of ${ctx.vms.map((v) => v.name).join(', ')}.`)
      const question =
        what === 'postgres'
          ? `Replace ALL PostgreSQL databases on ${ctx.vms.find((v) => v.role === 'database')!.name} with backup ${id}? Current data is lost.`
          : what === 'etcd'
            ? `Stop etcd on ${ctx.vms.find((v) => v.role === 'k8s')!.name} and restore the cluster state of backup ${id}?`
            : `Roll ${vm!.name} back to snapshot autolabs-${id}? Everything since is lost.`
      if (!flags.yes) await this.confirmOrStop(question)
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

  /** Asks (or, without a terminal or under --json, stops with the question and the flag to pass). */
  private async confirmOrStop(question: string): Promise<void> {
    const {canPrompt} = await import('../../prompts/ask.js')
    if (!canPrompt() || this.jsonEnabled()) throw new UsageError(`${question}\nThis needs confirmation.`, {suggestion: 'Pass --yes (or set AUTOLABS_YES=true) to confirm.'})
    const {confirm} = await import('@inquirer/prompts')
    if (!(await confirm({message: question, default: false}, {output: process.stderr}))) throw new UsageError('Not confirmed: nothing was changed.')
  }

  private async pointInTime(what: RestoreResult['what'], to: string, extra: string | undefined, yes: boolean, dir: string | undefined): Promise<RestoreResult> {
    if (what !== 'postgres') throw new UsageError(`--to restores PostgreSQL to a point in time; it does not apply to ${what}.`)
    if (extra) throw new UsageError(`--to picks the base backup itself: drop the backup id "${extra}", or drop --to to restore that dump.`)
    const ws = findWorkspace({dir})
    const [{openDayTwo}, pitr, {hasZstd}] = await Promise.all([import('../../status/context.js'), import('../../backup/pitr.js'), import('../../backup/streams.js')])
    const target = pitr.parseTarget(to)
    const plan = await pitr.planPitr(ws.backupsDir, target)
    const ctx = await openDayTwo(ws, {warn: (m) => this.warnUser(m), withProxmox: false})
    try {
      const vm = ctx.vms.find((v) => v.role === 'database')!
      if (!yes) await this.confirmOrStop(pitrQuestion(plan, vm.name, ctx.config.services.postgres.databases, new Date()))
      const r = await pitr.restorePitr(ws.backupsDir, plan, () => ctx.connect('database'), {
        compression: hasZstd() ? 'zstd' : 'gzip',
        pgVersion: ctx.config.services.postgres.version,
        logFile: ws.logFile(`restore-postgres-pitr-${plan.base.id}.log`),
        onProgress: (m) => this.info(m),
      })
      this.info(`PostgreSQL restored to ${r.target} from base backup ${r.base}${r.replayedTo ? ` (last transaction replayed: ${r.replayedTo})` : ''} in ${(r.durationMs / 1000).toFixed(1)} s.`)
      if (r.previousDataDir) this.info(`The data as it was before is kept on ${vm.name} in ${r.previousDataDir}; remove it once you are satisfied.`)
      return {what, id: r.base, durationMs: r.durationMs, previousDataDir: r.previousDataDir, pitr: r}
    } finally {
      await ctx.close()
    }
  }
}

/** The confirmation of a point-in-time restore: what is restored, and what is lost. */
export function pitrQuestion(plan: {base: {id: string}; target: {latest: true} | {latest: false; time: Date}}, vm: string, databases: string[], now: Date): string {
  const dbs = databases.join(', ')
  if (plan.target.latest) {
    return `Rebuild PostgreSQL on ${vm} from base backup ${plan.base.id} and replay the whole WAL archive? The WAL in progress is archived first while PostgreSQL runs; if it does not run, changes after the newest archived WAL segment are lost. The current data directory is kept on the VM.`
  }
  const t = plan.target.time
  const local = t.toLocaleString('sv-SE', {hour12: false}).slice(0, 19)
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone
  const mins = Math.max(0, Math.round((now.getTime() - t.getTime()) / 60_000))
  const span = mins >= 60 * 24 ? `${Math.floor(mins / 1440)} d ${Math.floor((mins % 1440) / 60)} h` : mins >= 60 ? `${Math.floor(mins / 60)} h ${mins % 60} min` : `${mins} min`
  return `Restore PostgreSQL on ${vm} to ${local} ${zone} (${t.toISOString().replace('.000Z', 'Z')}) from base backup ${plan.base.id} and the WAL archive? LOST: every change to every database (${dbs}) and role made after that time, the last ${span}. The current data directory is kept on the VM.`
}
