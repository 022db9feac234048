/**
 * Point-in-time recovery for PostgreSQL: base backups streamed into backups/<id>/, the WAL
 * archive copied into backups/wal/ (and pruned there before the oldest kept base backup), and
 * the restore to a time: the newest base backup before it, replayed from the archive on
 * database-vm up to that time.
 */
import {readdir, rename, rm, stat} from 'node:fs/promises'
import path from 'node:path'

import {ExternalError, UsageError, UserError} from '../errors.js'
import {ensureDir} from '../workspace/fs.js'
import {backupId} from './id.js'
import {listLocalBackups} from './manifest.js'
import {type OnBytes, type PartOutcome, streamToFile} from './parts.js'
import {PG_BACKUP_HISTORY, PG_BASEBACKUP, PG_BASEBACKUP_ZSTD, PG_PITR_RESTORE, PG_SWITCH_WAL, WAL_ARCHIVE_DIR, WAL_CAT, WAL_LIST, WAL_PUT} from './pitr-remote.js'
import {PG_INFO, type BackupShell} from './remote.js'
import {type Compression, extensionOf, readDecompressed, sha256File} from './streams.js'

export const WAL_DIR = 'wal'

/** What a backup history file (<segment>.<offset>.backup) says about a base backup. */
export interface BaseBackupHistory {
  file: string
  startWal: string
  stopWal: string
  startTime: string
  stopTime: string
  label: string
  timeline: number
}

/**
 * Parses PostgreSQL's backup history file (xlog.c do_pg_backup_stop: "START WAL LOCATION: 0/2000028
 * (file 000000010000000000000002)", "STOP WAL LOCATION: …", "START TIME: 2026-12-01 02:00:01 UTC",
 * "LABEL: …", "START TIMELINE: 1", "STOP TIME: …").
 */
export function parseHistory(file: string, text: string): BaseBackupHistory | undefined {
  const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(text)?.[1]?.trim()
  const walOf = (s?: string) => /\(file ([0-9A-F]{24})\)/.exec(s ?? '')?.[1]
  const startWal = walOf(field('START WAL LOCATION'))
  const stopWal = walOf(field('STOP WAL LOCATION'))
  const startTime = pgTime(field('START TIME'))
  const stopTime = pgTime(field('STOP TIME'))
  if (!startWal || !stopWal || !startTime || !stopTime) return undefined
  return {file, startWal, stopWal, startTime, stopTime, label: field('LABEL') ?? '', timeline: Number(field('START TIMELINE') ?? Number.parseInt(startWal.slice(0, 8), 16))}
}

/** "2026-12-01 02:00:01 UTC" (the server's log_timezone may differ: "… CET", "… +01") → ISO. */
function pgTime(s?: string): string | undefined {
  if (!s) return undefined
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.\d+)? ?(.*)$/.exec(s)
  if (!m) return undefined
  const zone = m[3] === 'UTC' || m[3] === 'GMT' || m[3] === '' ? 'Z' : /^[+-]\d\d(:?\d\d)?$/.test(m[3]) ? (m[3].length === 3 ? `${m[3]}:00` : m[3]) : undefined
  if (!zone) return undefined
  const d = new Date(`${m[1]}T${m[2]}${zone}`)
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString()
}

/** A WAL segment's position without its timeline (what pg_archivecleanup compares). */
export const segmentPosition = (name: string) => name.slice(8, 24)
const isSegment = (name: string) => /^[0-9A-F]{24}$/.test(name)

/**
 * The base backup: `pg_basebackup -D - -Ft -X fetch` streamed into base.tar.zst (compressed on
 * the VM when both ends have zstd, like the dump), then its backup history file from the archive
 * (start and stop WAL, the time it is consistent from).
 */
