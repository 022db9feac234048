import {chmod, mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {configSchema, type ConfigInput} from '../../src/config/schema.js'
import type {ProxmoxClient} from '../../src/proxmox/client.js'
import {type PreflightCheck, runPreflight} from '../../src/steps/preflight.js'
import {clientFor} from '../support/pve-sim/connect.js'
import {missing, REAL_TERRAFORM} from '../support/tools.js'
import {type PveSim, type PveSimOptions, startPveSim} from '../support/pve-sim/index.mjs'

const GiB = 1024 ** 3
let tmp: string
let pubKey: string
let fakeTerraform: string
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'autolabs-preflight-'))
  pubKey = path.join(tmp, 'id_ed25519.pub')
  await writeFile(pubKey, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@ws\n')
  await writeFile(path.join(tmp, 'id_ed25519'), 'not read by preflight\n', {mode: 0o600})
  fakeTerraform = await fakeTf('1.11.4')
})
afterAll(async () => {
  await rm(tmp, {recursive: true, force: true})
})

/** A stand-in `terraform` (or `tofu`) printing `version` like the real one. */
async function fakeTf(version: string, product = 'Terraform'): Promise<string> {
  const file = path.join(tmp, `${product}-${version}`)
  await writeFile(file, `#!/bin/sh\nset -eu\n[ "$1" = version ] && printf '%s v%s\\non linux_amd64\\n' '${product}' '${version}'\n`)
  await chmod(file, 0o755)
  return file
}

interface Run {
  sim?: PveSimOptions
  seed?: (sim: PveSim) => void
  config?: ConfigInput
  enableImport?: boolean | ((s: string) => Promise<boolean>)
  terraformBin?: string
  sshPublicKeyPath?: string
  noClient?: boolean
  auth?: 'bad'
}

/** Run preflight against a fresh simulator (by default: a host where everything passes). */
async function preflight(run: Run = {}) {
  const sim = await startPveSim({authFailureDelayMs: 5, ...run.sim})
  sim.setStorage('local', {content: ['iso', 'vztmpl', 'backup', 'import']})
  run.seed?.(sim)
  const config = configSchema.parse({
    ...run.config,
    // Versions every add-on is tested with, checked on a day they are all supported.
    services: {kubernetes: {version: '1.34'}, ...run.config?.services},
    proxmox: {url: sim.url, fingerprint: sim.fingerprint, node: 'pve', ...run.config?.proxmox},
    ssh: {publicKeyFile: pubKey, ...run.config?.ssh},
  })
  let client: ProxmoxClient | null = null
  if (!run.noClient)
    client = await clientFor(sim, run.auth === 'bad' ? {auth: {type: 'token', tokenId: sim.adminTokenId, secret: '00000000-0000-4000-8000-000000000000'}, readAttempts: 1} : {})
  try {
    const result = await runPreflight({client, config, terraformBin: run.terraformBin ?? fakeTerraform, sshPublicKeyPath: run.sshPublicKeyPath, enableImport: run.enableImport, now: new Date('2026-06-01T00:00:00Z')})
    expect(sim.invalidRequests).toEqual([])
    const check = (id: string): PreflightCheck => {
      const c = result.checks.find((x) => x.id === id)
      if (!c) throw new Error(`no check ${id} in ${result.checks.map((x) => x.id).join(', ')}`)
      return c
    }
    return {result, check, sim}
  } finally {
    await client?.close()
    await sim.stop()
  }
}

describe('preflight on a good host', () => {
  it('passes every check and is ok', async () => {
    const {result} = await preflight()
    expect(result.checks.filter((c) => c.status !== 'pass')).toEqual([])
    expect(result.ok).toBe(true)
    expect(result.checks.map((c) => c.id)).toEqual([
      'pve-version',
      'node',
      'node-cpu',
      'node-memory',
      'vm-storage',
      'image-storage',
      'bridge',
      'vmid-gitlab',
      'vmid-database',
      'vmid-k8s',
      'template-vmid',
      'ip-conflicts',
      'terraform',
      'ssh-key',
      'version-support',
    ])
  })
})

