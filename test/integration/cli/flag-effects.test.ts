import {existsSync} from 'node:fs'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parse} from 'yaml'

import {removeDir, runCli, tempDir} from '../../support/cli.js'
import {type PveSim, startPveSim} from '../../support/pve-sim/index.mjs'

/** The effect of flags no other test passes: what they change in the workspace or the checks. */
let dir: string
let sim: PveSim
let key: string
let caFile: string
let passwordFile: string

beforeAll(async () => {
  dir = await tempDir('autolabs-flags-')
  sim = await startPveSim({authFailureDelayMs: 10})
  key = path.join(dir, 'id.pub')
  await writeFile(key, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@ws\n')
  caFile = path.join(dir, 'pve-ca.pem')
  await writeFile(caFile, sim.certificate.cert)
  passwordFile = path.join(dir, 'password')
  await writeFile(passwordFile, `${sim.rootPassword}\n`, {mode: 0o600})
})
afterAll(async () => {
  await sim?.stop()
  await removeDir(dir)
})

const dryRun = (ws: string, args: string[]) => runCli(['init', '--dry-run', '--yes', '--dir', ws, '--ssh-public-key', key, '--proxmox-url', sim.url, ...args])
const yamlOf = async (ws: string) => parse(await readFile(path.join(ws, 'autolabs.yaml'), 'utf8')) as {proxmox: Record<string, unknown>}
const tfvarsOf = async (ws: string) => JSON.parse(await readFile(path.join(ws, 'terraform', 'terraform.tfvars.json'), 'utf8')) as Record<string, unknown>

describe('init flags reach autolabs.yaml and the Terraform variables', () => {
  it('--proxmox-node, --vm-storage, --image-storage, --proxmox-auth password with --proxmox-username, --proxmox-ca-file', async () => {
    const ws = path.join(dir, 'ws-init')
    const r = await dryRun(ws, ['--proxmox-node', 'pve2', '--vm-storage', 'fast-lvm', '--image-storage', 'isos', '--proxmox-auth', 'password', '--proxmox-username', 'admin@pve', '--proxmox-ca-file', caFile])
    expect(r.exitCode, r.stderr).toBe(0)
    expect((await yamlOf(ws)).proxmox).toMatchObject({node: 'pve2', vmStorage: 'fast-lvm', imageStorage: 'isos', auth: 'password', username: 'admin@pve', caFile})
    expect(await tfvarsOf(ws)).toMatchObject({proxmox_node: 'pve2', vm_datastore: 'fast-lvm', image_datastore: 'isos', proxmox_insecure: false})
  })

  it('--insecure is written as the explicit opt-in, and Terraform is told so', async () => {
    const ws = path.join(dir, 'ws-insecure')
    const r = await dryRun(ws, ['--insecure'])
    expect(r.exitCode, r.stderr).toBe(0)
    expect((await yamlOf(ws)).proxmox).toMatchObject({insecure: true})
    expect(await tfvarsOf(ws)).toMatchObject({proxmox_insecure: true})
  })
})

describe('preflight flags', () => {
  let ws: string
  beforeAll(async () => {
    // A workspace that pins nothing and authenticates with a password: the flags must supply both.
    ws = path.join(dir, 'ws-preflight')
    const r = await dryRun(ws, ['--proxmox-auth', 'password', '--proxmox-username', 'root@pam'])
    expect(r.exitCode, r.stderr).toBe(0)
  })
  const connection = async (args: string[]) => {
    const r = await runCli(['preflight', '--json', '--dir', ws, ...args])
    const checks = JSON.parse(r.stdout).checks as Array<{id: string; status: string; detail: string}>
    return {connection: checks.find((c) => c.id === 'proxmox-connection'), node: checks.find((c) => c.id === 'node'), checks}
  }

  it('--proxmox-password-file logs in and --proxmox-ca-file trusts the certificate; without the CA it is refused', async () => {
    const trusted = await connection(['--proxmox-password-file', passwordFile, '--proxmox-ca-file', caFile])
    expect(trusted.connection).toBeUndefined() // only a failed connection is a check of its own
    expect(trusted.node).toMatchObject({status: 'pass'})
    const untrusted = await connection(['--proxmox-password-file', passwordFile])
    expect(untrusted.connection).toMatchObject({status: 'fail'})
  })

  it('--insecure connects without any trust anchor; --proxmox-node picks the node checked', async () => {
    expect((await connection(['--proxmox-password-file', passwordFile, '--insecure'])).node).toMatchObject({status: 'pass', detail: 'online'})
    const other = await connection(['--proxmox-password-file', passwordFile, '--insecure', '--proxmox-node', 'nope'])
    expect(other.node).toMatchObject({status: 'fail', detail: expect.stringContaining('no node "nope"')})
  })
})

describe('preflight flags (token)', () => {
  it('--proxmox-token-id with --proxmox-token-secret-file switch a password workspace to the token', async () => {
    const ws = path.join(dir, 'ws-preflight-token')
    expect((await dryRun(ws, ['--proxmox-auth', 'password', '--proxmox-username', 'root@pam', '--proxmox-ca-file', caFile])).exitCode).toBe(0)
    const secretFile = path.join(dir, 'token-secret')
    await writeFile(secretFile, `${sim.adminTokenSecret}\n`, {mode: 0o600})
    const r = await runCli(['preflight', '--json', '--dir', ws, '--proxmox-token-id', sim.adminTokenId, '--proxmox-token-secret-file', secretFile])
    const checks = JSON.parse(r.stdout).checks as Array<{id: string; status: string}>
    expect(checks.find((c) => c.id === 'node')).toMatchObject({status: 'pass'})
    expect(sim.requests.filter((q) => q.auth === sim.adminTokenId).length).toBeGreaterThan(0)
  })
})

describe('destroy --purge', () => {
  it('deletes the secrets and the backups that destroy otherwise keeps', async () => {
    const ws = path.join(dir, 'ws-purge')
    expect((await dryRun(ws, [])).exitCode).toBe(0)
    await mkdir(path.join(ws, 'backups', '20261125-020000'), {recursive: true})
    const kept = await runCli(['destroy', '--yes', '--json', '--dir', ws])
    expect(kept.exitCode, kept.stderr).toBe(0)
    expect(JSON.parse(kept.stdout)).toMatchObject({removed: [], kept: [path.join(ws, '.autolabs', 'secrets.yaml'), path.join(ws, 'backups')]})
    const purged = await runCli(['destroy', '--yes', '--purge', '--json', '--dir', ws])
    expect(purged.exitCode, purged.stderr).toBe(0)
    expect(JSON.parse(purged.stdout)).toMatchObject({removed: [path.join(ws, '.autolabs', 'secrets.yaml'), path.join(ws, 'backups')], kept: []})
    expect(existsSync(path.join(ws, '.autolabs', 'secrets.yaml'))).toBe(false)
    expect(existsSync(path.join(ws, 'backups'))).toBe(false)
  })
})
