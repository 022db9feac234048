import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import type {BackupEvent, BackupResult} from '../../backup/run.js'
import {PARTS, type PartName} from '../../backup/manifest.js'
import type {PackedWorkspace} from '../../backup/parts.js'
import type {Config} from '../../config/schema.js'
import {UserError} from '../../errors.js'
import {canPrompt} from '../../prompts/ask.js'
import {sshFlags, sshOptions} from '../../ssh/flags.js'
import {assertVmsCreated} from '../../steps/vms-created.js'
import type {EncryptKey} from '../../workspace/archive.js'
import {findWorkspace, type Workspace} from '../../workspace/workspace.js'

export default class BackupNow extends BaseCommand<typeof BackupNow> {
  static override summary = 'Back up now: Proxmox snapshots, pg_dumpall, a PostgreSQL base backup and its WAL, gitlab-backup and an etcd snapshot, all at once.'
  static override description = `Into backups/<id>/ of the workspace (id = UTC time, e.g. 20261125-020000):
  snapshots   a Proxmox snapshot "autolabs-<id>" of each VM
  postgres    pg_dumpall streamed over SSH, compressed on the way
              (postgres.sql.zst)
  basebackup  pg_basebackup streamed the same way (base.tar.zst), with its
              WAL range: the start of a point-in-time restore
  wal         database-vm's WAL archive files not yet here, into
              backups/wal/ (after the base backup); cheap, worth a cron job
  gitlab      gitlab-backup create in the GitLab container, plus
              gitlab-secrets.json and gitlab.rb (0600)
  etcd        etcdctl snapshot save with the kubeadm certificates
  workspace   the workspace's private state (secrets, Terraform state, host
              keys, kubeconfig), age-encrypted to backup.recipients or a
              passphrase (workspace.tar.age), with a copy on database-vm
manifest.json records each part: files, sizes, SHA-256, versions, duration, ok/failed. One failing part does not stop the others; the exit code is 1 if any failed.

Afterwards, retention keeps --keep-daily/--keep-weekly (default: autolabs.yaml backup.keepDaily/keepWeekly, 7/4) of the local backups and of the snapshots autolabs made; other snapshots are never touched. WAL in backups/wal/ older than the oldest kept base backup is removed.`

  static override examples = [
    {description: 'Everything:', command: '<%= config.bin %> <%= command.id %>'},
    {description: 'Only the databases, keep 14 daily:', command: '<%= config.bin %> <%= command.id %> --only postgres --keep-daily 14'},
    {description: 'Copy the WAL archive off database-vm (e.g. every 15 minutes from cron):', command: '<%= config.bin %> <%= command.id %> --only wal'},
  ]

  static override flags = {
    only: Flags.string({summary: 'Take only these parts (repeatable).', options: [...PARTS], multiple: true, env: 'AUTOLABS_BACKUP_ONLY'}),
    'keep-daily': Flags.integer({summary: 'Daily backups to keep (default: backup.keepDaily).', min: 0, env: 'AUTOLABS_BACKUP_KEEP_DAILY'}),
    'keep-weekly': Flags.integer({summary: 'Weekly backups to keep (default: backup.keepWeekly).', min: 0, env: 'AUTOLABS_BACKUP_KEEP_WEEKLY'}),
    'no-prune': Flags.boolean({summary: 'Do not apply retention this time.', env: 'AUTOLABS_BACKUP_NO_PRUNE', default: false}),
    'passphrase-file': Flags.string({summary: 'File whose first line is the passphrase of the workspace archive (when backup.recipients is empty).', env: 'AUTOLABS_BACKUP_PASSPHRASE_FILE'}),
    ...sshFlags,
  }