describe('the Proxmox connection', () => {
  it('fails with the reason and the fix when the credentials are wrong, and runs no other Proxmox check', async () => {
    const {result, check} = await preflight({auth: 'bad'})
    expect(check('proxmox-connection')).toMatchObject({status: 'fail', detail: expect.stringContaining('rejected the credentials')})
    expect(check('proxmox-connection').fix).toContain('--proxmox-token-id')
    expect(result.checks.some((c) => c.id === 'node')).toBe(false)
    expect(result.ok).toBe(false)
  })

  it('warns (not fails) when no credentials were given, and still checks the workstation', async () => {
    const {result, check} = await preflight({noClient: true})
    expect(check('proxmox-connection').status).toBe('warn')
    expect(check('terraform').status).toBe('pass')
    expect(result.ok).toBe(true)
  })
})

describe('PVE version', () => {
  it('passes 9.x', async () => {
    expect((await preflight()).check('pve-version')).toMatchObject({status: 'pass', detail: 'PVE 9.1.3'})
  })
  it('warns on 8.4 (supported, end of life)', async () => {
    expect((await preflight({sim: {version: '8.4'}})).check('pve-version')).toMatchObject({status: 'warn', detail: expect.stringContaining('end of life')})
  })
  it('fails before 8.4', async () => {
    const c = (await preflight({sim: {version: '8.4', reportVersion: '8.3.5'}})).check('pve-version')
    expect(c).toMatchObject({status: 'fail', detail: expect.stringContaining('needs 8.4 or newer')})
  })
})

describe('node, CPU and memory', () => {
  it('fails for a node that does not exist, naming the ones that do', async () => {
    const {check, result} = await preflight({config: {proxmox: {node: 'pve2'}}})
    expect(check('node')).toMatchObject({status: 'fail', detail: 'no node "pve2" (the cluster has: pve)'})
    expect(result.checks.some((c) => c.id === 'node-cpu')).toBe(false)
  })
  it('warns when the cores are over-committed (below the design minimum of 12)', async () => {
    expect((await preflight({sim: {cpus: 8}})).check('node-cpu')).toMatchObject({status: 'warn', detail: expect.stringContaining('over-committed')})
  })
  it('fails when one VM has more cores than the host', async () => {
    expect((await preflight({sim: {cpus: 2}})).check('node-cpu').status).toBe('fail')
  })
  it('fails when free memory is below what the three VMs need', async () => {
    const c = (await preflight({sim: {memoryGiB: 16}})).check('node-memory')
    expect(c).toMatchObject({status: 'fail', detail: '12 GiB free of 16 GiB; the VMs still to create need 24 GiB (design minimum 16 GiB)'})
  })
  it('warns when the host is below the design minimum of 16 GB but the (smaller) VMs fit', async () => {
    const small = {cores: 2, memoryMiB: 1024, diskGiB: 20}
    const c = (await preflight({sim: {memoryGiB: 12}, config: {vms: {gitlab: small, database: small, k8s: small}}})).check('node-memory')
    expect(c.status).toBe('warn')
  })
  it('does not count the memory of VMs an earlier autolabs run already created', async () => {
    const c = (
      await preflight({
        sim: {memoryGiB: 20},
        seed: (sim) => {
          sim.addVm(110, {name: 'gitlab-vm', config: {tags: 'autolabs', memory: '8192'}, status: 'running'})
          sim.setNode({mem: 4 * GiB})
        },
      })
    ).check('node-memory')
    expect(c).toMatchObject({status: 'pass', detail: expect.stringContaining('need 16 GiB')})
  })
})

describe('VM storage', () => {
  it('fails when it does not exist', async () => {
    expect((await preflight({config: {proxmox: {vmStorage: 'fast-ssd'}}})).check('vm-storage')).toMatchObject({status: 'fail', detail: expect.stringContaining('no storage "fast-ssd"')})
  })
  it('fails when it cannot hold VM disks', async () => {
    expect((await preflight({config: {proxmox: {vmStorage: 'local'}}})).check('vm-storage')).toMatchObject({status: 'fail', detail: expect.stringContaining('not VM disks')})
  })
  it('fails when a (thick) storage has less free space than the disks', async () => {
    const seed = (sim: PveSim) => sim.setStorage('data', {type: 'dir', content: ['images'], total: 400 * GiB, used: 100 * GiB})
    const c = (await preflight({seed, config: {proxmox: {vmStorage: 'data'}}})).check('vm-storage')
    expect(c).toMatchObject({status: 'fail', detail: '300 GiB free; the VMs still to create need 500 GiB'})
  })
  it('only warns for a thin pool, which fills as the VMs write', async () => {
    const seed = (sim: PveSim) => sim.setStorage('local-lvm', {total: 300 * GiB, used: 100 * GiB})
    expect((await preflight({seed})).check('vm-storage')).toMatchObject({status: 'warn', detail: expect.stringContaining('thin-provisioned')})
  })
})

