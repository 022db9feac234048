import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {afterEach, describe, expect, it} from 'vitest'

import {configSchema} from '../../../src/config/schema.js'
import {renderTerraform, writeTerraform} from '../../../src/render/terraform.js'
import {provision, type ProvisionEvent} from '../../../src/steps/provision.js'
import type {UserError} from '../../../src/errors.js'
import {recordHostKey} from '../../../src/ssh/known-hosts.js'
import {loadSecrets} from '../../../src/workspace/secrets.js'
import {loadState, updateState} from '../../../src/workspace/state.js'
import {KEY} from '../../unit/render/fixtures.js'
import {type Env, setup} from './helpers.js'

let env: Env | undefined
const dirs: string[] = []
afterEach(async () => {
  if (env) expect(env.sim.invalidRequests).toEqual([])
  await env?.cleanup()
  env = undefined
  await Promise.all(dirs.splice(0).map((d) => rm(d, {recursive: true, force: true})))
})

describe('cloud-init modes and changes after provisioning', () => {
  it('snippet mode: uploads one user-data snippet per VM and points each VM at its own', async () => {
    env = await setup({cloudInit: {mode: 'snippet'}, network: {aptProxy: 'http://192.168.100.5:3142'}})
    const node = await mkdtemp(path.join(os.tmpdir(), 'autolabs-node-snippets-'))
    dirs.push(node)
    const result = await provision({workspace: env.ws, config: env.config, terraform: env.terraform({FAKE_TF_NODE_SNIPPETS_DIR: node}), yes: true})
    expect(result.plan.resources.filter((r) => r.type === 'proxmox_virtual_environment_file').map((r) => r.address)).toEqual([
      'proxmox_virtual_environment_file.user_data["database"]',
      'proxmox_virtual_environment_file.user_data["gitlab"]',
      'proxmox_virtual_environment_file.user_data["k8s"]',
    ])
    const db = env.sim.vm(120)
    expect(db.config.cicustom).toBe('user=local:snippets/autolabs-database-vm-user-data.yaml')
    // The user comes from the snippet, not from Proxmox's own cloud-init settings.
    expect(db.config.ciuser).toBeUndefined()
    expect(db.config.ipconfig0).toBe('ip=192.168.100.20/24,gw=192.168.100.1')
    const snippet = await readFile(path.join(node, 'autolabs-database-vm-user-data.yaml'), 'utf8')
    expect(snippet).toContain('hostname: "database-vm"')
    expect(snippet).toContain('proxy: "http://192.168.100.5:3142"')
    expect(snippet).toContain(KEY)
  })

  it('never waits for a guest agent that is not installed yet (agent.wait_for_ip disabled): no wait, no warning', async () => {
    env = await setup()
    // New VMs come up without a running agent (builtin mode installs it later).
    const vms = env.sim.state.vms
    const set = vms.set.bind(vms)
    vms.set = (k, v) => {
      v.agent.running = false
      return set(k, v)
    }
    const events: string[] = []
    // The fake would wait this long per VM if the configuration asked it to look for the IP.
    const terraform = env.terraform({FAKE_TF_AGENT_WAIT_MS: '20000'})
    const onEvent = (e: ProvisionEvent) => {
      if (e.type === 'terraform' && e.event.type === 'diagnostic') events.push(`${e.event.severity}: ${e.event.summary}`)
    }
    const result = await provision({workspace: env.ws, config: env.config, terraform, yes: true, onEvent})
    expect(result.applied).toBe(true)
    // A second plan refreshes the started VMs: still no wait for (and no warning about) the agent.
    const again = await provision({workspace: env.ws, config: env.config, terraform, yes: true, onEvent})
    expect(again.applied).toBe(false)
    expect(events).toEqual([])
  })

  it('a changed size in autolabs.yaml is an in-place update of that VM only', async () => {
    env = await setup()
    await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true})
    const bigger = configSchema.parse({...env.config, vms: {...env.config.vms, k8s: {...env.config.vms.k8s, cores: 8, memoryMiB: 16384, diskGiB: 300}}})
    await writeTerraform(env.ws.terraformDir, await renderTerraform(bigger, await loadSecrets(env.ws), {sshPublicKeys: [KEY]}))
    const again = await provision({workspace: env.ws, config: bigger, terraform: env.terraform(), yes: true})
    expect(again.plan).toMatchObject({add: 0, change: 1, destroy: 0})
    expect(again.plan.resources).toEqual([{address: 'proxmox_virtual_environment_vm.k8s', type: 'proxmox_virtual_environment_vm', action: 'update', name: 'k8s-vm'}])
    expect(env.sim.vm(130).config).toMatchObject({cores: '8', memory: '16384', ipconfig0: 'ip=192.168.100.30/24,gw=192.168.100.1'})
    expect(env.sim.vm(130).config.scsi0).toContain('size=300G')
    expect(env.sim.vm(110).config.cores).toBe('4')
  })
})

