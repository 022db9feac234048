/**
 * The workspace as one age-encrypted tar (`<name>.tar.age`): its private state for `backup now`,
 * or the whole workspace for `autolabs workspace export`. Plain formats on purpose: without
 * autolabs, `age -d -o ws.tar FILE && tar -xf ws.tar` restores it by hand.
 *
 * The tar's first entry, autolabs-archive.json, names the environment and lists every file with
 * its mode, size and SHA-256; reading checks the whole archive in memory before anything is
 * written, so a wrong key, a truncated or tampered file writes nothing.
 */
import {createHash} from 'node:crypto'
import {lstat, readdir, readFile} from 'node:fs/promises'
import path from 'node:path'

import {UsageError, UserError} from '../errors.js'
import type {Config} from '../config/schema.js'
import {ROLES} from '../config/schema.js'
import type {Workspace} from './workspace.js'

export type ArchiveKind = 'private' | 'full'

/** What makes two workspaces the same environment: the name, where it runs, and its VMIDs. */
export interface EnvironmentIdentity {
  name: string
  proxmoxUrl: string
  node: string
  vmids: number[]
}

export interface ArchiveFile {
  /** Relative to the workspace root, with forward slashes. */
  path: string
  mode: number
  bytes: number
  sha256: string
}

export interface ArchiveIndex {
  format: 'autolabs-workspace'
  version: 1
  kind: ArchiveKind
  createdAt: string
  createdBy: string
  environment: EnvironmentIdentity
  files: ArchiveFile[]
}

export const INDEX_NAME = 'autolabs-archive.json'
/** A workspace's state is kilobytes; Terraform state of three VMs well under a megabyte. */
const MAX_FILE_BYTES = 64 * 2 ** 20
const MAX_ARCHIVE_BYTES = 256 * 2 ** 20

/** Terraform's files that hold secrets or state: never in Git, always in the private part. */
const TERRAFORM_PRIVATE = ['terraform/terraform.tfstate', 'terraform/terraform.tfstate.backup', 'terraform/terraform.tfvars.json']

export function environmentOf(config: Config): EnvironmentIdentity {
  return {
    name: config.name,
    proxmoxUrl: config.proxmox.url,
    node: config.proxmox.node,
    vmids: [config.proxmox.templateVmid, ...ROLES.map((r) => config.vms[r].vmid)].sort((a, b) => a - b),
  }
}

export function sameEnvironment(a: EnvironmentIdentity, b: EnvironmentIdentity): boolean {
  return a.name === b.name && a.proxmoxUrl === b.proxmoxUrl && a.node === b.node && a.vmids.join(',') === b.vmids.join(',')
}

export function describeEnvironment(e: EnvironmentIdentity): string {
  return `"${e.name}" on ${e.proxmoxUrl} node ${e.node} (VMIDs ${e.vmids.join(', ')})`
}

/** Whether a workspace-relative path belongs in an archive of this kind. */
export function belongsTo(kind: ArchiveKind, rel: string): boolean {
  if (rel.startsWith('.autolabs/')) return !rel.startsWith('.autolabs/logs/') && !isTempName(rel)
  if (TERRAFORM_PRIVATE.includes(rel)) return true
  if (kind === 'private') return false
  if (rel === 'autolabs.yaml' || rel === '.gitignore') return true
  // The Git part of terraform/: the .tf files and the lock file, not the provider binaries.
  return rel.startsWith('terraform/') && !rel.startsWith('terraform/.terraform/') && !isTempName(rel)
}

function isTempName(rel: string): boolean {
  // writeFilesTogether's temp files (src/workspace/fs.ts), and the names autolabs used before.
  return /\/\.[^/]+\.(?:\d+\.[0-9a-f]{12}\.autolabs-tmp|[0-9a-f]{12}\.tmp)$/.test(rel)
}