describe('image storage (content "import")', () => {
  const withoutImport = (sim: PveSim) => sim.setStorage('local', {content: ['iso', 'vztmpl', 'backup']})
  it('fails without "import", with the pvesm command and the flag that fix it', async () => {
    const c = (await preflight({seed: withoutImport})).check('image-storage')
    expect(c.status).toBe('fail')
    expect(c.fix).toContain('autolabs preflight --enable-import')
    expect(c.fix).toContain('pvesm set local --content backup,iso,vztmpl,import')
  })
  it('enables it when allowed, and passes', async () => {
    const {check, sim} = await preflight({seed: withoutImport, enableImport: true})
    expect(check('image-storage')).toMatchObject({status: 'pass', detail: 'content type "import" enabled now'})
    expect([...sim.state.storages.get('local')!.content].sort()).toEqual(['backup', 'import', 'iso', 'vztmpl'])
  })
  it('asks through the callback and fails when the answer is no', async () => {
    const asked: string[] = []
    const c = (await preflight({seed: withoutImport, enableImport: async (s) => (asked.push(s), false)})).check('image-storage')
    expect(asked).toEqual(['local'])
    expect(c.status).toBe('fail')
  })
  it('fails when the storage does not exist', async () => {
    expect((await preflight({config: {proxmox: {imageStorage: 'nas'}}})).check('image-storage').status).toBe('fail')
  })
})

describe('bridge', () => {
  it('fails for a missing bridge, listing the existing ones', async () => {
    expect((await preflight({config: {proxmox: {bridge: 'vmbr9'}}})).check('bridge')).toMatchObject({status: 'fail', detail: 'no bridge "vmbr9" on pve (has: vmbr0)'})
  })
  it('warns for an inactive bridge', async () => {
    const seed = (sim: PveSim) => sim.state.network.push({iface: 'vmbr1', type: 'bridge', active: 0, autostart: 1})
    expect((await preflight({seed, config: {proxmox: {bridge: 'vmbr1'}}})).check('bridge').status).toBe('warn')
  })
})

describe('VMIDs and the template slot', () => {
  it("fails when a planned VMID belongs to somebody else's VM", async () => {
    const c = (await preflight({seed: (sim) => sim.addVm(120, {name: 'payroll'})})).check('vmid-database')
    expect(c).toMatchObject({status: 'fail', detail: 'taken by "payroll", not created by autolabs'})
    expect(c.fix).toContain('vms.database.vmid')
  })
  it('passes when the VMID holds the VM an earlier autolabs run created', async () => {
    const c = (await preflight({seed: (sim) => sim.addVm(130, {name: 'k8s-vm', config: {tags: 'autolabs;k8s'}})})).check('vmid-k8s')
    expect(c).toMatchObject({status: 'pass', detail: expect.stringContaining('earlier autolabs run')})
  })
  it('passes when 9000 already holds the autolabs template', async () => {
    const c = (await preflight({seed: (sim) => sim.addVm(9000, {name: 'ubuntu-22.04-autolabs', template: true, config: {description: 'Made by autolabs'}})})).check('template-vmid')
    expect(c.status).toBe('pass')
  })
  it('fails when 9000 holds a foreign template', async () => {
    const c = (await preflight({seed: (sim) => sim.addVm(9000, {name: 'debian-golden', template: true})})).check('template-vmid')
    expect(c).toMatchObject({status: 'fail', detail: 'taken by "debian-golden" (a template not made by autolabs)'})
    expect(c.fix).toContain('proxmox.templateVmid')
  })
  it('warns when 9000 holds an autolabs VM that was never converted to a template', async () => {
    const c = (await preflight({seed: (sim) => sim.addVm(9000, {name: 'tpl', config: {tags: 'autolabs'}})})).check('template-vmid')
    expect(c.status).toBe('warn')
  })
})

