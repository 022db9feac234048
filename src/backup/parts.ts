/**
 * The parts of a backup. Each returns what its manifest entry needs, or throws; the
 * orchestrator (run.ts) turns a throw into a failed part without stopping the others.
 */
import {createHash} from 'node:crypto'
import {createWriteStream} from 'node:fs'
import {rm} from 'node:fs/promises'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'

import {ExternalError} from '../errors.js'
import {snapshotName} from './id.js'
import type {BackupFile, PartRecord} from './manifest.js'
import {writeFileAtomic} from '../workspace/fs.js'
import {CAT_AND_REMOVE, ETCD_SNAPSHOT, GITLAB_BACKUP, GITLAB_HOME, PG_DUMPALL, PG_DUMPALL_ZSTD, PG_INFO, WORKSPACE_COPY, type BackupShell} from './remote.js'
import {ByteCounter, type Compression, compressor, extensionOf, Hasher} from './streams.js'

export type PartOutcome = Pick<PartRecord, 'files' | 'versions' | 'details'>

/** Progress: raw bytes received so far for a part (called often; throttle in the UI). */
export type OnBytes = (bytes: number) => void

const HOURS = 3_600_000

function failed(what: string, r: {code: number; stderr: string; stdout?: string}): never {
  throw new ExternalError(`${what} failed (exit ${r.code}).`, {command: what, stderrTail: (r.stderr || r.stdout || '').trim().split('\n').slice(-15).join('\n')})
}

/**
 * Streams remote stdout into `file` through an optional compressor, hashing what is written:
 * nothing is buffered whole, nothing is written on the VM.
 */
export async function streamToFile(
  sh: BackupShell,
  script: string,
  file: string,
  opts: {args?: string[]; compression?: Compression; onBytes?: OnBytes; label: string; timeoutMs?: number; logFile?: string; stderr?: string[]},
): Promise<BackupFile & {rawBytes: number}> {
  const counter = new ByteCounter(opts.onBytes)
  const hasher = new Hasher()
  const out = createWriteStream(file, {mode: 0o600})
  let sink: Promise<unknown>
  let comp: ReturnType<typeof compressor> | undefined
  if (opts.compression) {
    comp = compressor(opts.compression)
    counter.pipe(comp.input)
    sink = Promise.all([pipeline(comp.output, hasher, out), comp.done])
  } else {
    sink = pipeline(counter, hasher, out)
  }
  sink.catch(() => undefined)
  // If the local side fails (disk full, zstd died), stop waiting for the remote command: it
  // would block on a full pipe until its timeout. The session is closed by the caller.
  const sinkFailed = new Promise<never>((_, reject) => sink.catch(reject))
  sinkFailed.catch(() => undefined)
  try {
    const r = await Promise.race([
      sh.exec(script, {args: opts.args, sudo: true, stdout: counter, timeoutMs: opts.timeoutMs ?? 6 * HOURS, label: opts.label, logFile: opts.logFile}),
      sinkFailed,
    ])
    counter.end()
    await sink
    if (r.code !== 0) failed(opts.label, r)
    opts.stderr?.push(r.stderr)
  } catch (error) {
    counter.destroy()
    out.destroy()
    await rm(file, {force: true})
    throw error
  }
  return {path: path.basename(file), bytes: hasher.bytes, sha256: hasher.digest(), rawBytes: counter.bytes}
}

