import {readFile} from 'node:fs/promises'
import {afterEach, describe, expect, it} from 'vitest'

import {ensureTerraformAccess, storageRolePrivileges, TERRAFORM_PRIVILEGES, terraformPrivileges} from '../../../src/proxmox/access.js'
import {ProxmoxClient} from '../../../src/proxmox/client.js'
import {ProxmoxPermissionError} from '../../../src/proxmox/errors.js'
import {clientFor} from '../../support/pve-sim/connect.js'
import {type PveSim, startPveSim} from '../../support/pve-sim/index.mjs'

const sims: PveSim[] = []
const clients: ProxmoxClient[] = []
async function setup(version: '9.1' | '8.4') {
  const sim = await startPveSim({version, taskDurationMs: 5, authFailureDelayMs: 5})
  sims.push(sim)
  sim.setStorage('local', {content: ['iso', 'vztmpl', 'backup', 'import']})
  const admin = await clientFor(sim)
  clients.push(admin)
  return {sim, admin}
}
async function tokenClient(sim: PveSim, tokenId: string, secret: string) {
  const c = await clientFor(sim, {auth: {type: 'token', tokenId, secret}, readAttempts: 1})
  clients.push(c)
  return c
}
afterEach(async () => {
  for (const s of sims) expect(s.invalidRequests).toEqual([])
  await Promise.all(clients.splice(0).map((c) => c.close()))
  await Promise.all(sims.splice(0).map((s) => s.stop()))
})

/**
 * The API calls bpg/proxmox makes for autolabs' Terraform (download the image, build the
 * template, clone, configure cloud-init, start, read the agent's IPs, destroy), in the order
 * it makes them, with the parameters autolabs' HCL produces.
 */
async function terraformLikeFlow(c: ProxmoxClient, major: number) {
  const node = 'pve'
  const dl = await c.request<string>('POST', `/nodes/${node}/storage/local/download-url`, {
    url: 'https://cloud-images.ubuntu.com/jammy/current/jammy-server-cloudimg-amd64.img',
    content: 'import',
    filename: 'jammy-server-cloudimg-amd64.qcow2',
    checksum: 'a'.repeat(64),
    'checksum-algorithm': 'sha256',
  })
  await c.waitForTask(dl)
  await c.storageContent(node, 'local', 'import')
  const create = await c.request<string>('POST', `/nodes/${node}/qemu`, {
    vmid: 9000,
    name: 'autolabs-template',
    tags: 'autolabs',
    scsihw: 'virtio-scsi-single',
    scsi0: 'local-lvm:0,import-from=local:import/jammy-server-cloudimg-amd64.qcow2,discard=on',
    ide2: 'local-lvm:cloudinit',
    net0: 'virtio,bridge=vmbr0',
    serial0: 'socket',
    agent: 'enabled=1',
    cores: 2,
    memory: '2048',
  })
  await c.waitForTask(create)
  await c.waitForTask(await c.request<string>('POST', `/nodes/${node}/qemu/9000/template`))
  await c.waitForTask(await c.request<string>('POST', `/nodes/${node}/qemu/9000/clone`, {newid: 110, name: 'gitlab-vm', full: true, storage: 'local-lvm'}))
  await c.request('PUT', `/nodes/${node}/qemu/110/config`, {
    cores: 4,
    memory: '8192',
    ciuser: 'ubuntu',
    sshkeys: encodeURIComponent('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin'),
    ipconfig0: 'ip=192.168.100.10/24,gw=192.168.100.1',
    nameserver: '1.1.1.1',
    description: 'autolabs gitlab-vm',
  })
  await c.vmConfig(node, 110)
  await c.startVm(node, 110)
  await c.vmStatus(node, 110)
  await c.agentNetworkInterfaces(node, 110)
  await c.stopVm(node, 110)
  await c.waitForTask(await c.request<string>('DELETE', `/nodes/${node}/qemu/110`))
  return major
}