describe('changes that would lose data', () => {
  it('refuses a plan that replaces a VM (a changed VMID) with --yes AND at the prompt, and applies it only with --allow-replace', async () => {
    env = await setup()
    await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true})
    const moved = configSchema.parse({...env.config, vms: {...env.config.vms, database: {...env.config.vms.database, vmid: 125}}})
    await writeTerraform(env.ws.terraformDir, await renderTerraform(moved, await loadSecrets(env.ws), {sshPublicKeys: [KEY]}))
    const err = await provision({workspace: env.ws, config: moved, terraform: env.terraform(), yes: true}).catch((e: unknown) => e)
    expect((err as Error).message).toBe("Not applied: the plan would destroy or replace database-vm, and with it the VM's disks.")
    expect((err as UserError).suggestion).toContain('--allow-replace')
    expect((err as UserError).exitCode).toBe(2)
    // A terminal user pressing Enter at "Apply this plan?" is not an explicit confirmation either.
    let asked = false
    const confirm = async () => (asked = true)
    const prompted = await provision({workspace: env.ws, config: moved, terraform: env.terraform(), yes: false, confirm}).catch((e: unknown) => e)
    expect((prompted as Error).message).toMatch(/^Not applied: the plan would destroy or replace database-vm/)
    expect(asked).toBe(false)
    expect(env.sim.state.vms.has(120)).toBe(true)

    // The VMs' host keys pinned and their steps recorded, as readiness and deploy leave them.
    const blob = Buffer.from(KEY.split(' ')[1], 'base64')
    for (const [name, host] of [['gitlab-vm', '192.168.100.10'], ['database-vm', '192.168.100.20']]) recordHostKey(env.ws.knownHostsFile, {name, host}, blob)
    await updateState(env.ws, (s) => {
      s.steps = {'gitlab-vm': {'base/packages': {inputHash: 'a', finishedAt: '2026-11-30T00:00:00Z'}}, 'database-vm': {'base/packages': {inputHash: 'a', finishedAt: '2026-11-30T00:00:00Z'}}}
    })
    const pinned = await readFile(env.ws.knownHostsFile, 'utf8')
    await provision({workspace: env.ws, config: moved, terraform: env.terraform(), yes: true}).catch(() => undefined)
    expect(await readFile(env.ws.knownHostsFile, 'utf8')).toBe(pinned)

    const done = await provision({workspace: env.ws, config: moved, terraform: env.terraform(), yes: true, allowReplace: true})
    expect(done.plan.resources.map((r) => `${r.action} ${r.address}`)).toContain('replace proxmox_virtual_environment_vm.database')
    expect(env.sim.state.vms.has(120)).toBe(false)
    expect(env.sim.vm(125).config.name).toBe('database-vm')
    // The replaced VM is a new machine: its old host key and step records are gone (readiness
    // records the new key instead of refusing it as changed); the other VMs' stay.
    const kh = await readFile(env.ws.knownHostsFile, 'utf8')
    expect(kh).not.toContain('autolabs:database-vm')
    expect(kh).not.toContain('192.168.100.20')
    expect(kh).toContain('192.168.100.10 ssh-ed25519')
    expect(Object.keys((await loadState(env.ws)).steps ?? {})).toEqual(['gitlab-vm'])
  })

  it('snippet mode: a changed user-data snippet (a new apt proxy) replaces the snippets, never the VMs', async () => {
    env = await setup({cloudInit: {mode: 'snippet'}, network: {aptProxy: 'http://192.168.100.5:3142'}})
    const node = await mkdtemp(path.join(os.tmpdir(), 'autolabs-node-snippets-'))
    dirs.push(node)
    const terraform = env.terraform({FAKE_TF_NODE_SNIPPETS_DIR: node})
    await provision({workspace: env.ws, config: env.config, terraform, yes: true})
    const changed = configSchema.parse({...env.config, network: {...env.config.network, aptProxy: 'http://192.168.100.6:3142'}})
    await writeTerraform(env.ws.terraformDir, await renderTerraform(changed, await loadSecrets(env.ws), {sshPublicKeys: [KEY]}))
    const again = await provision({workspace: env.ws, config: changed, terraform, yes: true})
    expect(again.plan.resources.map((r) => `${r.action} ${r.address}`)).toEqual([
      'replace proxmox_virtual_environment_file.user_data["database"]',
      'replace proxmox_virtual_environment_file.user_data["gitlab"]',
      'replace proxmox_virtual_environment_file.user_data["k8s"]',
    ])
    expect(env.sim.vm(120).config.cicustom).toBe('user=local:snippets/autolabs-database-vm-user-data.yaml')
    expect(await readFile(path.join(node, 'autolabs-database-vm-user-data.yaml'), 'utf8')).toContain('proxy: "http://192.168.100.6:3142"')
  })

  it('a new image (dated URL + checksum) rebuilds the template from it and leaves the VMs alone', async () => {
    env = await setup()
    await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true})
    const newer = 'https://cloud-images.ubuntu.com/releases/jammy/release-20261201/ubuntu-22.04-server-cloudimg-amd64.img'
    const sum = 'd'.repeat(64)
    env.sim.state.downloads.set(newer, {size: 700 * 1024 * 1024, sha256: sum})
    const updated = configSchema.parse({...env.config, image: {...env.config.image, url: newer, checksum: sum}})
    await writeTerraform(env.ws.terraformDir, await renderTerraform(updated, await loadSecrets(env.ws), {sshPublicKeys: [KEY]}))
    env.sim.clearRequests()
    // Rebuilding the template is a replacement like any other: refused unless meant.
    await expect(provision({workspace: env.ws, config: updated, terraform: env.terraform(), yes: true})).rejects.toThrow(/^Not applied: the plan would destroy or replace [\w-]*template,/)
    const done = await provision({workspace: env.ws, config: updated, terraform: env.terraform(), yes: true, rebuildTemplate: true})
    expect(done.plan.resources.map((r) => `${r.action} ${r.address}`)).toEqual(['replace proxmox_download_file.cloud_image', 'replace proxmox_virtual_environment_vm.template'])
    const posts = (p: string) => env!.sim.requests.filter((r) => r.method === 'POST' && r.path === `/api2/json/nodes/pve${p}`) as Array<{params: Record<string, string>}>
    expect(posts('/storage/local/download-url').map((r) => r.params.url)).toEqual([newer])
    // The template is created again, importing the freshly downloaded file.
    expect(posts('/qemu').map((r) => r.params.scsi0)).toEqual([expect.stringContaining('import-from=local:import/jammy-server-cloudimg-amd64-20261201.qcow2')])
    expect(env.sim.vm(9000).config.template).toBe('1')
    for (const vmid of [110, 120, 130]) expect(env.sim.state.vms.has(vmid)).toBe(true)
    expect(env.sim.requests.filter((r) => r.method === 'DELETE' && /qemu\/1[123]0/.test(r.path))).toEqual([])
  })
})

