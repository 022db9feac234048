/**
 * Restores. Each is destructive and asks first (the command passes `confirmed` only after a
 * yes or --yes); each checks the backup's checksum before touching anything.
 */

import path from 'node:path'

import {UserError} from '../errors.js'
import {backupId, snapshotName, snapshotId} from './id.js'
import {findBackup} from './manifest.js'
import type {SnapshotApi} from './parts.js'
import {ETCD_RESTORE, PG_RESTORE, type BackupShell} from './remote.js'
import {readDecompressed, restoreFilter, sha256File} from './streams.js'

async function checkedFile(backupsDir: string, id: string, part: 'postgres' | 'etcd'): Promise<string> {
  const b = await findBackup(backupsDir, id)
  const rec = b.manifest.parts.find((p) => p.part === part)
  if (!rec || rec.status !== 'ok' || rec.files.length === 0) {
    throw new UserError(`Backup ${id} has no ${part} part${rec?.status === 'failed' ? ' (it failed when taken)' : ''}.`, {
      suggestion: `Pick a backup with a ${part} part: \`autolabs backup list\`.`,
    })
  }
  const file = path.join(b.dir, rec.files[0].path)
  const {sha256} = await sha256File(file).catch(() => ({sha256: 'unreadable'}))
  if (sha256 !== rec.files[0].sha256) {
    throw new UserError(`${file} does not match its SHA-256 in the manifest: refusing to restore a damaged backup.`, {
      suggestion: `Run \`autolabs backup verify ${id}\` for details, or pick another backup.`,
    })
  }
  return file
}

/** Replaces the whole PostgreSQL cluster's content with the dump (connections are closed). */
export async function restorePostgres(backupsDir: string, id: string, connect: () => Promise<BackupShell>, opts: {logFile?: string} = {}): Promise<{id: string; durationMs: number}> {
  const file = await checkedFile(backupsDir, id, 'postgres')
  // Connect only once the backup is known to be good: a bad id fails fast and offline.
  const sh = await connect()
  const t0 = Date.now()
  const src = readDecompressed(file)
  const stdin = src.stream.pipe(restoreFilter())
  try {
    const r = await sh.exec(PG_RESTORE, {stdin, sudo: true, timeoutMs: 6 * 3_600_000, label: 'restore PostgreSQL', logFile: opts.logFile})
    await src.done
    if (r.code !== 0) {
      throw new UserError(`The PostgreSQL restore stopped at an error (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-5).join(' / ')}`, {
        suggestion: 'Nothing after the failing statement ran. Fix the cause (disk space? a role in use?) and restore again: the dump drops and re-creates what it restores.',
      })
    }
  } finally {
    await sh.close()
  }
  return {id, durationMs: Date.now() - t0}
}

/** Restores etcd from the snapshot; the previous data directory is kept beside the new one. */
export async function restoreEtcd(backupsDir: string, id: string, connect: () => Promise<BackupShell>, opts: {logFile?: string; now?: Date} = {}): Promise<{id: string; previousDataDir?: string; durationMs: number}> {
  const file = await checkedFile(backupsDir, id, 'etcd')
  const sh = await connect()
  const t0 = Date.now()
  const stamp = backupId(opts.now ?? new Date())
  const remote = `/var/lib/autolabs-etcd-restore-${id}.db`
  try {
    const src = readDecompressed(file)
    const up = await sh.exec('set -euo pipefail; umask 077; cat > "$1"', {stdin: src.stream, args: [remote], sudo: true, timeoutMs: 3_600_000, label: 'upload etcd snapshot'})
    await src.done
    if (up.code !== 0) throw new UserError(`Cannot upload the etcd snapshot: ${up.stderr.trim()}`)
    const r = await sh.exec(ETCD_RESTORE, {args: [remote, stamp], sudo: true, timeoutMs: 900_000, label: 'restore etcd', logFile: opts.logFile})
    if (r.code !== 0) {
      throw new UserError(`The etcd restore failed (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-5).join(' / ')}`, {
        suggestion: 'If etcd was already stopped, its previous data directory is still in place or kept as <data-dir>.autolabs-before-<time>.',
      })
    }
    return {id, previousDataDir: /^old-data (.+)$/m.exec(r.stdout)?.[1], durationMs: Date.now() - t0}
  } finally {
    await sh.close()
  }
}

/** Rolls a VM back to an autolabs snapshot (given as a backup id or the snapshot's name). */
export async function restoreSnapshot(api: SnapshotApi, node: string, vm: {name: string; vmid: number}, idOrName: string): Promise<{vm: string; snapshot: string}> {
  const name = snapshotId(idOrName) ? idOrName : snapshotName(idOrName)
  const snaps = await api.listSnapshots(node, vm.vmid)
  if (!snaps.some((s) => s.name === name)) {
    const ours = snaps.map((s) => s.name).filter((n) => snapshotId(n))
    throw new UserError(`${vm.name} has no snapshot ${name}.`, {
      suggestion: ours.length > 0 ? `Its autolabs snapshots: ${ours.join(', ')}.` : 'It has no autolabs snapshots; list them with `autolabs backup list`.',
    })
  }
  // Without RAM state a rollback leaves the VM stopped; these are servers, so start them again.
  await api.rollbackSnapshot(node, vm.vmid, name, {start: true})
  return {vm: vm.name, snapshot: name}
}

