import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import * as age from 'age-encryption'
import {Header} from 'tar'
import {stringify} from 'yaml'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {configSchema} from '../../../src/config/schema.js'
import {UsageError, UserError} from '../../../src/errors.js'
import {collectFiles, environmentOf, INDEX_NAME, openArchive, packArchive, parseIdentities} from '../../../src/workspace/archive.js'
import {importArchive} from '../../../src/workspace/import.js'
import {generateSecrets, saveSecrets} from '../../../src/workspace/secrets.js'
import {Workspace} from '../../../src/workspace/workspace.js'

let root: string
let ws: Workspace
let identity: string
let recipient: string
const config = configSchema.parse({name: 'lab-one', proxmox: {url: 'https://pve.lan:8006', node: 'pve1'}})

/** A workspace as init leaves it after a real run: every private file, logs, provider binaries. */
async function makeWorkspace(dir: string): Promise<Workspace> {
  const w = new Workspace(dir)
  await mkdir(path.join(w.logsDir, 'database-vm'), {recursive: true, mode: 0o700})
  await saveSecrets(w, generateSecrets(['autolabs', 'zitadel', 'gitlab']))
  await writeFile(w.configFile, stringify({name: 'lab-one', proxmox: {url: 'https://pve.lan:8006', node: 'pve1'}}))
  await writeFile(w.gitignoreFile, '.autolabs/\n')
  await writeFile(w.stateFile, '{"version":1}\n', {mode: 0o600})
  await writeFile(w.knownHostsFile, '10.0.0.20 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfDatabaseVm\n', {mode: 0o600})
  await writeFile(w.kubeconfigFile, 'apiVersion: v1\nkind: Config\n', {mode: 0o600})
  await writeFile(path.join(w.logsDir, 'database-vm', 'base.log'), 'a log\n')
  await mkdir(path.join(w.terraformDir, '.terraform', 'providers'), {recursive: true})
  await writeFile(path.join(w.terraformDir, '.terraform', 'providers', 'bpg'), 'a provider binary')
  await writeFile(path.join(w.terraformDir, 'main.tf'), 'terraform {}\n')
  await writeFile(path.join(w.terraformDir, '.terraform.lock.hcl'), '# lock\n')
  await writeFile(path.join(w.terraformDir, 'terraform.tfstate'), '{"version":4,"serial":7}\n', {mode: 0o600})
  await writeFile(w.tfvarsFile, '{"proxmox_api_token":"x"}\n', {mode: 0o600})
  await writeFile(path.join(w.terraformDir, '.main.tf.0a1b2c3d4e5f.tmp'), 'half written')
  await mkdir(path.join(dir, 'backups', '20261201-020000'), {recursive: true})
  await writeFile(path.join(dir, 'backups', '20261201-020000', 'postgres.sql.zst'), 'dump')
  return w
}

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'autolabs-archive-'))
  ws = await makeWorkspace(path.join(root, 'a'))
  identity = await age.generateIdentity()
  recipient = await age.identityToRecipient(identity)
})
afterEach(async () => {
  await rm(root, {recursive: true, force: true})
})

/** Encrypts a hand-made tar to `recipient`: archives the packer itself would never write. */
async function craft(entries: Array<{path: string; data: string; type?: 'File' | 'SymbolicLink'; linkpath?: string}>): Promise<Uint8Array> {
  const chunks: Buffer[] = []
  for (const e of entries) {
    const data = Buffer.from(e.data)
    const h = new Header({path: e.path, mode: 0o600, size: e.type === 'SymbolicLink' ? 0 : data.length, mtime: new Date(), type: e.type ?? 'File', linkpath: e.linkpath})
    const block = Buffer.alloc(512)
    h.encode(block, 0)
    chunks.push(block)
    if (e.type !== 'SymbolicLink') chunks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512))
  }
  chunks.push(Buffer.alloc(1024))
  const enc = new age.Encrypter()
  enc.addRecipient(recipient)
  return enc.encrypt(Buffer.concat(chunks))
}

