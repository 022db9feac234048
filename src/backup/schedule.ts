/**
 * `autolabs backup schedule`: the design document's Proxmox backup job (Datacenter → Backup):
 * daily at 02:00, snapshot mode, zstd, keep-daily 7 / keep-weekly 4, on the storage the user
 * chose (config.backup.*), for the three VMs. Created or updated under a fixed id, so running
 * it again changes nothing unless the configuration changed.
 */
import type {Config} from '../config/schema.js'
import type {BackupJob, BackupJobSpec} from '../proxmox/types.js'

export const BACKUP_JOB_ID = 'autolabs-daily'

export interface BackupJobApi {
  listBackupJobs(): Promise<BackupJob[]>
  upsertBackupJob(spec: BackupJobSpec): Promise<'created' | 'updated' | 'unchanged'>
}

export function desiredBackupJob(config: Config, vmids: number[], opts: {keepDaily?: number; keepWeekly?: number} = {}): BackupJobSpec {
  return {
    id: BACKUP_JOB_ID,
    schedule: config.backup.schedule,
    storage: config.backup.storage,
    vmids: [...vmids].sort((a, b) => a - b),
    mode: 'snapshot',
    compress: 'zstd',
    enabled: true,
    prune: {daily: opts.keepDaily ?? config.backup.keepDaily, weekly: opts.keepWeekly ?? config.backup.keepWeekly},
    comment: `autolabs: ${config.name} VMs (gitlab, database, k8s), managed by \`autolabs backup schedule\``,
  }
}

export async function scheduleBackupJob(api: BackupJobApi, spec: BackupJobSpec): Promise<{action: 'created' | 'updated' | 'unchanged'; job: BackupJob | undefined}> {
  const action = await api.upsertBackupJob(spec)
  const job = (await api.listBackupJobs()).find((j) => j.id === spec.id)
  return {action, job}
}
