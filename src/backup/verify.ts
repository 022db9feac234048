/**
 * `autolabs backup verify <id>`: every file's size and SHA-256 against the manifest, the etcd
 * snapshot's own integrity (bbolt magic and the SHA-256 etcd appends to it), and the
 * PostgreSQL dump replayed into a throw-away cluster on the database VM, dumped again and
 * compared database by database with the original (same canonical form: comments and the
 * per-run `\restrict` keys aside, a faithful restore dumps identically).
 */
import {createHash} from 'node:crypto'
import {stat} from 'node:fs/promises'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'

import {findBackup} from './manifest.js'
import {PG_PITR_VERIFY, WAL_ARCHIVE_DIR} from './pitr-remote.js'
import {PG_VERIFY_SCRATCH, type BackupShell} from './remote.js'
import {DevNull, DumpDigest, readDecompressed, restoreFilter, sha256File} from './streams.js'

export interface FileCheck {
  part: string
  path: string
  ok: boolean
  detail: string
}

export interface VerifyResult {
  id: string
  ok: boolean
  files: FileCheck[]
  postgres?: {
    ok: boolean
    detail: string
    databases: Array<{database: string; ok: boolean; lines: number; detail?: string}>
    durationMs: number
  }
  etcd?: {ok: boolean; detail: string; bytes: number}
  basebackup?: {ok: boolean; detail: string; replayedTo?: string; databases: string[]; durationMs: number}
}