function indexFor(files: Array<{path: string; data: string}>, kind = 'private') {
  return JSON.stringify({
    format: 'autolabs-workspace',
    version: 1,
    kind,
    createdAt: '2026-12-01T02:00:00.000Z',
    createdBy: 'test',
    environment: environmentOf(config),
    files: files.map((f) => ({path: f.path, mode: 0o600, bytes: Buffer.byteLength(f.data), sha256: createHash('sha256').update(f.data).digest('hex')})),
  })
}

describe('workspace archive: what goes in', () => {
  it('private: .autolabs/ without logs, and Terraform state and values; nothing of the Git part, no temp files', async () => {
    const files = await collectFiles(ws, 'private')
    expect(files.map((f) => f.path)).toEqual([
      '.autolabs/known_hosts',
      '.autolabs/kubeconfig',
      '.autolabs/secrets.yaml',
      '.autolabs/state.json',
      'terraform/terraform.tfstate',
      'terraform/terraform.tfvars.json',
    ])
    expect(files.find((f) => f.path === '.autolabs/secrets.yaml')?.mode).toBe(0o600)
  })

  it('full: plus autolabs.yaml, .gitignore, the .tf files and the lock file; never provider binaries, backups or logs', async () => {
    const paths = (await collectFiles(ws, 'full')).map((f) => f.path)
    expect(paths).toEqual(expect.arrayContaining(['autolabs.yaml', '.gitignore', 'terraform/main.tf', 'terraform/.terraform.lock.hcl', '.autolabs/secrets.yaml']))
    expect(paths.filter((p) => /\.terraform\/|backups\/|logs\/|\.tmp$/.test(p))).toEqual([])
  })

  it('a symbolic link inside .autolabs/ is not followed', async () => {
    await writeFile(path.join(root, 'outside'), 'not the workspace\'s')
    await symlink(path.join(root, 'outside'), path.join(ws.stateDir, 'linked'))
    expect((await collectFiles(ws, 'private')).map((f) => f.path)).not.toContain('.autolabs/linked')
  })
})

