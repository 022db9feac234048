/**
 * `autolabs backup now`: every requested part at once; one failing part does not stop the
 * others; the manifest records each part's outcome; retention runs afterwards over local
 * backups and autolabs' own snapshots (never anyone else's).
 */
import {rm} from 'node:fs/promises'
import path from 'node:path'

import type {Role} from '../config/schema.js'
import {ensureDir} from '../workspace/fs.js'
import {backupId, parseBackupId, snapshotId} from './id.js'
import {type BackupManifest, listLocalBackups, overallStatus, type PartName, type PartRecord, PARTS, writeManifest} from './manifest.js'
import {backupEtcd, backupGitlab, backupPostgres, backupSnapshots, backupWorkspace, type PackedWorkspace, type PartOutcome, type SnapshotApi} from './parts.js'
import {backupBase, pruneLocalWal, syncWal, WAL_DIR} from './pitr.js'
import type {BackupShell} from './remote.js'
import {planRetention, type RetentionPolicy} from './retention.js'
import {type Compression, hasZstd} from './streams.js'

export interface BackupVm {
  role: Role
  name: string
  vmid: number
}

export interface BackupDeps {
  /** Opens an SSH session to the VM of a role (closed by runBackup). */
  connect(role: Role): Promise<BackupShell>
  /** undefined when the workspace has no Proxmox credentials: the snapshots part fails saying so. */
  proxmox?: SnapshotApi
  /** Packs and encrypts the workspace's private state; throws when there is no key to encrypt with. */
  packWorkspace?: () => Promise<PackedWorkspace>
  now?: () => Date
}

export type BackupEvent =
  | {part: PartName; type: 'start'}
  | {part: PartName; type: 'bytes'; bytes: number}
  | {part: PartName; type: 'done'; record: PartRecord}
  | {type: 'retention'; removed: string[]; kept: number}

export interface BackupOptions {
  backupsDir: string
  node: string
  vms: BackupVm[]
  parts?: PartName[]
  retention?: RetentionPolicy
  compression?: Compression
  onEvent?: (e: BackupEvent) => void
  logDir?: string
  version?: string
  /** VMs (roles) that keep a copy of the encrypted workspace archive. */
  workspaceCopyTo?: Role[]
}

export interface BackupResult {
  manifest: BackupManifest
  dir: string
  retention: {removedLocal: string[]; removedSnapshots: Array<{vm: string; snapshot: string}>; removedWal: string[]; errors: string[]}
}

export async function runBackup(opts: BackupOptions, deps: BackupDeps): Promise<BackupResult> {
  const started = (deps.now ?? (() => new Date()))()
  const id = backupId(started)
  const dir = path.join(opts.backupsDir, id)
  await ensureDir(opts.backupsDir, 0o700)
  await ensureDir(dir, 0o700)
  const requested = opts.parts && opts.parts.length > 0 ? PARTS.filter((p) => opts.parts!.includes(p)) : [...PARTS]
  const compression = opts.compression ?? (hasZstd() ? 'zstd' : 'gzip')
  const emit = opts.onEvent ?? (() => undefined)
  const vm = (role: Role) => opts.vms.find((v) => v.role === role)
  const logFile = (part: string) => (opts.logDir ? path.join(opts.logDir, `backup-${id}-${part}.log`) : undefined)

  const shells: Array<Promise<BackupShell>> = []
  const shellFor = (role: Role) => {
    const s = deps.connect(role)
    shells.push(s)
    return s
  }

  const runPart = async (part: PartName, fn: () => Promise<PartOutcome>): Promise<PartRecord> => {
    const t0 = Date.now()
    emit({part, type: 'start'})
    let record: PartRecord
    try {
      const out = await fn()
      record = {part, status: 'ok', startedAt: new Date(t0).toISOString(), durationMs: Date.now() - t0, ...out}
    } catch (error) {
      const e = error as Error & {stderrTail?: string; details?: Record<string, unknown>}
      const msg = [e.message, e.stderrTail].filter(Boolean).join('\n')
      record = {part, status: 'failed', startedAt: new Date(t0).toISOString(), durationMs: Date.now() - t0, error: msg, files: [], ...(e.details ? {details: e.details} : {})}
    }
    emit({part, type: 'done', record})
    return record
  }

  const bytes = (part: PartName) => (n: number) => emit({part, type: 'bytes', bytes: n})
  // The archive is copied after the base backup, so the copy holds the WAL that backup needs.
  let baseFinished = () => undefined as void
  const baseDone = requested.includes('basebackup') ? new Promise<void>((resolve) => (baseFinished = resolve)) : Promise.resolve()
  const jobs: Record<PartName, () => Promise<PartOutcome>> = {
    snapshots: async () => {
      if (!deps.proxmox) throw new Error('no Proxmox API credentials in this workspace (proxmox.tokenId + the token secret in .autolabs/secrets.yaml)')
      return backupSnapshots(deps.proxmox, opts.node, opts.vms, id)
    },
    postgres: async () => backupPostgres(await shellFor(need(vm('database'), 'database').role), dir, {compression, onBytes: bytes('postgres'), logFile: logFile('postgres')}),
    basebackup: async () => {
      try {
        return await backupBase(await shellFor(need(vm('database'), 'database').role), dir, id, {compression, onBytes: bytes('basebackup'), logFile: logFile('basebackup')})
      } finally {
        baseFinished()
      }
    },
    wal: async () => {
      await baseDone
      const s = await syncWal(await shellFor(need(vm('database'), 'database').role), opts.backupsDir, {compression, onBytes: bytes('wal'), logFile: logFile('wal')})
      return {files: [], details: {...s, folder: WAL_DIR}}
    },
    gitlab: async () => backupGitlab(await shellFor(need(vm('gitlab'), 'gitlab').role), dir, id, {onBytes: bytes('gitlab'), logFile: logFile('gitlab')}),
    etcd: async () => backupEtcd(await shellFor(need(vm('k8s'), 'k8s').role), dir, id, {compression, onBytes: bytes('etcd'), logFile: logFile('etcd')}),
    workspace: async () => {
      if (!deps.packWorkspace) throw new Error('no workspace to archive')
      const copies = (opts.workspaceCopyTo ?? []).map((role) => ({vm: need(vm(role), role).name, shell: () => shellFor(role)}))
      const keepCopies = (opts.retention?.keepDaily ?? 7) + (opts.retention?.keepWeekly ?? 4)
      return backupWorkspace(deps.packWorkspace, dir, id, {copies, keepCopies, logFile: logFile('workspace')})
    },
  }
  const parts = await Promise.all(requested.map((p) => runPart(p, jobs[p])))
  await Promise.all(shells.map((s) => s.then((sh) => sh.close()).catch(() => undefined)))

  const finished = new Date()
  const manifest: BackupManifest = {
    schemaVersion: 1,
    id,
    createdBy: `autolabs ${opts.version ?? ''}`.trim(),
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationMs: finished.getTime() - started.getTime(),
    status: overallStatus(parts),
    requested,
    parts,
  }
  await writeManifest(dir, manifest)

  const retention: BackupResult['retention'] = {removedLocal: [], removedSnapshots: [], removedWal: [], errors: []}
  if (opts.retention) {
    retention.removedLocal = await pruneLocal(opts.backupsDir, opts.retention).catch((error: Error) => {
      retention.errors.push(`local backups: ${error.message}`)
      return []
    })
    // WAL older than the oldest base backup retention kept can never be replayed.
    retention.removedWal = await pruneLocalWal(opts.backupsDir).catch((error: Error) => {
      retention.errors.push(`WAL copy: ${error.message}`)
      return []
    })
    if (deps.proxmox && requested.includes('snapshots')) {
      const r = await pruneSnapshots(deps.proxmox, opts.node, opts.vms, opts.retention)
      retention.removedSnapshots = r.removed
      retention.errors.push(...r.errors)
    }
    emit({type: 'retention', removed: [...retention.removedLocal, ...retention.removedSnapshots.map((s) => `${s.vm}:${s.snapshot}`)], kept: 0})
  }
  return {manifest, dir, retention}
}