export async function verifyBackup(
  backupsDir: string,
  id: string,
  deps: {connectDatabase?: () => Promise<BackupShell>; onProgress?: (msg: string) => void; restoreCheck?: boolean},
): Promise<VerifyResult> {
  const b = await findBackup(backupsDir, id)
  const files: FileCheck[] = []
  for (const part of b.manifest.parts) {
    for (const f of part.files) {
      const file = path.join(b.dir, f.path)
      try {
        const st = await stat(file)
        if (st.size !== f.bytes) {
          files.push({part: part.part, path: f.path, ok: false, detail: `size ${st.size} ≠ ${f.bytes} in the manifest`})
          continue
        }
        const {sha256} = await sha256File(file)
        files.push(sha256 === f.sha256 ? {part: part.part, path: f.path, ok: true, detail: 'SHA-256 matches'} : {part: part.part, path: f.path, ok: false, detail: `SHA-256 ${sha256} ≠ ${f.sha256} in the manifest`})
      } catch (error) {
        files.push({part: part.part, path: f.path, ok: false, detail: (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (error as Error).message})
      }
    }
  }
  deps.onProgress?.(`checksums: ${files.filter((f) => f.ok).length}/${files.length} match`)

  let postgres: VerifyResult['postgres']
  const pgPart = b.manifest.parts.find((p) => p.part === 'postgres' && p.status === 'ok')
  const pgFileOk = pgPart && files.find((f) => f.part === 'postgres')?.ok
  if (pgPart && pgFileOk && deps.restoreCheck !== false) {
    if (!deps.connectDatabase) throw new Error('verifying the PostgreSQL dump needs the database VM')
    deps.onProgress?.('PostgreSQL: replaying the dump into a scratch cluster on the database VM')
    postgres = await verifyPostgresDump(path.join(b.dir, pgPart.files[0].path), await deps.connectDatabase())
  }
  let etcd: VerifyResult['etcd']
  const etcdPart = b.manifest.parts.find((p) => p.part === 'etcd' && p.status === 'ok')
  if (etcdPart && files.find((f) => f.part === 'etcd')?.ok) {
    deps.onProgress?.('etcd: checking the snapshot against the SHA-256 etcd appended to it')
    etcd = await verifyEtcdSnapshot(path.join(b.dir, etcdPart.files[0].path))
  }
  let basebackup: VerifyResult['basebackup']
  const basePart = b.manifest.parts.find((p) => p.part === 'basebackup' && p.status === 'ok')
  if (basePart && files.find((f) => f.part === 'basebackup')?.ok && deps.restoreCheck !== false) {
    if (!deps.connectDatabase) throw new Error('verifying the base backup needs the database VM')
    deps.onProgress?.('PostgreSQL: replaying the base backup and the WAL archive into a scratch cluster on the database VM')
    basebackup = await verifyBaseBackup(path.join(b.dir, basePart.files[0].path), await deps.connectDatabase())
  }
  const ok = files.every((f) => f.ok) && (postgres?.ok ?? true) && (etcd?.ok ?? true) && (basebackup?.ok ?? true)
  return {id, ok, files, ...(postgres ? {postgres} : {}), ...(etcd ? {etcd} : {}), ...(basebackup ? {basebackup} : {})}
}

export async function verifyPostgresDump(file: string, sh: BackupShell): Promise<NonNullable<VerifyResult['postgres']>> {
  const t0 = Date.now()
  try {
    // The original, canonicalised locally.
    const original = new DumpDigest()
    const src = readDecompressed(file)
    await Promise.all([pipeline(src.stream, original, new DevNull()), src.done])

    // The same dump through the restore filter into a scratch cluster; its re-dump comes back.
    const replay = readDecompressed(file)
    const filtered = replay.stream.pipe(restoreFilter())
    const again = new DumpDigest()
    const sink = pipeline(again, new DevNull())
    const r = await sh.exec(PG_VERIFY_SCRATCH, {stdin: filtered, stdout: again, sudo: true, timeoutMs: 6 * 3_600_000, label: 'verify: replay into a scratch cluster'})
    again.end()
    await Promise.all([sink, replay.done])
    if (r.code !== 0) {
      return {ok: false, detail: `the dump did not restore (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-5).join(' / ')}`, databases: [], durationMs: Date.now() - t0}
    }

    const a = original.result()
    const bb = again.result()
    const names = [...new Set([...Object.keys(a), ...Object.keys(bb)])].sort()
    const databases = names.map((database) => {
      const x = a[database]
      const y = bb[database]
      if (!x) return {database, ok: false, lines: y.lines, detail: 'appeared after restore'}
      if (!y) return {database, ok: false, lines: x.lines, detail: 'missing after restore'}
      return x.sha256 === y.sha256 ? {database, ok: true, lines: x.lines} : {database, ok: false, lines: x.lines, detail: `differs after restore (${x.lines} → ${y.lines} lines)`}
    })
    const bad = databases.filter((d) => !d.ok)
    return {
      ok: bad.length === 0,
      detail: bad.length === 0 ? `restored into a scratch cluster; ${databases.length - 1} databases and the globals dump identically` : `differs: ${bad.map((d) => `${d.database} (${d.detail})`).join(', ')}`,
      databases,
      durationMs: Date.now() - t0,
    }
  } finally {
    await sh.close()
  }
}

/**
 * The base backup unpacked into a scratch data directory on the VM and started in archive
 * recovery from the VM's WAL archive to its end: it must reach a consistent state, promote,
 * and answer a query (the databases it holds).
 */
export async function verifyBaseBackup(file: string, sh: BackupShell, archiveDir = WAL_ARCHIVE_DIR): Promise<NonNullable<VerifyResult['basebackup']>> {
  const t0 = Date.now()
  try {
    const src = readDecompressed(file)
    const r = await sh.exec(PG_PITR_VERIFY, {args: [archiveDir], stdin: src.stream, sudo: true, timeoutMs: 12 * 3_600_000, label: 'verify: replay the base backup into a scratch cluster'})
    await src.done
    const databases = [...r.stdout.matchAll(/^database (.+)$/gm)].map((m) => m[1])
    const replayedTo = /^replayed-to (.+)$/m.exec(r.stdout)?.[1]?.trim() || undefined
    const consistent = /^consistent$/m.test(r.stdout)
    if (r.code !== 0 || !consistent || databases.length === 0) {
      return {ok: false, detail: `the base backup did not replay to a consistent state (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-5).join(' / ')}`, databases, durationMs: Date.now() - t0}
    }
    return {ok: true, detail: `replayed with the WAL archive to a consistent state${replayedTo ? `, last transaction ${replayedTo}` : ''}; ${databases.length} databases answer`, replayedTo, databases, durationMs: Date.now() - t0}
  } finally {
    await sh.close()
  }
}

const BOLT_MAGIC = 0xed_0c_da_ed
const HASH_BYTES = 32

/**
 * An etcd snapshot as `etcdctl snapshot save` writes it: a bbolt database (pages of 4 KiB, so a
 * multiple of 512 bytes, with the meta page's magic at offset 16) followed by the SHA-256 of
 * that database, which `snapshot restore` checks. Checked here, locally and streaming, so a
 * snapshot truncated or damaged before its manifest checksum was taken is caught too.
 */
export async function verifyEtcdSnapshot(file: string): Promise<NonNullable<VerifyResult['etcd']>> {
  const h = createHash('sha256')
  let tail = Buffer.alloc(0)
  let head = Buffer.alloc(0)
  let bytes = 0
  const src = readDecompressed(file)
  try {
    for await (const chunk of src.stream as AsyncIterable<Buffer>) {
      bytes += chunk.length
      if (head.length < 20) head = Buffer.concat([head, chunk.subarray(0, 20 - head.length)])
      // Keep the last 32 bytes back: they are the appended hash, not database content. Of the
      // held-back bytes and this chunk, all but the last 32 are hashed; only those 32 are copied.
      const n = Math.max(0, tail.length + chunk.length - HASH_BYTES)
      const fromTail = Math.min(n, tail.length)
      h.update(tail.subarray(0, fromTail))
      h.update(chunk.subarray(0, n - fromTail))
      tail = Buffer.concat([tail.subarray(fromTail), chunk.subarray(n - fromTail)])
    }
    await src.done
  } catch (error) {
    return {ok: false, detail: `cannot read: ${(error as Error).message}`, bytes}
  }
  if (head.length < 20 || head.readUInt32LE(16) !== BOLT_MAGIC) return {ok: false, detail: 'not an etcd snapshot (no bbolt database header)', bytes}
  if (bytes % 512 !== HASH_BYTES) return {ok: false, detail: `${bytes} bytes: no SHA-256 appended, or truncated (a snapshot is a multiple of 512 bytes plus 32)`, bytes}
  const digest = h.digest()
  if (!digest.equals(tail)) return {ok: false, detail: `damaged: the database's SHA-256 ${digest.toString('hex')} ≠ the ${tail.toString('hex')} etcd appended`, bytes}
  return {ok: true, detail: `bbolt database of ${bytes - HASH_BYTES} bytes matches the SHA-256 etcd appended`, bytes}
}
