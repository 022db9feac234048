/**
 * backups/<id>/manifest.json: what a backup holds, how to trust it (sizes, SHA-256) and
 * whether each part worked. Documented in docs/day-two.md; `schemaVersion` changes only on
 * a breaking change.
 */
import {readdir} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors.js'
import {READ_LIMITS, readTextFile, writeFileAtomic} from '../workspace/fs.js'
import {isBackupId, parseBackupId} from './id.js'

/**
 * The parts of a backup, in the order they are listed. A new part adds its name here, a job in
 * run.ts and, when it has files to restore, a restore in restore.ts.
 */
export const PARTS = ['snapshots', 'postgres', 'basebackup', 'wal', 'gitlab', 'etcd', 'workspace'] as const
export type PartName = (typeof PARTS)[number]

export interface BackupFile {
  /** Relative to the backup's folder. */
  path: string
  bytes: number
  sha256: string
}

export interface PartRecord {
  part: PartName
  status: 'ok' | 'failed'
  startedAt: string
  durationMs: number
  error?: string
  files: BackupFile[]
  /** Tool and server versions, e.g. {postgres: "15.14", pg_dumpall: "15.14"}. */
  versions?: Record<string, string>
  /** Part-specific facts: databases dumped, uncompressed bytes, snapshots taken… */
  details?: Record<string, unknown>
}

export interface BackupManifest {
  schemaVersion: 1
  id: string
  createdBy: string
  startedAt: string
  finishedAt: string
  durationMs: number
  /** complete: every requested part ok · partial: some failed · failed: all failed. */
  status: 'complete' | 'partial' | 'failed'
  requested: PartName[]
  parts: PartRecord[]
}

export const MANIFEST = 'manifest.json'

export function overallStatus(parts: PartRecord[]): BackupManifest['status'] {
  const failed = parts.filter((p) => p.status === 'failed').length
  return failed === 0 ? 'complete' : failed === parts.length ? 'failed' : 'partial'
}

export async function writeManifest(dir: string, m: BackupManifest): Promise<void> {
  await writeFileAtomic(path.join(dir, MANIFEST), JSON.stringify(m, null, 2) + '\n', 0o600)
}

export async function readManifest(dir: string): Promise<BackupManifest> {
  const file = path.join(dir, MANIFEST)
  const text = await readTextFile(file, {what: 'The backup manifest', maxBytes: READ_LIMITS.manifest, optional: true})
  if (text === undefined) {
    throw new UserError(`${file} is missing: the backup in ${dir} did not finish (interrupted?).`, {
      suggestion: 'Take a new backup with `autolabs backup now`; retention removes unfinished ones.',
    })
  }
  let m: BackupManifest
  try {
    m = JSON.parse(text) as BackupManifest
  } catch (error) {
    throw new UserError(`${file} is damaged: it is not valid JSON (${(error as Error).message.replace(/, "[\s\S]*$/, '')}).`, {
      suggestion: 'Restore the manifest from a copy of the backup, or take a new backup with `autolabs backup now`.',
    })
  }
  if (m?.schemaVersion !== 1 || !isBackupId(m.id) || !Array.isArray(m.parts)) {
    throw new UserError(`${file} is not an autolabs backup manifest (schemaVersion 1).`)
  }
  return m
}

export interface LocalBackup {
  id: string
  dir: string
  time: Date
  manifest?: BackupManifest
  /** Why the manifest could not be read (an interrupted backup). */
  problem?: string
}

/** Every backups/<id>/ folder, newest first; folders not named like an id are not ours. */
export async function listLocalBackups(backupsDir: string): Promise<LocalBackup[]> {
  let names: string[]
  try {
    names = await readdir(backupsDir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
  const out: LocalBackup[] = []
  for (const id of names.filter(isBackupId).sort().reverse()) {
    const dir = path.join(backupsDir, id)
    try {
      out.push({id, dir, time: parseBackupId(id)!, manifest: await readManifest(dir)})
    } catch (error) {
      out.push({id, dir, time: parseBackupId(id)!, problem: (error as Error).message})
    }
  }
  return out
}

export async function findBackup(backupsDir: string, id: string): Promise<LocalBackup & {manifest: BackupManifest}> {
  if (!isBackupId(id)) {
    throw new UserError(`"${id}" is not a backup id (they look like 20261125-191829).`, {suggestion: 'List them with `autolabs backup list`.', exitCode: 2})
  }
  const all = await listLocalBackups(backupsDir)
  const b = all.find((x) => x.id === id)
  if (!b) throw new UserError(`No backup ${id} in ${backupsDir}.`, {suggestion: 'List them with `autolabs backup list`.'})
  if (!b.manifest) throw new UserError(b.problem ?? `Backup ${id} has no manifest.`)
  return b as LocalBackup & {manifest: BackupManifest}
}