function need<T>(v: T | undefined, role: Role): T & {role: Role} {
  if (!v) throw new Error(`no ${role} VM in this workspace (state.json / autolabs.yaml)`)
  return v as T & {role: Role}
}

/**
 * Local retention, per kind of backup: a `--only postgres` backup never pushes a full backup
 * of the same day out (they are retained separately, by the set of parts they were asked for).
 */
export async function pruneLocal(backupsDir: string, policy: RetentionPolicy): Promise<string[]> {
  const all = await listLocalBackups(backupsDir)
  const groups = new Map<string, typeof all>()
  for (const b of all.filter((x) => x.manifest)) {
    const key = [...b.manifest!.requested].sort().join('+')
    groups.set(key, [...(groups.get(key) ?? []), b])
  }
  const removed: string[] = []
  for (const items of groups.values()) {
    const decision = planRetention(items.map((b) => ({id: b.id, time: b.time, complete: b.manifest?.status === 'complete'})), policy)
    for (const r of decision.remove) {
      await rm(path.join(backupsDir, r.id), {recursive: true, force: true})
      removed.push(r.id)
    }
  }
  // Unfinished folders (no manifest: interrupted) go once a newer complete backup of any kind exists.
  const newestComplete = all.find((b) => b.manifest?.status === 'complete')
  for (const b of all.filter((x) => !x.manifest)) {
    if (newestComplete && newestComplete.time > b.time) {
      await rm(b.dir, {recursive: true, force: true})
      removed.push(b.id)
    }
  }
  return removed.sort()
}

/** Snapshot retention per VM over snapshots named autolabs-<id> only. */
export async function pruneSnapshots(
  api: SnapshotApi,
  node: string,
  vms: BackupVm[],
  policy: RetentionPolicy,
): Promise<{removed: Array<{vm: string; snapshot: string}>; errors: string[]}> {
  const removed: Array<{vm: string; snapshot: string}> = []
  const errors: string[] = []
  await Promise.all(
    vms.map(async (vm) => {
      try {
        const snaps = await api.listSnapshots(node, vm.vmid)
        const ours = snaps.flatMap((s) => {
          const id = snapshotId(s.name)
          return id ? [{id, name: s.name, time: parseBackupId(id)!}] : []
        })
        const decision = planRetention(ours, policy)
        // One at a time per VM: Proxmox locks the VM config for each snapshot delete.
        for (const r of decision.remove) {
          await api.deleteSnapshot(node, vm.vmid, r.name)
          removed.push({vm: vm.name, snapshot: r.name})
        }
      } catch (error) {
        errors.push(`snapshots of ${vm.name}: ${(error as Error).message}`)
      }
    }),
  )
  return {removed, errors}
}