export async function backupPostgres(sh: BackupShell, dir: string, opts: {compression: Compression; onBytes?: OnBytes; logFile?: string; remoteCompression?: boolean}): Promise<PartOutcome> {
  const info = await sh.exec(PG_INFO, {sudo: true, timeoutMs: 60_000, label: 'PostgreSQL version and databases', logFile: opts.logFile})
  if (info.code !== 0) failed('PostgreSQL version and databases', info)
  const [zstdLine, server, dumpall, ...databases] = info.stdout.trim().split('\n').map((l) => l.trim())
  const file = path.join(dir, `postgres.sql${extensionOf(opts.compression)}`)
  // zstd on both ends: compress on the VM, so only the compressed stream crosses the network.
  const remote = opts.compression === 'zstd' && zstdLine === 'zstd=yes' && opts.remoteCompression !== false
  let f: BackupFile & {rawBytes: number}
  let rawBytes: number
  if (remote) {
    const stderr: string[] = []
    f = await streamToFile(sh, PG_DUMPALL_ZSTD, file, {onBytes: opts.onBytes, label: 'pg_dumpall | zstd', logFile: opts.logFile, stderr})
    rawBytes = Number(/^(\d+) bytes/m.exec(stderr.join('\n'))?.[1] ?? Number.NaN)
    if (!Number.isFinite(rawBytes)) throw new ExternalError('pg_dumpall | zstd did not report its size (dd).', {command: 'pg_dumpall', stderrTail: stderr.join('\n').slice(-2000)})
  } else {
    f = await streamToFile(sh, PG_DUMPALL, file, {compression: opts.compression, onBytes: opts.onBytes, label: 'pg_dumpall', logFile: opts.logFile})
    rawBytes = f.rawBytes
  }
  if (rawBytes === 0) throw new ExternalError('pg_dumpall produced no output.', {command: 'pg_dumpall'})
  return {
    files: [{path: f.path, bytes: f.bytes, sha256: f.sha256}],
    versions: {postgres: server, pg_dumpall: dumpall},
    details: {
      databases: databases.filter(Boolean),
      uncompressedBytes: rawBytes,
      compression: opts.compression,
      compressedOn: remote ? 'vm' : 'workstation',
      format: 'pg_dumpall --clean --if-exists',
    },
  }
}

export async function backupEtcd(sh: BackupShell, dir: string, id: string, opts: {compression: Compression; onBytes?: OnBytes; logFile?: string}): Promise<PartOutcome> {
  const remote = `/var/lib/etcd/autolabs-snapshot-${id}.db`
  const snap = await sh.exec(ETCD_SNAPSHOT, {args: [remote], sudo: true, timeoutMs: 600_000, label: 'etcdctl snapshot save', logFile: opts.logFile})
  if (snap.code !== 0) failed('etcdctl snapshot save', snap)
  const file = path.join(dir, `etcd-snapshot.db${extensionOf(opts.compression)}`)
  const f = await streamToFile(sh, CAT_AND_REMOVE, file, {args: [remote], compression: opts.compression, onBytes: opts.onBytes, label: 'copy etcd snapshot', logFile: opts.logFile})
  return {
    files: [{path: f.path, bytes: f.bytes, sha256: f.sha256}],
    versions: {etcd: snap.stdout.trim().split('\n').at(-1) ?? 'unknown'},
    details: {uncompressedBytes: f.rawBytes, compression: opts.compression},
  }
}

/**
 * GitLab: `gitlab-backup create` inside the container, its tar copied back and removed from the
 * VM, plus gitlab-secrets.json and gitlab.rb (0600) — without them a GitLab backup cannot be
 * restored (they hold the keys that decrypt the database's secrets).
 */
export async function backupGitlab(sh: BackupShell, dir: string, id: string, opts: {onBytes?: OnBytes; logFile?: string; gitlabHome?: string}): Promise<PartOutcome> {
  const home = opts.gitlabHome ?? GITLAB_HOME
  const name = snapshotName(id)
  const r = await sh.exec(GITLAB_BACKUP, {args: [name, home], sudo: true, timeoutMs: 6 * HOURS, label: 'gitlab-backup create', logFile: opts.logFile})
  if (r.code !== 0) failed('gitlab-backup create', r)
  const remoteFile = /^file (.+)$/m.exec(r.stdout)?.[1]
  const version = /^version (.+)$/m.exec(r.stdout)?.[1] ?? 'unknown'
  if (!remoteFile) throw new ExternalError('gitlab-backup create did not say where the backup is.', {command: 'gitlab-backup create', stderrTail: r.stdout})
  const files: BackupFile[] = []
  const tar = await streamToFile(sh, CAT_AND_REMOVE, path.join(dir, `gitlab_backup.tar`), {args: [remoteFile], onBytes: opts.onBytes, label: 'copy gitlab backup'})
  files.push({path: tar.path, bytes: tar.bytes, sha256: tar.sha256})
  for (const conf of ['gitlab-secrets.json', 'gitlab.rb']) {
    const f = await streamToFile(sh, CAT_AND_REMOVE, path.join(dir, conf), {args: [`${home}/config/${conf}`, 'keep'], label: `copy ${conf}`})
    files.push({path: f.path, bytes: f.bytes, sha256: f.sha256})
  }
  return {files, versions: {gitlab: version}, details: {remoteFileRemoved: remoteFile}}
}

