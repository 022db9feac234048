import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {UserError} from '../../errors.js'
import type {BackupJob, BackupJobSpec} from '../../proxmox/types.js'
import {assertVmsCreated} from '../../steps/vms-created.js'
import {findWorkspace} from '../../workspace/workspace.js'

export default class BackupSchedule extends BaseCommand<typeof BackupSchedule> {
  static override summary = 'Create or update the Proxmox backup job (daily 02:00, snapshot mode, zstd, keep-daily 7 / keep-weekly 4).'
  static override description = `The job "autolabs-daily" in Datacenter → Backup (/cluster/backup) backs up the three VMs with vzdump onto the storage of backup.storage in autolabs.yaml (or --storage). Running it again changes nothing unless the settings changed.`
  static override examples = [{description: 'To the "backups" storage at 03:30:', command: '<%= config.bin %> <%= command.id %> --storage backups --schedule 03:30'}]
  static override flags = {
    storage: Flags.string({summary: 'Proxmox storage for the vzdump archives (default: backup.storage).', env: 'AUTOLABS_BACKUP_STORAGE'}),
    schedule: Flags.string({summary: 'When, as a Proxmox calendar event (default: backup.schedule, 02:00).', env: 'AUTOLABS_BACKUP_SCHEDULE'}),
    'keep-daily': Flags.integer({summary: 'keep-daily (default: backup.keepDaily).', min: 0, env: 'AUTOLABS_BACKUP_KEEP_DAILY'}),
    'keep-weekly': Flags.integer({summary: 'keep-weekly (default: backup.keepWeekly).', min: 0, env: 'AUTOLABS_BACKUP_KEEP_WEEKLY'}),
  }

  public async run(): Promise<{action: 'created' | 'updated' | 'unchanged'; spec: BackupJobSpec; job?: BackupJob}> {
    const f = this.flags
    const ws = findWorkspace({dir: f.dir})
    await assertVmsCreated(ws)
    const [{openDayTwo}, {desiredBackupJob, scheduleBackupJob}] = await Promise.all([import('../../status/context.js'), import('../../backup/schedule.js')])
    const ctx = await openDayTwo(ws, {warn: (m) => this.warnUser(m)})
    try {
      if (!ctx.proxmox) throw new UserError('Scheduling the Proxmox backup job needs Proxmox API credentials.', {suggestion: 'Set AUTOLABS_PROXMOX_TOKEN_SECRET or keep the token secret in .autolabs/secrets.yaml.'})
      const config = {...ctx.config, backup: {...ctx.config.backup, ...(f.storage ? {storage: f.storage} : {}), ...(f.schedule ? {schedule: f.schedule} : {})}}
      const spec = desiredBackupJob(config, ctx.vms.map((v) => v.vmid), {keepDaily: f['keep-daily'], keepWeekly: f['keep-weekly']})
      const r = await scheduleBackupJob(ctx.proxmox, spec)
      this.info(`Backup job ${spec.id}: ${r.action} (${spec.schedule}, ${spec.mode}, ${spec.compress}, storage ${spec.storage}, VMs ${spec.vmids.join(',')}, keep-daily=${spec.prune?.daily},keep-weekly=${spec.prune?.weekly}).`)
      return {action: r.action, spec, job: r.job}
    } finally {
      await ctx.close()
    }
  }
}