/** The files of a workspace that belong in an archive of `kind`: regular files only, sorted. */
export async function collectFiles(ws: Workspace, kind: ArchiveKind): Promise<Array<ArchiveFile & {data: Buffer}>> {
  const out: Array<ArchiveFile & {data: Buffer}> = []
  const walk = async (dir: string) => {
    let entries
    try {
      entries = await readdir(path.join(ws.root, dir), {withFileTypes: true})
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return
      throw error
    }
    for (const e of entries) {
      const rel = dir ? `${dir}/${e.name}` : e.name
      // Symbolic links are never followed: a link could point anywhere on the workstation.
      if (e.isDirectory()) {
        if (rel === 'backups' || rel === '.autolabs/logs' || rel === 'terraform/.terraform') continue
        if (rel === '.autolabs' || rel === 'terraform' || rel.startsWith('.autolabs/') || rel.startsWith('terraform/')) await walk(rel)
        continue
      }
      if (!e.isFile() || !belongsTo(kind, rel)) continue
      const abs = path.join(ws.root, rel)
      const st = await lstat(abs)
      if (st.size > MAX_FILE_BYTES) throw new UserError(`${abs} is ${st.size} bytes: larger than a workspace file can be (${MAX_FILE_BYTES}).`, {suggestion: 'Move files that are not autolabs\' own out of .autolabs/ and terraform/.'})
      const data = await readFile(abs)
      out.push({path: rel, mode: st.mode & 0o777, bytes: data.length, sha256: sha256(data), data})
    }
  }
  await walk('')
  out.sort((a, b) => (a.path < b.path ? -1 : 1))
  return out
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** How an archive is encrypted: to age recipients (age1…), or with a passphrase (scrypt). */
export type EncryptKey = {recipients: string[]} | {passphrase: string}
/** How it is decrypted: age identities (AGE-SECRET-KEY-1…), or the passphrase. */
export type DecryptKey = {identities: string[]} | {passphrase: string}

export function describeKey(key: EncryptKey): string {
  return 'recipients' in key ? `age recipient${key.recipients.length > 1 ? 's' : ''} ${key.recipients.join(', ')}` : 'a passphrase'
}

const IDENTITY = /^AGE-SECRET-KEY-(?:PQ-)?1[02-9AC-HJ-NP-Z]{58,}$/

/** Builds the tar (index first, then the files) and encrypts it. */
export async function packArchive(
  ws: Workspace,
  config: Config,
  opts: {kind: ArchiveKind; key: EncryptKey; createdBy: string; now?: Date},
): Promise<{bytes: Uint8Array; index: ArchiveIndex}> {
  const files = await collectFiles(ws, opts.kind)
  if (!files.some((f) => f.path === '.autolabs/secrets.yaml')) {
    throw new UserError(`${ws.secretsFile} does not exist: this workspace has no private state to archive yet.`, {suggestion: 'Run `autolabs init` first.'})
  }
  const index: ArchiveIndex = {
    format: 'autolabs-workspace',
    version: 1,
    kind: opts.kind,
    createdAt: (opts.now ?? new Date()).toISOString(),
    createdBy: opts.createdBy,
    environment: environmentOf(config),
    files: files.map(({data: _data, ...f}) => f),
  }
  const {Header} = await import('tar')
  const chunks: Buffer[] = []
  const mtime = new Date(index.createdAt)
  const add = (name: string, data: Buffer, mode: number) => {
    const h = new Header({path: name, mode, size: data.length, mtime, type: 'File', uid: 0, gid: 0, uname: '', gname: ''})
    const block = Buffer.alloc(512)
    // true = the header needs a pax extension (a path over 100 bytes): autolabs' paths never do.
    if (h.encode(block, 0)) throw new UserError(`${name}: path too long for a workspace archive.`)
    chunks.push(block, data, Buffer.alloc((512 - (data.length % 512)) % 512))
  }
  add(INDEX_NAME, Buffer.from(JSON.stringify(index, null, 2) + '\n'), 0o600)
  for (const f of files) add(f.path, f.data, f.mode)
  chunks.push(Buffer.alloc(1024)) // two zero blocks end a tar
  const age = await import('age-encryption')
  const enc = new age.Encrypter()
  if ('recipients' in opts.key) for (const r of opts.key.recipients) enc.addRecipient(r)
  else enc.setPassphrase(opts.key.passphrase)
  return {bytes: await enc.encrypt(Buffer.concat(chunks)), index}
}

export interface OpenedArchive {
  index: ArchiveIndex
  files: Array<ArchiveFile & {data: Buffer}>
}

/**
 * Decrypts and checks an archive entirely in memory: the index first, then every file against
 * it (path allowed for the kind, size, SHA-256), nothing missing and nothing extra.
 */
export async function openArchive(encrypted: Uint8Array, key: DecryptKey, source: string): Promise<OpenedArchive> {
  if (encrypted.length > MAX_ARCHIVE_BYTES) throw new UserError(`${source} is larger than a workspace archive can be (${MAX_ARCHIVE_BYTES} bytes).`)
  const age = await import('age-encryption')
  const dec = new age.Decrypter()
  if ('identities' in key) for (const i of key.identities) dec.addIdentity(i)
  else dec.addPassphrase(key.passphrase)
  let plain: Uint8Array
  try {
    plain = await dec.decrypt(encrypted)
  } catch (error) {
    const m = (error as Error).message ?? ''
    if (/no identity matched|incorrect passphrase|scrypt|passphrase/i.test(m) && !/invalid tag|truncated|unexpected end/i.test(m)) {
      throw new UsageError(`${source} cannot be opened with the ${'identities' in key ? 'age identity' : 'passphrase'} given: ${'identities' in key ? 'the archive is not encrypted to it' : 'wrong passphrase, or the archive is encrypted to an age key'}.`, {
        suggestion: 'identities' in key
          ? 'Pass the identity file whose public key (age1…) the archive was encrypted to (--identity-file / AUTOLABS_AGE_IDENTITY_FILE), or its passphrase.'
          : 'Check the passphrase (AUTOLABS_BACKUP_PASSPHRASE or --passphrase-file); an archive encrypted to an age key needs --identity-file.',
      })
    }
    throw new UserError(`${source} is damaged or truncated: it does not decrypt (${m || 'age format error'}).`, {
      suggestion: 'Use another copy of the archive (backups/<id>/workspace.tar.age, the copy on database-vm, or your export).',
    })
  }
  return readTar(Buffer.from(plain), source)
}

async function readTar(tarBytes: Buffer, source: string): Promise<OpenedArchive> {
  const damaged = (why: string) => new UserError(`${source} is not a valid autolabs workspace archive: ${why}.`, {suggestion: 'Use another copy of the archive.'})
  const {Parser} = await import('tar')
  const entries: Array<{path: string; type: string; data: Buffer}> = []
  await new Promise<void>((resolve, reject) => {
    const p = new Parser({strict: true})
    p.on('entry', (e) => {
      const parts: Buffer[] = []
      e.on('data', (c: Buffer) => parts.push(c))
      e.on('end', () => entries.push({path: e.path, type: e.type, data: Buffer.concat(parts)}))
    })
    p.on('error', reject)
    p.on('warn', (_code: string, message: string | Error) => reject(damaged(String(message))))
    p.on('end', () => resolve())
    p.end(tarBytes)
  }).catch((error) => {
    throw error instanceof UserError ? error : damaged((error as Error).message)
  })
  const [first, ...rest] = entries
  if (!first || first.path !== INDEX_NAME) throw damaged(`its first entry is not ${INDEX_NAME}`)
  let index: ArchiveIndex
  try {
    index = JSON.parse(first.data.toString('utf8')) as ArchiveIndex
  } catch {
    throw damaged(`${INDEX_NAME} is not JSON`)
  }
  if (index?.format !== 'autolabs-workspace' || index.version !== 1 || (index.kind !== 'private' && index.kind !== 'full') || !Array.isArray(index.files)) {
    throw damaged(`${INDEX_NAME} is not a version 1 autolabs workspace index`)
  }
  const listed = new Map(index.files.map((f) => [f.path, f]))
  const files: OpenedArchive['files'] = []
  for (const e of rest) {
    const meta = listed.get(e.path)
    if (!meta) throw damaged(`${e.path} is not listed in its index`)
    if (e.type !== 'File') throw damaged(`${e.path} is not a regular file`)
    if (!safeRelative(e.path) || !belongsTo(index.kind, e.path)) throw damaged(`${e.path} is not a path a workspace archive may hold`)
    if (e.data.length !== meta.bytes || sha256(e.data) !== meta.sha256) throw damaged(`${e.path} does not match its checksum`)
    if (!Number.isInteger(meta.mode) || meta.mode < 0 || meta.mode > 0o777) throw damaged(`${e.path} has an invalid mode`)
    files.push({...meta, data: e.data})
    listed.delete(e.path)
  }
  if (listed.size > 0) throw damaged(`${[...listed.keys()].join(', ')} listed in its index but missing`)
  if (!files.some((f) => f.path === '.autolabs/secrets.yaml')) throw damaged('it holds no .autolabs/secrets.yaml')
  if (index.kind === 'full' && !files.some((f) => f.path === 'autolabs.yaml')) throw damaged('a full archive without autolabs.yaml')
  return {index, files}
}

function safeRelative(p: string): boolean {
  return !p.startsWith('/') && !p.includes('\\') && p.split('/').every((s) => s !== '' && s !== '.' && s !== '..') && !/[\u0000-\u001F]/.test(p)
}

/** Parses an age identity file: AGE-SECRET-KEY-1… lines, # comments ignored. */
export function parseIdentities(text: string, source: string): string[] {
  const ids = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
  const bad = ids.findIndex((l) => !IDENTITY.test(l))
  if (ids.length === 0 || bad >= 0) {
    throw new UsageError(`${source} is not an age identity file${bad >= 0 ? ` (line ${bad + 1} is not an AGE-SECRET-KEY-1… key)` : ' (no key in it)'}.`, {
      suggestion: 'Pass the file written by `age-keygen` or `autolabs workspace keygen`.',
    })
  }
  return ids
}

/** Reads an archive file: a regular file (no FIFO or device), of bounded size. */
export async function readArchiveFile(file: string): Promise<Buffer> {
  const {stat} = await import('node:fs/promises')
  const st = await stat(file).catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`Cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : (error.code ?? error.message)}.`, {suggestion: 'Check the path of the archive.'})
  })
  if (!st.isFile()) throw new UsageError(`${file} is not a regular file.`, {suggestion: 'Name the .tar.age archive.'})
  if (st.size > MAX_ARCHIVE_BYTES) throw new UserError(`${file} is larger than a workspace archive can be (${MAX_ARCHIVE_BYTES} bytes).`)
  return readFile(file)
}