describe('workspace archive: round trip and refusals', () => {
  it('to an age recipient: every file comes back with its mode and content; the index names the environment', async () => {
    const {bytes, index} = await packArchive(ws, config, {kind: 'full', key: {recipients: [recipient]}, createdBy: 'test'})
    expect(Buffer.from(bytes).subarray(0, 21).toString()).toBe('age-encryption.org/v1')
    const opened = await openArchive(bytes, {identities: [identity]}, 'x.tar.age')
    expect(opened.index).toEqual(index)
    expect(opened.index.environment).toEqual({name: 'lab-one', proxmoxUrl: 'https://pve.lan:8006', node: 'pve1', vmids: [110, 120, 130, 9000]})
    for (const f of opened.files) expect(f.data.equals(await readFile(path.join(ws.root, f.path))), f.path).toBe(true)
    // Nothing readable in the ciphertext.
    expect(Buffer.from(bytes).includes(Buffer.from('secrets.yaml'))).toBe(false)
  })

  it('with a passphrase; a wrong passphrase or identity is a usage error (exit 2)', async () => {
    const {bytes} = await packArchive(ws, config, {kind: 'private', key: {passphrase: 'correct horse battery staple'}, createdBy: 'test'})
    expect((await openArchive(bytes, {passphrase: 'correct horse battery staple'}, 'x')).files.length).toBe(6)
    const wrong = await openArchive(bytes, {passphrase: 'incorrect horse battery'}, 'x').catch((e: unknown) => e)
    expect(wrong).toBeInstanceOf(UsageError)
    expect((wrong as UsageError).message).toMatch(/wrong passphrase/)
    const other = await openArchive(bytes, {identities: [identity]}, 'x').catch((e: unknown) => e)
    expect(other).toBeInstanceOf(UsageError)
  }, 120_000) // three scrypt runs at age's work factor (2^18): seconds each on a busy machine

  it('a truncated or altered archive is refused as damaged (exit 1)', async () => {
    const {bytes} = await packArchive(ws, config, {kind: 'private', key: {recipients: [recipient]}, createdBy: 'test'})
    for (const bad of [bytes.subarray(0, bytes.length - 100), Uint8Array.from(bytes, (b, i) => (i === bytes.length - 40 ? b ^ 1 : b))]) {
      const e = await openArchive(bad, {identities: [identity]}, 'x.tar.age').catch((error: unknown) => error)
      expect(e).toBeInstanceOf(UserError)
      expect(e).not.toBeInstanceOf(UsageError)
      expect((e as UserError).message).toMatch(/damaged or truncated/)
    }
  })

  it('a well-encrypted archive that is not what autolabs writes is refused, entry by entry', async () => {
    const secrets = {path: '.autolabs/secrets.yaml', data: 'postgres: {}\n'}
    const cases: Array<[string, Parameters<typeof craft>[0], RegExp]> = [
      ['no index', [secrets], /first entry is not autolabs-archive\.json/],
      ['a path outside the workspace', [{path: INDEX_NAME, data: indexFor([secrets, {path: '../../etc/cron.d/x', data: 'x'}])}, secrets, {path: '../../etc/cron.d/x', data: 'x'}], /not a path a workspace archive may hold/],
      ['a file not in the index', [{path: INDEX_NAME, data: indexFor([secrets])}, secrets, {path: '.autolabs/extra', data: 'x'}], /not listed in its index/],
      ['a checksum that does not match', [{path: INDEX_NAME, data: indexFor([secrets])}, {path: secrets.path, data: 'postgres: {x}\n'}], /does not match its checksum/],
      ['a listed file missing', [{path: INDEX_NAME, data: indexFor([secrets, {path: '.autolabs/state.json', data: '{}'}])}, secrets], /listed in its index but missing/],
      ['a symbolic link', [{path: INDEX_NAME, data: indexFor([secrets, {path: '.autolabs/known_hosts', data: ''}])}, secrets, {path: '.autolabs/known_hosts', data: '', type: 'SymbolicLink', linkpath: '/root/.ssh/authorized_keys'}], /not a regular file/],
      ['the Git part in a private archive', [{path: INDEX_NAME, data: indexFor([secrets, {path: 'autolabs.yaml', data: 'x'}])}, secrets, {path: 'autolabs.yaml', data: 'x'}], /not a path a workspace archive may hold/],
    ]
    expect(cases.length).toBeGreaterThan(0)
    for (const [what, entries, re] of cases) {
      const e = await openArchive(await craft(entries), {identities: [identity]}, 'x').catch((error: unknown) => error)
      expect(e, what).toBeInstanceOf(UserError)
      expect((e as Error).message, what).toMatch(re)
    }
  })

  it('the real age and tar open it too (restore by hand, without autolabs)', async () => {
    // Needs the age CLI (Debian package age, in .ci/packages.txt): fails, never skips, without it.
    const {bytes} = await packArchive(ws, config, {kind: 'private', key: {recipients: [recipient]}, createdBy: 'test'})
    await writeFile(path.join(root, 'key'), identity + '\n', {mode: 0o600})
    await writeFile(path.join(root, 'x.tar.age'), bytes)
    const listing = execFileSync('bash', ['-c', 'age -d -i "$1/key" "$1/x.tar.age" | tar -tf -', 'x', root], {encoding: 'utf8'})
    expect(listing.trim().split('\n')).toEqual([INDEX_NAME, '.autolabs/known_hosts', '.autolabs/kubeconfig', '.autolabs/secrets.yaml', '.autolabs/state.json', 'terraform/terraform.tfstate', 'terraform/terraform.tfvars.json'])
  })

  it('identity files: comments skipped, anything else refused', () => {
    expect(parseIdentities(`# created: now\n# public key: ${recipient}\n${identity}\n`, 'k')).toEqual([identity])
    expect(() => parseIdentities('# nothing\n', 'k')).toThrow(/no key in it/)
    expect(() => parseIdentities(`${identity}\nssh-ed25519 AAAA\n`, 'k')).toThrow(/line 2/)
  })
})