describe('clone.retries, as the pinned provider implements it', () => {
  it('re-sends a clone request, never a clone task that failed: a lock timeout in the task fails the apply', async () => {
    env = await setup()
    env.sim.failNextTask({type: 'qmclone', message: "can't lock file '/var/lock/pve-manager/pve-storage-local-lvm' - got timeout"})
    const err = await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true}).catch((e: unknown) => e)
    expect((err as Error).message).toBe('terraform apply failed (exit 1).')
    const clones = env.sim.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/clone'))
    // One request, although clone.retries is 3: the request succeeded, its task failed.
    expect(clones).toHaveLength(1)
    expect((err as {stderrTail: string}).stderrTail).toContain('got timeout')
  })

  it('is described that way in the configuration and the docs', async () => {
    const {readTerraformAssets} = await import('../../../src/render/terraform.js')
    const assets = Object.values(await readTerraformAssets()).join('\n')
    const docs = await readFile(new URL('../../../docs/terraform.md', import.meta.url), 'utf8')
    for (const text of [assets, docs]) {
      expect(text).not.toMatch(/retries any failed clone|repeating any failed clone|The chain, plus clone\.retries, avoids that/)
    }
    expect(assets).toMatch(/never a clone TASK that\s+#?\s*failed/)
  })
})