export async function backupBase(sh: BackupShell, dir: string, id: string, opts: {compression: Compression; onBytes?: OnBytes; logFile?: string; archiveDir?: string}): Promise<PartOutcome> {
  const archive = opts.archiveDir ?? WAL_ARCHIVE_DIR
  const info = await sh.exec(PG_INFO, {sudo: true, timeoutMs: 60_000, label: 'PostgreSQL version', logFile: opts.logFile})
  if (info.code !== 0) throw new ExternalError(`PostgreSQL version failed (exit ${info.code}).`, {command: 'psql', stderrTail: info.stderr.trim().slice(-2000)})
  const [zstdLine, server] = info.stdout.trim().split('\n').map((l) => l.trim())
  const label = `autolabs-${id}`
  const file = path.join(dir, `base.tar${extensionOf(opts.compression)}`)
  const remote = opts.compression === 'zstd' && zstdLine === 'zstd=yes'
  const stderr: string[] = []
  const f = await streamToFile(sh, remote ? PG_BASEBACKUP_ZSTD : PG_BASEBACKUP, file, {
    args: [label],
    compression: remote ? undefined : opts.compression,
    onBytes: opts.onBytes,
    label: 'pg_basebackup',
    logFile: opts.logFile,
    stderr,
  })
  const rawBytes = remote ? Number(/^(\d+) bytes/m.exec(stderr.join('\n'))?.[1] ?? Number.NaN) : f.rawBytes
  if (!(rawBytes > 0)) throw new ExternalError('pg_basebackup produced no output.', {command: 'pg_basebackup', stderrTail: stderr.join('\n').slice(-2000)})
  const details: Record<string, unknown> = {label, uncompressedBytes: rawBytes, compression: opts.compression, compressedOn: remote ? 'vm' : 'workstation', format: 'pg_basebackup -Ft -X fetch (one tar)'}
  const h = await sh.exec(PG_BACKUP_HISTORY, {args: [label, archive, '60'], sudo: true, timeoutMs: 120_000, label: 'backup history file', logFile: opts.logFile})
  const hist = h.code === 0 ? parseHistory(/^file (.+)$/m.exec(h.stdout)?.[1] ?? '', h.stdout) : undefined
  if (hist) Object.assign(details, {startWal: hist.startWal, stopWal: hist.stopWal, startTime: hist.startTime, consistentAt: hist.stopTime, timeline: hist.timeline, historyFile: hist.file})
  // Without the archive the base backup still restores on its own (its WAL is inside), but only to its end.
  else details.archive = `not found: ${h.stderr.trim().split('\n').at(-1) ?? `exit ${h.code}`}`
  return {files: [{path: f.path, bytes: f.bytes, sha256: f.sha256}], versions: {postgres: server}, details}
}

/** The workstation's copy of the archive: name → local file name (segments compressed). */
async function localWal(walDir: string): Promise<Map<string, string>> {
  const names = await readdir(walDir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[]
    throw error
  })
  const out = new Map<string, string>()
  for (const n of names) {
    if (n.endsWith('.partial')) continue
    out.set(n.replace(/\.(zst|gz)$/, ''), n)
  }
  return out
}

export interface WalSync {
  copied: number
  bytes: number
  /** Files in the VM's archive / in backups/wal after the copy. */
  remoteFiles: number
  localFiles: number
  newestSegment?: string
}

/**
 * Copies the archive files backups/wal/ does not have yet (segments compressed, history and
 * timeline files as they are), each written as .partial and renamed when complete, so an
 * interrupted copy is redone, never taken for a whole file.
 */