describe('ensureTerraformAccess', () => {
  it('creates the user, the role with exactly the PVE 9 privileges, a privsep token and both ACLs', async () => {
    const {sim, admin} = await setup('9.1')
    const r = await ensureTerraformAccess(admin, {pveMajor: 9})
    expect(r.tokenId).toBe('autolabs@pve!terraform')
    expect(r.secret).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/)
    expect(r.changes).toEqual([
      'created user autolabs@pve',
      'created role AutolabsTerraform (18 privileges)',
      'created token autolabs@pve!terraform (privilege separation on)',
      'granted AutolabsTerraform on / to autolabs@pve',
      'granted AutolabsTerraform on / to autolabs@pve!terraform',
    ])
    expect([...sim.state.roles.get('AutolabsTerraform')!.privs].sort()).toEqual(terraformPrivileges(9))
    expect(sim.state.users.get('autolabs@pve')!.tokens.get('terraform')!.privsep).toBe(1)
    expect(await admin.permissions('/', 'autolabs@pve!terraform')).toEqual(terraformPrivileges(9))
  })

  it('changes nothing and returns no secret when run again', async () => {
    const {sim, admin} = await setup('9.1')
    await ensureTerraformAccess(admin, {pveMajor: 9})
    const stateBefore = JSON.stringify({acl: sim.state.acl, roles: [...sim.state.roles.get('AutolabsTerraform')!.privs]})
    sim.clearRequests()
    const again = await ensureTerraformAccess(admin, {pveMajor: 9})
    expect(again.changes).toEqual([])
    expect(again.secret).toBeUndefined()
    expect(sim.requests.filter((q) => q.method !== 'GET')).toEqual([])
    expect(JSON.stringify({acl: sim.state.acl, roles: [...sim.state.roles.get('AutolabsTerraform')!.privs]})).toBe(stateBefore)
  })

  it('repairs a role whose privileges drifted', async () => {
    const {admin} = await setup('9.1')
    await ensureTerraformAccess(admin, {pveMajor: 9})
    await admin.setRolePrivileges('AutolabsTerraform', ['VM.Audit', 'Sys.Modify'])
    const r = await ensureTerraformAccess(admin, {pveMajor: 9})
    expect(r.changes).toHaveLength(1)
    expect(r.changes[0]).toMatch(/^updated role AutolabsTerraform \+.* -Sys\.Modify$/)
    expect((await admin.roles()).find((x) => x.roleid === 'AutolabsTerraform')!.privs.sort()).toEqual(terraformPrivileges(9))
  })

  it('rotates a token whose secret is lost only when asked, re-granting its ACL', async () => {
    const {sim, admin} = await setup('9.1')
    const first = await ensureTerraformAccess(admin, {pveMajor: 9})
    const rotated = await ensureTerraformAccess(admin, {pveMajor: 9, rotateToken: true})
    expect(rotated.secret).toBeDefined()
    expect(rotated.secret).not.toBe(first.secret)
    expect(rotated.changes).toEqual([
      'deleted token autolabs@pve!terraform (rotation)',
      'created token autolabs@pve!terraform (privilege separation on)',
      'granted AutolabsTerraform on / to autolabs@pve!terraform',
    ])
    const old = await tokenClient(sim, rotated.tokenId, first.secret!)
    await expect(old.version()).rejects.toThrow(/rejected the credentials/)
    const fresh = await tokenClient(sim, rotated.tokenId, rotated.secret!)
    expect((await fresh.version()).major).toBe(9)
  })

  it('gives PVE 8 VM.Monitor and PVE 9 VM.GuestAgent.Audit instead', () => {
    expect(terraformPrivileges(8)).toContain('VM.Monitor')
    expect(terraformPrivileges(8)).not.toContain('VM.GuestAgent.Audit')
    expect(terraformPrivileges(9)).toContain('VM.GuestAgent.Audit')
    expect(terraformPrivileges(9)).not.toContain('VM.Monitor')
    expect(terraformPrivileges(8).filter((p) => p !== 'VM.Monitor')).toEqual(terraformPrivileges(9).filter((p) => p !== 'VM.GuestAgent.Audit'))
    expect(terraformPrivileges(10)).toEqual(terraformPrivileges(9))
  })

  it('creates the PVE 8 role on PVE 8.4 (the simulator validates the privilege names per version)', async () => {
    const {sim, admin} = await setup('8.4')
    await ensureTerraformAccess(admin, {pveMajor: 8})
    expect(sim.state.roles.get('AutolabsTerraform')!.privs.has('VM.Monitor')).toBe(true)
  })
})

describe.each([
  ['9.1', 9],
  ['8.4', 8],
] as const)('the Terraform token on PVE %s', (version, major) => {
  it('can do everything the provider does for autolabs', async () => {
    const {sim, admin} = await setup(version)
    const access = await ensureTerraformAccess(admin, {pveMajor: major})
    const tf = await tokenClient(sim, access.tokenId, access.secret!)
    await terraformLikeFlow(tf, major)
    expect(sim.requests.filter((r) => r.auth === access.tokenId && r.status === 403)).toEqual([])
  })

  it('cannot administer Proxmox: no users, storage configuration or backup jobs', async () => {
    const {sim, admin} = await setup(version)
    const access = await ensureTerraformAccess(admin, {pveMajor: major})
    const tf = await tokenClient(sim, access.tokenId, access.secret!)
    await expect(tf.createUser('evil@pve')).rejects.toBeInstanceOf(ProxmoxPermissionError)
    await expect(tf.enableStorageContent('local', 'snippets')).rejects.toBeInstanceOf(ProxmoxPermissionError)
    await expect(tf.upsertBackupJob({id: 'x1', schedule: '02:00', storage: 'local', vmids: [110]})).rejects.toBeInstanceOf(ProxmoxPermissionError)
  })
})