describe('planned IPs', () => {
  it("fails when another VM's cloud-init already uses a planned IP, naming the VM", async () => {
    const c = (await preflight({seed: (sim) => sim.addVm(300, {name: 'old-gitlab', config: {ipconfig0: 'ip=192.168.100.10/24,gw=192.168.100.1'}})})).check('ip-conflicts')
    expect(c).toMatchObject({status: 'fail', detail: '192.168.100.10 (gitlab-vm) is already used by VM 300 "old-gitlab" (ipconfig0)'})
  })
  it('passes when the address is held by the same autolabs VM under its old VMID (Terraform replaces it; --allow-replace decides)', async () => {
    const seed = (sim: PveSim) => sim.addVm(125, {name: 'database-vm', config: {tags: 'autolabs;database', ipconfig0: 'ip=192.168.100.20/24,gw=192.168.100.1'}})
    expect((await preflight({seed})).check('ip-conflicts')).toMatchObject({status: 'pass', detail: expect.stringContaining('192.168.100.20 is held by database-vm under its old VMID 125, which Terraform replaces')})
    // Another environment's VM of another name on that address is still a conflict.
    const other = (sim: PveSim) => sim.addVm(125, {name: 'db-old', config: {tags: 'autolabs;database', ipconfig0: 'ip=192.168.100.20/24'}})
    expect((await preflight({seed: other})).check('ip-conflicts')).toMatchObject({status: 'fail', detail: '192.168.100.20 (database-vm) is already used by VM 125 "db-old" (ipconfig0)'})
  })
  it('ignores other VMs on other addresses or DHCP', async () => {
    const seed = (sim: PveSim) => {
      sim.addVm(301, {name: 'a', config: {ipconfig0: 'ip=192.168.100.50/24'}})
      sim.addVm(302, {name: 'b', config: {ipconfig0: 'ip=dhcp'}})
    }
    expect((await preflight({seed})).check('ip-conflicts').status).toBe('pass')
  })
})

describe('workstation', () => {
  it.skipIf(missing('terraform or tofu', Boolean(REAL_TERRAFORM)))('passes with the real Terraform (or OpenTofu) installed here, naming which and its version', async () => {
    const c = (await preflight({terraformBin: REAL_TERRAFORM, noClient: true})).check('terraform')
    expect(c).toMatchObject({status: 'pass', detail: expect.stringMatching(new RegExp(`^(Terraform|OpenTofu) \\d+\\.\\d+\\.\\d+ \\(${REAL_TERRAFORM}\\)$`))})
  })
  it('fails for terraform older than 1.5', async () => {
    const bin = await fakeTf('1.4.7')
    const c = (await preflight({terraformBin: bin, noClient: true})).check('terraform')
    expect(c).toMatchObject({status: 'fail', detail: `Terraform 1.4.7 (\`${bin}\`) is too old: autolabs needs 1.5.0 or newer.`})
  })
  it('reports OpenTofu by name and version, and refuses one older than 1.6', async () => {
    const tofu = await fakeTf('1.10.10', 'OpenTofu')
    expect((await preflight({terraformBin: tofu, noClient: true})).check('terraform')).toMatchObject({status: 'pass', title: 'OpenTofu', detail: `OpenTofu 1.10.10 (${tofu})`})
    const old = await fakeTf('1.5.7', 'OpenTofu')
    expect((await preflight({terraformBin: old, noClient: true})).check('terraform')).toMatchObject({status: 'fail', detail: expect.stringContaining('OpenTofu 1.5.7')})
  })
  it('fails when terraform is not on PATH, with the install link', async () => {
    const c = (await preflight({terraformBin: path.join(tmp, 'no-such-terraform'), noClient: true})).check('terraform')
    expect(c.status).toBe('fail')
    expect(c.fix).toContain('developer.hashicorp.com/terraform/install')
  })
  it('fails when the SSH public key is missing, with the ssh-keygen command', async () => {
    const c = (await preflight({sshPublicKeyPath: path.join(tmp, 'id_missing.pub'), noClient: true})).check('ssh-key')
    expect(c).toMatchObject({status: 'fail', fix: expect.stringContaining('ssh-keygen -t ed25519')})
  })
  it('fails when the file is not a public key', async () => {
    const bad = path.join(tmp, 'bad.pub')
    await writeFile(bad, '-----BEGIN OPENSSH PRIVATE KEY-----\n')
    expect((await preflight({sshPublicKeyPath: bad, noClient: true})).check('ssh-key').status).toBe('fail')
  })
  it('warns when the private key next to it is missing', async () => {
    const lonely = path.join(tmp, 'lonely.pub')
    await writeFile(lonely, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x\n')
    expect((await preflight({sshPublicKeyPath: lonely, noClient: true})).check('ssh-key').status).toBe('warn')
  })
})