describe('the fake terraform evaluates the .tf files themselves', () => {
  it('so a wrong expression in a VM file reaches the VM (and these tests would catch it)', async () => {
    env = await setup()
    const file = path.join(env.ws.terraformDir, 'gitlab-vm.tf')
    const text = await readFile(file, 'utf8')
    await writeFile(file, text.replace('dedicated = var.vms["gitlab"].memory_mib', 'dedicated = var.vms["gitlab"].disk_gib'))
    await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true})
    expect(env.sim.vm(110).config.memory).toBe('100')
    expect(env.sim.vm(120).config.memory).toBe('8192')
  })

  it('and refuses a resource it has no provider model for, instead of guessing', async () => {
    env = await setup()
    await writeFile(path.join(env.ws.terraformDir, 'extra.tf'), 'resource "proxmox_virtual_environment_pool" "lab" {\n  pool_id = "lab"\n}\n')
    const err = await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true}).catch((e: unknown) => e)
    expect((err as Error).message).toBe('terraform plan failed (exit 1).')
    expect((err as {stderrTail: string}).stderrTail).toContain('proxmox_virtual_environment_pool.lab (extra.tf) has no provider model')
  })

  it('and holds the evaluated values against the bpg/proxmox schema: a snippet AND a user in builtin mode is refused at plan', async () => {
    env = await setup()
    const file = path.join(env.ws.terraformDir, 'gitlab-vm.tf')
    const text = await readFile(file, 'utf8')
    // Statically fine (both names exist); only the evaluated builtin-mode values conflict.
    await writeFile(file, text.replace('lookup(local.user_data_file_ids, "gitlab", null)', '"local:snippets/gitlab.yaml"'))
    const err = await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true}).catch((e: unknown) => e)
    expect((err as Error).message).toBe('terraform plan failed (exit 1).')
    expect((err as {stderrTail: string}).stderrTail).toContain('proxmox_virtual_environment_vm.gitlab.initialization: "user_account" conflicts with "user_data_file_id"')
    expect(env.sim.state.vms.size).toBe(0)
  })
})

describe('hand-edited values', () => {
  it('are checked by the validation rules of variables.tf before anything is created', async () => {
    env = await setup()
    const vars = JSON.parse(await readFile(env.ws.tfvarsFile, 'utf8')) as Record<string, unknown>
    await writeFile(env.ws.tfvarsFile, JSON.stringify({...vars, bridge: 'vmbr 0'}))
    const err = await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true}).catch((e: unknown) => e)
    expect((err as {stderrTail: string}).stderrTail).toContain('bridge must be a Linux bridge name such as vmbr0.')
    expect(env.sim.state.vms.size).toBe(0)
  })
})