export async function syncWal(sh: BackupShell, backupsDir: string, opts: {compression: Compression; archiveDir?: string; onBytes?: OnBytes; logFile?: string}): Promise<WalSync> {
  const archive = opts.archiveDir ?? WAL_ARCHIVE_DIR
  const walDir = path.join(backupsDir, WAL_DIR)
  await ensureDir(walDir, 0o700)
  const list = await sh.exec(WAL_LIST, {args: [archive], sudo: true, timeoutMs: 120_000, label: 'list the WAL archive', logFile: opts.logFile})
  if (list.code !== 0) throw new ExternalError(`Listing the WAL archive ${archive} failed (exit ${list.code}).`, {command: 'find', stderrTail: list.stderr.trim()})
  const remote = list.stdout
    .split('\n')
    .map((l) => l.trim().split(' ')[0])
    .filter((n) => /^[0-9A-F]{8}([0-9A-F]{16}(\.[0-9A-F]{8}\.backup)?|\.history)$/.test(n))
    .sort()
  const have = await localWal(walDir)
  let bytes = 0
  let copied = 0
  for (const name of remote.filter((n) => !have.has(n))) {
    const compression = isSegment(name) ? opts.compression : undefined
    const final = path.join(walDir, `${name}${compression ? extensionOf(compression) : ''}`)
    const f = await streamToFile(sh, WAL_CAT, `${final}.partial`, {args: [archive, name], compression, label: `copy WAL ${name}`, timeoutMs: 600_000})
    await rename(`${final}.partial`, final)
    bytes += f.rawBytes
    copied++
    opts.onBytes?.(bytes)
  }
  const local = await localWal(walDir)
  return {copied, bytes, remoteFiles: remote.length, localFiles: local.size, newestSegment: [...local.keys()].filter(isSegment).sort().at(-1)}
}

/** Base backups kept in backups/, newest first, with what restoring them needs. */
export interface LocalBase {
  id: string
  dir: string
  file: string
  sha256: string
  startWal?: string
  consistentAt?: Date
}

export async function localBaseBackups(backupsDir: string): Promise<LocalBase[]> {
  const out: LocalBase[] = []
  for (const b of await listLocalBackups(backupsDir)) {
    const part = b.manifest?.parts.find((p) => p.part === 'basebackup' && p.status === 'ok')
    if (!part || part.files.length === 0) continue
    const d = part.details ?? {}
    out.push({
      id: b.id,
      dir: b.dir,
      file: path.join(b.dir, part.files[0].path),
      sha256: part.files[0].sha256,
      startWal: typeof d.startWal === 'string' ? d.startWal : undefined,
      consistentAt: typeof d.consistentAt === 'string' ? new Date(d.consistentAt) : undefined,
    })
  }
  return out
}

/**
 * Removes from backups/wal/ what no kept base backup can replay: segments (any timeline) and
 * backup history files before the oldest kept base backup's start, as pg_archivecleanup does on
 * the VM. Timeline history files are kept (tiny, and recovery follows them).
 */
export async function pruneLocalWal(backupsDir: string): Promise<string[]> {
  const bases = (await localBaseBackups(backupsDir)).filter((b) => b.startWal)
  if (bases.length === 0) return []
  const cut = segmentPosition(bases.reduce((a, b) => (segmentPosition(b.startWal!) < segmentPosition(a.startWal!) ? b : a)).startWal!)
  const walDir = path.join(backupsDir, WAL_DIR)
  const removed: string[] = []
  for (const [name, file] of await localWal(walDir)) {
    if ((isSegment(name) || name.endsWith('.backup')) && segmentPosition(name) < cut) {
      await rm(path.join(walDir, file), {force: true})
      removed.push(name)
    }
  }
  return removed.sort()
}

/** `--to`: "latest", or a time in the workstation's time zone unless it names one. */
export function parseTarget(to: string, now = new Date()): {latest: true} | {latest: false; time: Date} {
  if (to.trim().toLowerCase() === 'latest') return {latest: true}
  const m = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d)(:\d\d)?\s*(Z|UTC|[+-]\d\d:?\d\d)?$/i.exec(to.trim())
  if (!m) {
    throw new UsageError(`--to "${to}" is not a time: use "YYYY-MM-DD HH:MM[:SS]" (your time zone, or add +01:00 / UTC), or "latest".`, {
      suggestion: 'For example: autolabs backup restore postgres --to "2026-12-01 14:04"',
    })
  }
  const zone = m[4] ? (/^(z|utc)$/i.test(m[4]) ? 'Z' : m[4].length === 5 ? `${m[4].slice(0, 3)}:${m[4].slice(3)}` : m[4]) : ''
  const time = new Date(`${m[1]}T${m[2]}${m[3] ?? ':00'}${zone}`)
  if (Number.isNaN(time.getTime())) throw new UsageError(`--to "${to}" is not a valid date and time.`)
  if (time.getTime() > now.getTime()) throw new UsageError(`--to ${time.toISOString()} is in the future: restore to a past time, or use --to latest.`)
  return {latest: false, time}
}