/** Where VMs keep their copies of the encrypted workspace archive (root-only). */
export const WORKSPACE_COPY_DIR = '/var/backups/autolabs/workspace'

/** The encrypted private state, as made by src/workspace/archive.ts's packArchive. */
export interface PackedWorkspace {
  bytes: Uint8Array
  files: string[]
  /** "a passphrase" or the age recipients. */
  encryptedWith: string
}

/**
 * The workspace's private state (secrets, Terraform state, pinned host keys, kubeconfig,
 * state.json), age-encrypted into workspace.tar.age, and a copy on each VM named, so that
 * losing the workstation does not lose the keys to the platform.
 */
export async function backupWorkspace(
  pack: () => Promise<PackedWorkspace>,
  dir: string,
  id: string,
  opts: {copies: Array<{vm: string; shell: () => Promise<BackupShell>}>; keepCopies: number; logFile?: string},
): Promise<PartOutcome> {
  const packed = await pack()
  const name = 'workspace.tar.age'
  await writeFileAtomic(path.join(dir, name), packed.bytes, 0o600)
  const file: BackupFile = {path: name, bytes: packed.bytes.length, sha256: createHash('sha256').update(packed.bytes).digest('hex')}
  const copies = await Promise.all(
    opts.copies.map(async (c) => {
      const where = `${c.vm}:${WORKSPACE_COPY_DIR}/${id}.tar.age`
      try {
        const sh = await c.shell()
        const r = await sh.exec(WORKSPACE_COPY, {stdin: Buffer.from(packed.bytes), args: [WORKSPACE_COPY_DIR, `${id}.tar.age`, String(Math.max(1, opts.keepCopies))], sudo: true, timeoutMs: 300_000, label: 'copy workspace archive', logFile: opts.logFile})
        if (r.code !== 0) failed(`copy workspace archive to ${c.vm}`, r)
        return {to: where, ok: true as const}
      } catch (error) {
        return {to: where, ok: false as const, error: (error as Error).message}
      }
    }),
  )
  const details = {files: packed.files, encryptedWith: packed.encryptedWith, copies}
  const bad = copies.filter((c) => !c.ok)
  if (bad.length > 0) {
    throw Object.assign(new Error(`saved as ${name}, but the copy to ${bad.map((c) => `${c.to} failed: ${c.error}`).join('; ')}`), {details: {...details, file}})
  }
  return {files: [file], details}
}

/** What backups need from the Proxmox API: the matching subset of src/proxmox's ProxmoxClient. */
export interface SnapshotApi {
  createSnapshot(node: string, vmid: number, name: string, opts: {description?: string}): Promise<unknown>
  listSnapshots(node: string, vmid: number): Promise<Array<{name: string; snaptime?: number; description?: string}>>
  deleteSnapshot(node: string, vmid: number, name: string): Promise<unknown>
  rollbackSnapshot(node: string, vmid: number, name: string, opts?: {start?: boolean}): Promise<unknown>
}

export async function backupSnapshots(
  api: SnapshotApi,
  node: string,
  vms: Array<{name: string; vmid: number}>,
  id: string,
  onDone?: (vm: string) => void,
): Promise<PartOutcome> {
  const name = snapshotName(id)
  const results = await Promise.allSettled(
    vms.map(async (vm) => {
      await api.createSnapshot(node, vm.vmid, name, {description: `autolabs backup ${id} of ${vm.name} (autolabs backup now)`})
      onDone?.(vm.name)
      return vm
    }),
  )
  const taken = results.flatMap((r, i) => (r.status === 'fulfilled' ? [{vm: vms[i].name, vmid: vms[i].vmid, snapshot: name}] : []))
  const errors = results.flatMap((r, i) => (r.status === 'rejected' ? [`${vms[i].name}: ${(r.reason as Error)?.message ?? r.reason}`] : []))
  if (errors.length > 0) throw Object.assign(new Error(`snapshot failed for ${errors.join('; ')}`), {details: {taken}})
  return {files: [], details: {taken}}
}
