/**
 * `autolabs backup schedule`: the design document's Proxmox backup job (Datacenter → Backup):
 * daily at 02:00, snapshot mode, zstd, keep-daily 7 / keep-weekly 4, on the storage the user
 * chose (config.backup.*), for the three VMs. Created or updated under a fixed id, so running
 * it again changes nothing unless the configuration changed.
 */
import {readFile} from 'node:fs/promises'

import type {Config} from '../config/schema.js'
import {ExternalError, UserError} from '../errors.js'
import {PG_BASE_INSTALL, PG_BASE_SCRIPT_FILE, PG_BASE_SCRIPT_PATH} from './pitr-remote.js'
import type {BackupShell} from './remote.js'
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

/**
 * The daily base backup database-vm takes by itself (assets/vm/autolabs-pg-base.sh as a systemd
 * timer): the WAL archive always has a recent base, and is pruned before the oldest kept one
 * with the same retention as the workstation's backups, even while the workstation is off.
 */
export function pgBaseUnits(opts: {schedule: string; keepDaily: number; keepWeekly: number}): {service: string; timer: string; onCalendar: string} {
  // backup.schedule is a Proxmox calendar event; its common "HH:MM" form means daily in both.
  const hm = /^(\d{1,2}):(\d\d)$/.exec(opts.schedule.trim())
  const onCalendar = hm ? `*-*-* ${hm[1].padStart(2, '0')}:${hm[2]}:00` : opts.schedule.trim()
  const service = `# Managed by autolabs (\`autolabs backup schedule\`).
[Unit]
Description=autolabs: PostgreSQL base backup, then WAL archive pruning
After=postgresql.service

[Service]
Type=oneshot
ExecStart=${PG_BASE_SCRIPT_PATH} take --keep-daily ${opts.keepDaily} --keep-weekly ${opts.keepWeekly}
Nice=10
IOSchedulingClass=best-effort
IOSchedulingPriority=7`
  const timer = `# Managed by autolabs (\`autolabs backup schedule\`).
[Unit]
Description=autolabs: daily PostgreSQL base backup

[Timer]
OnCalendar=${onCalendar}
Persistent=true

[Install]
WantedBy=timers.target`
  return {service, timer, onCalendar}
}

export async function installPgBaseTimer(sh: BackupShell, units: {service: string; timer: string; onCalendar: string}): Promise<{action: 'changed' | 'unchanged'; next?: string}> {
  const script = await readFile(PG_BASE_SCRIPT_FILE, 'utf8')
  const r = await sh.exec(PG_BASE_INSTALL, {args: [script.trimEnd(), units.service, units.timer, units.onCalendar], sudo: true, timeoutMs: 120_000, label: 'install the base backup timer'})
  if (r.code === 2) throw new UserError(r.stderr.trim(), {suggestion: 'Set backup.schedule to "HH:MM" (or pass --schedule).', exitCode: 2})
  if (r.code !== 0) throw new ExternalError(`Installing the base backup timer on database-vm failed (exit ${r.code}).`, {command: 'systemctl', stderrTail: r.stderr.trim().slice(-2000)})
  const action = /^changed$/m.test(r.stdout) ? 'changed' : 'unchanged'
  return {action, next: /^next (.+)$/m.exec(r.stdout)?.[1]?.trim()}
}