describe('workspace import', () => {
  const target = () => new Workspace(path.join(root, 'b'))
  const tree = async (w: Workspace) => {
    const out: Record<string, string> = {}
    for (const f of await collectFiles(w, 'full')) out[f.path] = `${f.sha256} ${f.mode.toString(8)}`
    return out
  }

  it('a full archive into an empty folder: the same files with the same modes; again: all unchanged', async () => {
    const {bytes} = await packArchive(ws, config, {kind: 'full', key: {recipients: [recipient]}, createdBy: 'test'})
    const opened = await openArchive(bytes, {identities: [identity]}, 'x')
    const first = await importArchive(target(), opened)
    expect(first.written.length).toBe(opened.files.length)
    expect(await tree(target())).toEqual(await tree(ws))
    expect((await stat(target().stateDir)).mode & 0o777).toBe(0o700)
    const again = await importArchive(target(), opened)
    expect(again).toMatchObject({written: [], unchanged: opened.files.map((f) => f.path)})
  })

  it('refuses another environment and a private archive without the Git part; writes nothing', async () => {
    const {bytes} = await packArchive(ws, config, {kind: 'private', key: {recipients: [recipient]}, createdBy: 'test'})
    const opened = await openArchive(bytes, {identities: [identity]}, 'x')
    await expect(importArchive(target(), opened)).rejects.toThrow(/has no autolabs\.yaml: a private-state archive restores into the environment's workspace/)
    await mkdir(target().root, {recursive: true})
    await writeFile(target().configFile, stringify({name: 'lab-two', proxmox: {url: 'https://pve.lan:8006', node: 'pve1'}}))
    await expect(importArchive(target(), opened)).rejects.toThrow(/holds another environment: "lab-two"/)
    expect(await tree(target())).toEqual({'autolabs.yaml': expect.any(String)})
  })

  it('a private archive into the Git clone; a differing file needs --force and is named', async () => {
    const {bytes} = await packArchive(ws, config, {kind: 'private', key: {recipients: [recipient]}, createdBy: 'test'})
    const opened = await openArchive(bytes, {identities: [identity]}, 'x')
    await mkdir(path.join(target().root, '.autolabs'), {recursive: true})
    await writeFile(target().configFile, await readFile(ws.configFile))
    await writeFile(target().stateFile, '{"version":1,"newer":true}\n')
    await expect(importArchive(target(), opened)).rejects.toThrow(/1 file\(s\) in .* differ from the archive: \.autolabs\/state\.json/)
    expect(await readFile(target().stateFile, 'utf8')).toContain('newer')
    const forced = await importArchive(target(), opened, {force: true})
    expect(forced.written).toContain('.autolabs/state.json')
    expect(await readFile(target().secretsFile, 'utf8')).toBe(await readFile(ws.secretsFile, 'utf8'))
  })

  it('never writes through a symbolic link in the target', async () => {
    const {bytes} = await packArchive(ws, config, {kind: 'full', key: {recipients: [recipient]}, createdBy: 'test'})
    const opened = await openArchive(bytes, {identities: [identity]}, 'x')
    await mkdir(path.join(root, 'elsewhere'))
    await mkdir(target().root)
    await symlink(path.join(root, 'elsewhere'), target().stateDir)
    await expect(importArchive(target(), opened)).rejects.toThrow(/is a symbolic link/)
    expect(await tree(new Workspace(path.join(root, 'elsewhere')))).toEqual({})
  })
})
