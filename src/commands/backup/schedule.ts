import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {UserError} from '../../errors.js'
import type {BackupJob, BackupJobSpec} from '../../proxmox/types.js'
import {assertVmsCreated} from '../../steps/vms-created.js'
import {findWorkspace} from '../../workspace/workspace.js'

const TARGETS = ['proxmox', 'database'] as const

type ScheduleResult = {
  action?: 'created' | 'updated' | 'unchanged'
  spec?: BackupJobSpec
  job?: BackupJob
  databaseTimer?: {action: 'changed' | 'unchanged' | 'failed'; onCalendar: string; next?: string; error?: string}
}

export default class BackupSchedule extends BaseCommand<typeof BackupSchedule> {
  static override summary = 'Schedule backups: the Proxmox backup job (daily 02:00, snapshot mode, zstd, keep-daily 7 / keep-weekly 4) and the daily PostgreSQL base backup on database-vm.'
  static override description = `proxmox   the job "autolabs-daily" in Datacenter → Backup (/cluster/backup) backs up the three VMs with vzdump onto the storage of backup.storage in autolabs.yaml (or --storage)
database  a systemd timer on database-vm (autolabs-pg-base.timer, at the same time) takes a pg_basebackup into /var/lib/postgresql/base-backups, keeps keep-daily/keep-weekly of them, and removes the WAL archive's segments older than the oldest one kept: the archive stays bounded and always has a recent base, even when this workstation is off
Running it again changes nothing unless the settings changed.`
  static override examples = [
    {description: 'To the "backups" storage at 03:30:', command: '<%= config.bin %> <%= command.id %> --storage backups --schedule 03:30'},
    {description: 'Only the base backup timer on database-vm:', command: '<%= config.bin %> <%= command.id %> --only database'},
  ]
  static override flags = {
    storage: Flags.string({summary: 'Proxmox storage for the vzdump archives (default: backup.storage).', env: 'AUTOLABS_BACKUP_STORAGE'}),
    schedule: Flags.string({summary: 'When, as a Proxmox calendar event (default: backup.schedule, 02:00).', env: 'AUTOLABS_BACKUP_SCHEDULE'}),
    'keep-daily': Flags.integer({summary: 'keep-daily (default: backup.keepDaily).', min: 0, env: 'AUTOLABS_BACKUP_KEEP_DAILY'}),
    'keep-weekly': Flags.integer({summary: 'keep-weekly (default: backup.keepWeekly).', min: 0, env: 'AUTOLABS_BACKUP_KEEP_WEEKLY'}),
    only: Flags.string({summary: 'Schedule only this (repeatable): proxmox (the vzdump job) or database (the base backup timer).', options: [...TARGETS], multiple: true, env: 'AUTOLABS_SCHEDULE_ONLY'}),
  }

  public async run(): Promise<ScheduleResult> {
    const f = this.flags
    const targets = f.only && f.only.length > 0 ? f.only : [...TARGETS]
    const ws = findWorkspace({dir: f.dir})
    await assertVmsCreated(ws)
    const [{openDayTwo}, {desiredBackupJob, scheduleBackupJob, pgBaseUnits, installPgBaseTimer}] = await Promise.all([import('../../status/context.js'), import('../../backup/schedule.js')])
    const ctx = await openDayTwo(ws, {warn: (m) => this.warnUser(m), withProxmox: targets.includes('proxmox')})
    try {
      const config = {...ctx.config, backup: {...ctx.config.backup, ...(f.storage ? {storage: f.storage} : {}), ...(f.schedule ? {schedule: f.schedule} : {})}}
      const keepDaily = f['keep-daily'] ?? config.backup.keepDaily
      const keepWeekly = f['keep-weekly'] ?? config.backup.keepWeekly
      const result: ScheduleResult = {}
      if (targets.includes('database')) {
        const units = pgBaseUnits({schedule: config.backup.schedule, keepDaily, keepWeekly})
        try {
          const sh = await ctx.connect('database')
          try {
            const r = await installPgBaseTimer(sh, units)
            result.databaseTimer = {action: r.action, onCalendar: units.onCalendar, next: r.next}
            this.info(`Base backup timer on ${ctx.vms.find((v) => v.role === 'database')!.name}: ${r.action} (${units.onCalendar}, keep-daily=${keepDaily},keep-weekly=${keepWeekly}${r.next ? `; next ${r.next}` : ''}).`)
          } finally {
            await sh.close()
          }
        } catch (error) {
          if (error instanceof UserError && error.exitCode === 2) throw error
          result.databaseTimer = {action: 'failed', onCalendar: units.onCalendar, error: (error as Error).message}
          this.warnUser(`base backup timer on database-vm: ${(error as Error).message}`)
          process.exitCode = 1
        }
      }
      if (targets.includes('proxmox')) {
        if (!ctx.proxmox) throw new UserError('Scheduling the Proxmox backup job needs Proxmox API credentials.', {suggestion: 'Set AUTOLABS_PROXMOX_TOKEN_SECRET or keep the token secret in .autolabs/secrets.yaml (or pass --only database).'})
        const spec = desiredBackupJob(config, ctx.vms.map((v) => v.vmid), {keepDaily, keepWeekly})
        const r = await scheduleBackupJob(ctx.proxmox, spec)
        this.info(`Backup job ${spec.id}: ${r.action} (${spec.schedule}, ${spec.mode}, ${spec.compress}, storage ${spec.storage}, VMs ${spec.vmids.join(',')}, keep-daily=${spec.prune?.daily},keep-weekly=${spec.prune?.weekly}).`)
        Object.assign(result, {action: r.action, spec, job: r.job})
      }
      return result
    } finally {
      await ctx.close()
    }
  }
}