export interface PitrPlan {
  base: LocalBase
  target: {latest: true} | {latest: false; time: Date}
}

/** The newest base backup consistent before the target. Offline: only backups/ is read. */
export async function planPitr(backupsDir: string, target: PitrPlan['target']): Promise<PitrPlan> {
  const bases = await localBaseBackups(backupsDir)
  if (bases.length === 0) {
    throw new UserError(`No base backup in ${backupsDir}: a point-in-time restore starts from one.`, {suggestion: 'Take one with `autolabs backup now` (or `--only basebackup`).'})
  }
  const usable = target.latest ? bases : bases.filter((b) => b.consistentAt && b.consistentAt.getTime() <= target.time.getTime())
  if (usable.length === 0) {
    const oldest = bases.filter((b) => b.consistentAt).at(-1)
    throw new UserError(`No base backup is older than ${target.latest ? 'now' : target.time.toISOString()}: the earliest time that can be restored is ${oldest?.consistentAt?.toISOString() ?? 'unknown'}.`, {
      suggestion: 'Pick a later --to, or restore a dump with `autolabs backup restore postgres <id>`.',
    })
  }
  return {base: usable[0], target}
}

export interface PitrResult {
  base: string
  target: string
  previousDataDir?: string
  replayedTo?: string
  walUploaded: number
  walCopied: number
  durationMs: number
}

/**
 * The restore: checks the base backup's SHA-256; closes and archives the WAL segment in progress
 * (when PostgreSQL runs) and copies the archive to the workstation; puts back into the VM's
 * archive what only the workstation still has (a rebuilt VM); then PG_PITR_RESTORE.
 */
export async function restorePitr(
  backupsDir: string,
  plan: PitrPlan,
  connect: () => Promise<BackupShell>,
  opts: {compression: Compression; pgVersion?: number; logFile?: string; now?: Date; archiveDir?: string; onProgress?: (m: string) => void},
): Promise<PitrResult> {
  const t0 = Date.now()
  const archive = opts.archiveDir ?? WAL_ARCHIVE_DIR
  const {sha256} = await sha256File(plan.base.file).catch(() => ({sha256: 'unreadable'}))
  if (sha256 !== plan.base.sha256) {
    throw new UserError(`${plan.base.file} does not match its SHA-256 in the manifest: refusing to restore a damaged base backup.`, {
      suggestion: `Run \`autolabs backup verify ${plan.base.id}\`, or restore to a time after a newer base backup.`,
    })
  }
  const sh = await connect()
  try {
    const sw = await sh.exec(PG_SWITCH_WAL, {args: [archive, '120'], sudo: true, timeoutMs: 180_000, label: 'switch and archive the current WAL', logFile: opts.logFile})
    if (sw.code !== 0) {
      throw new UserError(`The WAL in progress could not be archived, so a restore now would lose it: ${sw.stderr.trim().split('\n').at(-1)}`, {
        suggestion: 'Check `autolabs status` (database/wal-archive) and the archive folder on database-vm, then restore again.',
      })
    }
    opts.onProgress?.(sw.stdout.trim() === 'down' ? 'PostgreSQL is not running: restoring from what the archive holds' : `archived the WAL in progress (${sw.stdout.trim().slice(4)})`)
    const synced = await syncWal(sh, backupsDir, {compression: opts.compression, archiveDir: archive, logFile: opts.logFile})
    const uploaded = await uploadMissingWal(sh, backupsDir, archive, plan.base.startWal)
    if (uploaded > 0) opts.onProgress?.(`put ${uploaded} WAL files back into ${archive} from ${path.join(backupsDir, WAL_DIR)}`)
    const stamp = backupId(opts.now ?? new Date())
    // PostgreSQL takes no zone abbreviation here ("Z" is one): an explicit +00 offset.
    const target = plan.target.latest ? '' : plan.target.time.toISOString().replace('T', ' ').replace('Z', '+00')
    const src = readDecompressed(plan.base.file)
    opts.onProgress?.(`restoring base backup ${plan.base.id} and replaying the archive to ${target || 'its end'}`)
    const r = await sh.exec(PG_PITR_RESTORE, {args: [opts.pgVersion ? String(opts.pgVersion) : '', stamp, target, archive], stdin: src.stream, sudo: true, timeoutMs: 12 * 3_600_000, label: 'point-in-time restore', logFile: opts.logFile})
    await src.done
    if (r.code !== 0) {
      const tail = r.stderr.trim().split('\n').slice(-8).join('\n')
      if (r.code === 5) {
        throw new UserError(`The point-in-time restore did not come up (recovery stopped early); the previous data directory was put back and PostgreSQL runs on it, so nothing was lost:\n${tail}`, {
          suggestion: 'A WAL file missing from the archive is the usual cause (see the server log above); `autolabs backup verify <id>` replays a base backup and the archive without touching the live cluster.',
        })
      }
      throw new UserError(`The point-in-time restore failed (exit ${r.code}); nothing was replaced:\n${tail}`)
    }
    return {
      base: plan.base.id,
      target: target || 'latest',
      previousDataDir: /^old-data (.+)$/m.exec(r.stdout)?.[1],
      replayedTo: /^replayed-to (.+)$/m.exec(r.stdout)?.[1]?.trim() || undefined,
      walUploaded: uploaded,
      walCopied: synced.copied,
      durationMs: Date.now() - t0,
    }
  } finally {
    await sh.close()
  }
}

