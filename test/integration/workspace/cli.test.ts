import {cp, mkdir, readFile, readdir, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {parse, stringify} from 'yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {BackupManifest} from '../../../src/backup/manifest.js'
import {configSchema} from '../../../src/config/schema.js'
import type {StatusReport} from '../../../src/status/types.js'
import {provisionWorkspace} from '../../../src/steps/provision.js'
import {Workspace} from '../../../src/workspace/workspace.js'
import {removeDir, runCli, snapshotTree, tempDir} from '../../support/cli.js'
import {type Env, FAKE_TERRAFORM, IMAGE_SHA256, setup} from '../terraform/helpers.js'

// A workspace provisioned against the Proxmox simulator with the fake Terraform (so it has a
// Terraform state), handed over with `workspace export` / `import` to another folder, which
// must then manage the same environment: no change planned, the same VMs in `status`.
// The VMs' SSH addresses are on loopback, where nothing answers.
const PASS = {AUTOLABS_BACKUP_PASSPHRASE: 'correct horse battery staple'}

describe('autolabs workspace export / import (CLI)', () => {
  let env: Env
  let work: string
  let secretValues: string[]
  const saved = {...process.env}

  beforeAll(async () => {
    const input = {
      network: {subnet: '127.0.0.0/24', gateway: '127.0.0.1', adminCidrs: ['127.0.0.0/24'], vms: {gitlab: {ip: '127.0.0.2'}, database: {ip: '127.0.0.3'}, k8s: {ip: '127.0.0.4'}}},
      backup: {workspaceCopyTo: [] as Array<'database'>},
    }
    env = await setup(input)
    const yaml = {...input, image: {checksum: IMAGE_SHA256}, proxmox: {url: env.sim.url, node: env.sim.node, tokenId: env.sim.adminTokenId, fingerprint: env.sim.fingerprint}, ssh: {publicKeyFile: path.join(env.ws.root, 'id.pub'), user: 'debian'}}
    await writeFile(env.ws.configFile, stringify(yaml))
    process.env.AUTOLABS_TERRAFORM = FAKE_TERRAFORM
    process.env.FAKE_TF_AGENT_WAIT_MS = '50'
    const r = await provisionWorkspace({workspace: env.ws, config: configSchema.parse(yaml), yes: true, interactive: false, log: () => undefined})
    expect(r.applied).toBe(true)
    work = await tempDir()
    const collect = (v: unknown): string[] => (typeof v === 'string' ? [v] : v && typeof v === 'object' ? Object.values(v).flatMap(collect) : [])
    secretValues = collect(parse(await readFile(env.ws.secretsFile, 'utf8'))).filter((s) => s.length >= 16)
    expect(secretValues.length).toBeGreaterThan(5)
  })
  afterAll(async () => {
    process.env = {...saved}
    await env?.cleanup()
    await removeDir(work)
  })

  const noSecrets = (text: string) => {
    for (const s of [...secretValues, PASS.AUTOLABS_BACKUP_PASSPHRASE]) expect(text).not.toContain(s)
  }

  it('export → import into another folder: the same files and modes, no change planned, the same VMs in status', async () => {
    // To an age key made by `workspace keygen` (no scrypt: the passphrase path is the next test's).
    const keyFile = path.join(work, 'admin.agekey')
    const kg = await runCli(['workspace', 'keygen', keyFile, '--json'])
    expect(kg.exitCode, kg.stderr).toBe(0)
    const {recipient} = JSON.parse(kg.stdout) as {recipient: string}
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600)
    expect(kg.stdout + kg.stderr).not.toMatch(/AGE-SECRET-KEY/)
    // A key file is never replaced without --force.
    const keyBefore = await readFile(keyFile, 'utf8')
    expect((await runCli(['workspace', 'keygen', keyFile])).exitCode).toBe(2)
    expect(await readFile(keyFile, 'utf8')).toBe(keyBefore)
    const scratchKey = path.join(work, 'scratch.agekey')
    await writeFile(scratchKey, 'old')
    expect((await runCli(['workspace', 'keygen', scratchKey, '--force'])).exitCode).toBe(0)
    expect(await readFile(scratchKey, 'utf8')).toMatch(/^AGE-SECRET-KEY-1/m)
    const file = path.join(work, 'handover.tar.age')
    const ex = await runCli(['workspace', 'export', file, '--recipient', recipient, '--dir', env.ws.root, '--json'])
    expect(ex.exitCode, ex.stderr).toBe(0)
    noSecrets(ex.stdout + ex.stderr)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    expect(JSON.parse(ex.stdout).files).toEqual(expect.arrayContaining(['.autolabs/secrets.yaml', 'terraform/terraform.tfstate', '.autolabs/state.json', 'autolabs.yaml']))
    // Never over an existing file without --force.
    const again = await runCli(['workspace', 'export', file, '--recipient', recipient, '--dir', env.ws.root])
    expect(again.exitCode).toBe(2)
    expect(again.stderr).toMatch(/already exists[\s\S]*--force/)
    const forced = await runCli(['workspace', 'export', file, '--recipient', recipient, '--dir', env.ws.root, '--force'])
    expect(forced.exitCode, forced.stderr).toBe(0)

    const b = new Workspace(path.join(work, 'b'))
    const im = await runCli(['workspace', 'import', file, '--dir', b.root, '--json'], {env: {AUTOLABS_AGE_IDENTITY_FILE: keyFile}})
    expect(im.exitCode, im.stderr).toBe(0)
    noSecrets(im.stdout + im.stderr)
    expect(im.stdout + im.stderr).not.toMatch(/AGE-SECRET-KEY/)
    const original = await snapshotTree(env.ws.root)
    const copy = await snapshotTree(b.root)
    const expected = Object.keys(original).filter((p) => !/^(\.autolabs\/logs|terraform\/\.terraform\/|terraform\/\.terraform$|backups)/.test(p) && !p.startsWith('terraform/.terraform/'))
    expect(expected.length).toBeGreaterThan(10)
    for (const p of expected.filter((x) => !x.endsWith('/'))) expect(copy[p], p).toBe(original[p])

    // Terraform in the new folder knows the VMs: a plan changes nothing.
    const plan = await provisionWorkspace({workspace: b, config: configSchema.parse(parse(await readFile(b.configFile, 'utf8'))), yes: true, interactive: false, log: () => undefined})
    expect(plan.plan).toMatchObject({add: 0, change: 0, destroy: 0})
    expect(plan.applied).toBe(false)

    const st = await runCli(['status', '--json', '--dir', b.root, '--connect-timeout', '1'])
    const rep = JSON.parse(st.stdout) as StatusReport
    expect(rep.vms.map((v) => [v.name, v.vmid, v.state])).toEqual([
      ['gitlab-vm', 110, 'running'],
      ['database-vm', 120, 'running'],
      ['k8s-vm', 130, 'running'],
    ])
    noSecrets(st.stdout + st.stderr)
  }, 300_000)

  it('a wrong passphrase (exit 2) or a truncated archive (exit 1) writes nothing; another environment is refused', async () => {
    const file = path.join(work, 'refusals.tar.age')
    expect((await runCli(['workspace', 'export', file, '--dir', env.ws.root], {env: PASS})).exitCode).toBe(0)
    const target = path.join(work, 'never')
    const wrong = await runCli(['workspace', 'import', file, '--dir', target], {env: {AUTOLABS_BACKUP_PASSPHRASE: 'not the passphrase'}})
    expect(wrong.exitCode).toBe(2)
    expect(wrong.stderr).toMatch(/wrong passphrase/)
    const cut = path.join(work, 'cut.tar.age')
    await writeFile(cut, (await readFile(file)).subarray(0, 3000))
    const truncated = await runCli(['workspace', 'import', cut, '--dir', target], {env: PASS})
    expect(truncated.exitCode).toBe(1)
    expect(truncated.stderr).toMatch(/damaged or truncated/)
    expect(truncated.stderr).not.toMatch(/This is a bug/)
    await expect(stat(target)).rejects.toThrow(/ENOENT/)

    const other = path.join(work, 'other')
    await mkdir(other)
    await writeFile(path.join(other, 'autolabs.yaml'), stringify({name: 'another-lab'}))
    const before = await snapshotTree(other)
    const refused = await runCli(['workspace', 'import', file, '--dir', other], {env: PASS})
    expect(refused.exitCode).toBe(1)
    expect(refused.stderr).toMatch(/holds another environment: "another-lab"/)
    expect(await snapshotTree(other)).toEqual(before)

    const noKey = await runCli(['workspace', 'import', file, '--dir', target])
    expect(noKey.exitCode).toBe(2)
    expect(noKey.stderr).toMatch(/--identity-file[\s\S]*AUTOLABS_BACKUP_PASSPHRASE or --passphrase-file \(no terminal to ask on\)/)
  }, 300_000) // scrypt (age's passphrase KDF) takes seconds, more on a loaded machine

  it('backup now --only workspace: workspace.tar.age in the manifest, checked by verify, restored into a Git clone', async () => {
    const noKey = await runCli(['backup', 'now', '--only', 'workspace', '--json', '--dir', env.ws.root])
    expect(noKey.exitCode).toBe(1)
    expect(noKey.stdout, noKey.stderr).toMatch(/"manifest"/)
    const failed = (JSON.parse(noKey.stdout) as {manifest: BackupManifest}).manifest.parts[0]
    expect(failed).toMatchObject({part: 'workspace', status: 'failed', error: expect.stringMatching(/No key to encrypt[\s\S]*backup\.recipients[\s\S]*AUTOLABS_BACKUP_PASSPHRASE/)})

    await new Promise((r) => setTimeout(r, 1100)) // backup ids have a one-second resolution
    const r = await runCli(['backup', 'now', '--only', 'workspace', '--json', '--dir', env.ws.root], {env: PASS})
    expect(r.exitCode, r.stderr).toBe(0)
    noSecrets(r.stdout + r.stderr)
    const {manifest} = JSON.parse(r.stdout) as {manifest: BackupManifest}
    const part = manifest.parts[0]
    expect(part).toMatchObject({part: 'workspace', status: 'ok', files: [{path: 'workspace.tar.age'}], details: {encryptedWith: 'a passphrase', copies: []}})
    expect(part.details?.files).toEqual(expect.arrayContaining(['.autolabs/secrets.yaml', 'terraform/terraform.tfstate', 'terraform/terraform.tfvars.json']))
    const archive = path.join(env.ws.backupsDir, manifest.id, 'workspace.tar.age')
    expect((await stat(archive)).mode & 0o777).toBe(0o600)
    const verify = await runCli(['backup', 'verify', manifest.id, '--json', '--dir', env.ws.root])
    expect(verify.exitCode, verify.stderr).toBe(0)

    // A lost workstation: the Git part cloned elsewhere, then the private state from the backup.
    const clone = new Workspace(path.join(work, 'clone'))
    await mkdir(clone.terraformDir, {recursive: true})
    await cp(env.ws.configFile, clone.configFile)
    for (const f of (await readdir(env.ws.terraformDir)).filter((n) => n.endsWith('.tf'))) await cp(path.join(env.ws.terraformDir, f), path.join(clone.terraformDir, f))
    const im = await runCli(['workspace', 'import', archive, '--dir', clone.root, '--json'], {env: PASS})
    expect(im.exitCode, im.stderr).toBe(0)
    expect(JSON.parse(im.stdout)).toMatchObject({kind: 'private'})
    expect(await readFile(clone.secretsFile, 'utf8')).toBe(await readFile(env.ws.secretsFile, 'utf8'))
    // A differing file in the clone is replaced only with --force.
    await writeFile(clone.stateFile, '{"version":1}\n')
    const differs = await runCli(['workspace', 'import', archive, '--dir', clone.root], {env: PASS})
    expect(differs.exitCode).toBe(1)
    expect(differs.stderr).toMatch(/differ from the archive: \.autolabs\/state\.json[\s\S]*--force/)
    const replaced = await runCli(['workspace', 'import', archive, '--dir', clone.root, '--force'], {env: PASS})
    expect(replaced.exitCode, replaced.stderr).toBe(0)
    expect(await readFile(clone.stateFile, 'utf8')).toBe(await readFile(env.ws.stateFile, 'utf8'))
    expect(await readFile(path.join(clone.terraformDir, 'terraform.tfstate'), 'utf8')).toBe(await readFile(path.join(env.ws.terraformDir, 'terraform.tfstate'), 'utf8'))
  }, 300_000)
})