  public async run(): Promise<BackupResult> {
    const f = this.flags
    const ws = findWorkspace({dir: f.dir})
    await assertVmsCreated(ws)
    const [{openDayTwo}, {runBackup}, {formatBytes}] = await Promise.all([import('../../status/context.js'), import('../../backup/run.js'), import('../../backup/list.js')])
    const parts = (f.only ?? []) as PartName[]
    const ctx = await openDayTwo(ws, {
      warn: (m) => this.warnUser(m),
      withProxmox: parts.length === 0 || parts.includes('snapshots'),
      // Snapshots and the workspace archive need no SSH up front (its copy to a VM connects
      // lazily, and fails only that part): then nothing is asked for.
      ssh: parts.some((p) => p !== 'snapshots' && p !== 'workspace') || parts.length === 0 ? sshOptions(f, canPrompt() && !this.jsonEnabled()) : undefined,
    })
    // The archive's key is settled before any progress line: a prompt must not interleave with them.
    const packWorkspace = parts.length === 0 || parts.includes('workspace') ? await this.workspacePacker(ctx.ws, ctx.config, f['passphrase-file']) : undefined
    const progress = new Progress((line, final) => {
      if (this.jsonEnabled()) return
      if (process.stderr.isTTY && !final) process.stderr.write(`\r\u001B[K${line}`)
      else if (final) process.stderr.write(`${process.stderr.isTTY ? '\r\u001B[K' : ''}${line}\n`)
    }, formatBytes)
    try {
      const result = await runBackup(
        {
          backupsDir: ws.backupsDir,
          node: ctx.config.proxmox.node,
          vms: ctx.vms,
          parts,
          retention: f['no-prune'] ? undefined : {keepDaily: f['keep-daily'] ?? ctx.config.backup.keepDaily, keepWeekly: f['keep-weekly'] ?? ctx.config.backup.keepWeekly},
          onEvent: (e) => progress.on(e),
          logDir: ws.logsDir,
          version: this.config.version,
          workspaceCopyTo: ctx.config.backup.workspaceCopyTo,
        },
        {connect: (role) => ctx.connect(role), proxmox: ctx.proxmox, packWorkspace},
      )
      const m = result.manifest
      this.info(`Backup ${m.id}: ${m.status} in ${(m.durationMs / 1000).toFixed(1)} s → ${result.dir}`)
      if (result.retention.removedWal.length > 0) this.info(`Retention removed ${result.retention.removedWal.length} WAL files older than the oldest kept base backup from backups/wal.`)
      if (result.retention.removedLocal.length + result.retention.removedSnapshots.length > 0) {
        this.info(`Retention removed: ${[...result.retention.removedLocal, ...result.retention.removedSnapshots.map((s) => `${s.vm}:${s.snapshot}`)].join(', ')}`)
      }
      for (const e of result.retention.errors) this.warnUser(`retention: ${e}`)
      if (m.status !== 'complete') process.exitCode = 1
      return result
    } finally {
      await ctx.close()
    }
  }

  /** Packs the private state with the key from backup.recipients or a passphrase; a missing key fails the part only. */
  private async workspacePacker(ws: Workspace, config: Config, passphraseFile?: string): Promise<() => Promise<PackedWorkspace>> {
    const [{encryptKey}, {describeKey, packArchive}] = await Promise.all([import('../../workspace/archive-key.js'), import('../../workspace/archive.js')])
    let key: EncryptKey
    try {
      key = await encryptKey(config, {passphraseFile, interactive: canPrompt()})
    } catch (error) {
      if (!(error instanceof UserError)) throw error
      return async () => {
        throw new Error(`${error.message} ${error.suggestion ?? ''}`.trim())
      }
    }
    return async () => {
      const {bytes, index} = await packArchive(ws, config, {kind: 'private', key, createdBy: `autolabs ${this.config.version}`})
      return {bytes, files: index.files.map((x) => x.path), encryptedWith: describeKey(key)}
    }
  }
}

/** Progress lines: bytes as they stream, at most a few redraws a second. */
class Progress {
  private bytes = new Map<string, number>()
  private last = 0
  private readonly t0 = Date.now()
  constructor(
    private out: (line: string, final: boolean) => void,
    private fmt: (n: number) => string,
  ) {}
  on(e: BackupEvent) {
    if (e.type === 'bytes') {
      this.bytes.set(e.part, e.bytes)
      const now = Date.now()
      if (now - this.last < 250) return
      this.last = now
      const s = (now - this.t0) / 1000
      this.out([...this.bytes].map(([p, b]) => `${p} ${this.fmt(b)} (${this.fmt(b / Math.max(s, 0.001))}/s)`).join(' · '), false)
    } else if (e.type === 'done') {
      const r = e.record
      const size = r.files.reduce((n, f) => n + f.bytes, 0)
      this.out(`${r.status === 'ok' ? 'ok    ' : 'FAILED'} ${r.part} (${(r.durationMs / 1000).toFixed(1)} s${size ? `, ${this.fmt(size)}` : ''})${r.error ? `: ${r.error.split('\n')[0]}` : ''}`, true)
    }
  }
}