/** Uploads to the VM's archive the workstation's files from `fromWal` on that it lacks. */
async function uploadMissingWal(sh: BackupShell, backupsDir: string, archive: string, fromWal?: string): Promise<number> {
  const list = await sh.exec(WAL_LIST, {args: [archive], sudo: true, timeoutMs: 120_000, label: 'list the WAL archive'})
  if (list.code !== 0) throw new ExternalError(`Listing the WAL archive failed (exit ${list.code}).`, {command: 'find', stderrTail: list.stderr})
  const there = new Set(list.stdout.split('\n').map((l) => l.split(' ')[0]))
  const walDir = path.join(backupsDir, WAL_DIR)
  let n = 0
  for (const [name, file] of await localWal(walDir)) {
    if (there.has(name)) continue
    if (fromWal && (isSegment(name) || name.endsWith('.backup')) && segmentPosition(name) < segmentPosition(fromWal)) continue
    const src = readDecompressed(path.join(walDir, file))
    const r = await sh.exec(WAL_PUT, {args: [archive, name], stdin: src.stream, sudo: true, timeoutMs: 600_000, label: `upload WAL ${name}`})
    await src.done
    if (r.code !== 0) throw new ExternalError(`Uploading WAL ${name} failed (exit ${r.code}).`, {command: 'WAL upload', stderrTail: r.stderr})
    n++
  }
  return n
}

/** For `status`: age of the newest base backup kept on the workstation. */
export async function newestLocalBase(backupsDir: string): Promise<{id: string; consistentAt?: Date} | undefined> {
  const b = (await localBaseBackups(backupsDir))[0]
  return b ? {id: b.id, consistentAt: b.consistentAt} : undefined
}

/** Size of backups/wal/ (for status and the manifest). */
export async function localWalBytes(backupsDir: string): Promise<{files: number; bytes: number}> {
  const walDir = path.join(backupsDir, WAL_DIR)
  let bytes = 0
  const files = await localWal(walDir)
  for (const f of files.values()) bytes += (await stat(path.join(walDir, f)).catch(() => ({size: 0}))).size
  return {files: files.size, bytes}
}