/**
 * What the provider adds for snippets and file replacement (proxmoxtf/resource/file.go and
 * fwprovider/nodes/resource_download_file.go at the pinned tag): fileCreate reads the snippet
 * storage (GET /storage/{storage}, for its path) before the SSH upload; replacing or destroying
 * the downloaded image, or a snippet, deletes the volume through the API.
 */
async function fileReplacementFlow(c: ProxmoxClient) {
  await c.storageContent('pve', 'local', 'snippets')
  await c.request('GET', '/storage/local')
  const dl = await c.request<string>('POST', '/nodes/pve/storage/local/download-url', {
    url: 'https://cloud-images.ubuntu.com/releases/jammy/release-20261120/ubuntu-22.04-server-cloudimg-amd64.img',
    content: 'import',
    filename: 'jammy-server-cloudimg-amd64.qcow2',
  })
  await c.waitForTask(dl)
  await c.waitForTask(await c.request<string>('DELETE', `/nodes/pve/storage/local/content/${encodeURIComponent('local:import/jammy-server-cloudimg-amd64.qcow2')}`))
}

describe('the storages Terraform writes files to (snippet mode, image replacement)', () => {
  it('without a grant on the storage the token cannot read the snippet storage: Datastore.Allocate', async () => {
    const {sim, admin} = await setup('9.1')
    sim.setStorage('local', {content: ['iso', 'vztmpl', 'backup', 'import', 'snippets']})
    const access = await ensureTerraformAccess(admin, {pveMajor: 9})
    const tf = await tokenClient(sim, access.tokenId, access.secret!)
    const err = await fileReplacementFlow(tf).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ProxmoxPermissionError)
    expect((err as ProxmoxPermissionError).privilege).toContain('Datastore.Allocate')
  })

  it.each([
    ['9.1', 9],
    ['8.4', 8],
  ] as const)('on PVE %s the storage role on /storage/<id> lets it, and nothing more', async (version, major) => {
    const {sim, admin} = await setup(version)
    sim.setStorage('local', {content: ['iso', 'vztmpl', 'backup', 'import', 'snippets']})
    const access = await ensureTerraformAccess(admin, {pveMajor: major, storages: ['local']})
    expect(access.changes).toContain('granted AutolabsTerraformStorage on /storage/local to autolabs@pve!terraform')
    expect([...sim.state.roles.get('AutolabsTerraformStorage')!.privs].sort()).toEqual(storageRolePrivileges(major))
    const tf = await tokenClient(sim, access.tokenId, access.secret!)
    await fileReplacementFlow(tf)
    // The whole provider flow still works with the deeper ACL on the image storage.
    await terraformLikeFlow(tf, major)
    expect(sim.requests.filter((r) => r.auth === access.tokenId && r.status === 403)).toEqual([])
    // Datastore.Allocate on /storage/local does not reach /storage: no configuration changes.
    await expect(tf.enableStorageContent('local', 'rootdir')).rejects.toBeInstanceOf(ProxmoxPermissionError)
    expect(await admin.permissions('/storage/local-lvm', 'autolabs@pve!terraform')).not.toContain('Datastore.Allocate')
    // Idempotent.
    expect((await ensureTerraformAccess(admin, {pveMajor: major, storages: ['local']})).changes).toEqual([])
  })
})

describe('every privilege in the role is needed', () => {
  // Leave one privilege out at a time: the provider's flow must then fail with a 403 naming it.
  it.each(terraformPrivileges(9))('without %s the flow fails on it', async (priv) => {
    const {sim, admin} = await setup('9.1')
    const access = await ensureTerraformAccess(admin, {pveMajor: 9})
    await admin.setRolePrivileges('AutolabsTerraform', terraformPrivileges(9).filter((p) => p !== priv))
    const tf = await tokenClient(sim, access.tokenId, access.secret!)
    const err = await terraformLikeFlow(tf, 9).then(
      () => undefined,
      (e: unknown) => e,
    )
    if (priv === 'Sys.Audit') {
      // Not exercised by the simulated flow (bpg reads node status and other users' tasks with
      // it); kept on the documented reason. The test pins that exception explicitly.
      expect(err).toBeUndefined()
      return
    }
    expect(err).toBeInstanceOf(ProxmoxPermissionError)
    expect((err as ProxmoxPermissionError).privilege).toContain(priv)
  })

  it('documents a reason for each privilege, in the code and in docs/proxmox.md', async () => {
    const doc = await readFile(new URL('../../../docs/proxmox.md', import.meta.url), 'utf8')
    for (const p of TERRAFORM_PRIVILEGES) {
      expect(p.why.length).toBeGreaterThan(5)
      expect(doc).toContain(`\`${p.priv}\``)
    }
  })
})
