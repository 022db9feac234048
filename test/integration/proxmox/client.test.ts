import https from 'node:https'
import net from 'node:net'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'

import {ProxmoxClient} from '../../../src/proxmox/client.js'
import {
  ProxmoxAuthError,
  ProxmoxNotImplementedError,
  ProxmoxParameterError,
  ProxmoxPermissionError,
  ProxmoxServerError,
  ProxmoxTaskError,
  ProxmoxTaskTimeoutError,
  ProxmoxUnreachableError,
} from '../../../src/proxmox/errors.js'
import {clientFor} from '../../support/pve-sim/connect.js'
import {type PveSim, startPveSim} from '../../support/pve-sim/index.mjs'

const GiB = 1024 ** 3

let sim: PveSim
let client: ProxmoxClient
beforeAll(async () => {
  sim = await startPveSim({version: '9.1', authFailureDelayMs: 10, taskDurationMs: 10})
  client = await clientFor(sim)
})
afterEach(() => {
  // The whole point of the simulator: autolabs never sends a request the real API would reject.
  expect(sim.invalidRequests).toEqual([])
})
afterAll(async () => {
  await client.close()
  await sim.stop()
})

describe('ProxmoxClient reads', () => {
  it('reads the version with major and minor as numbers', async () => {
    expect(await client.version()).toEqual({version: '9.1.3', release: '9.1', major: 9, minor: 1, patch: 3})
  })

  it('lists nodes and reads a node status (CPUs, memory, PVE version)', async () => {
    const nodes = await client.nodes()
    expect(nodes).toEqual([expect.objectContaining({node: 'pve', status: 'online', maxcpu: 16})])
    const s = await client.nodeStatus('pve')
    expect(s).toMatchObject({cpus: 16, memTotal: 64 * GiB, memUsed: 4 * GiB, memFree: 60 * GiB})
    expect(s.pveVersion).toMatch(/^pve-manager\/9\.1\.3\//)
  })

  it('lists storages with content types and free space, and filters by content', async () => {
    const all = await client.storages('pve')
    expect(all.map((s) => s.storage)).toEqual(['local', 'local-lvm'])
    const lvm = all.find((s) => s.storage === 'local-lvm')!
    expect(lvm).toMatchObject({type: 'lvmthin', content: ['images', 'rootdir'], total: 800 * GiB, used: 20 * GiB, avail: 780 * GiB})
    expect((await client.storages('pve', {content: 'images'})).map((s) => s.storage)).toEqual(['local-lvm'])
    expect((await client.storageStatus('pve', 'local')).avail).toBe(90 * GiB)
  })

  it('lists bridges only (not physical NICs)', async () => {
    expect(await client.bridges('pve')).toEqual([expect.objectContaining({iface: 'vmbr0', type: 'bridge', active: true, cidr: '10.0.0.2/24', ports: 'eno1'})])
  })

  it('lists VMs with their configs, reads status and config', async () => {
    sim.addVm(200, {name: 'other', status: 'running', config: {ipconfig0: 'ip=192.168.100.99/24,gw=192.168.100.1', memory: '4096', cores: '2'}})
    const vms = await client.listVms('pve', {withConfig: true})
    const vm = vms.find((v) => v.vmid === 200)!
    expect(vm).toMatchObject({name: 'other', status: 'running', template: false, tags: []})
    expect(vm.config?.ipconfig0).toBe('ip=192.168.100.99/24,gw=192.168.100.1')
    expect(vm.config).not.toHaveProperty('digest')
    const st = await client.vmStatus('pve', 200)
    expect(st).toMatchObject({vmid: 200, status: 'running', cpus: 2, maxmem: 4096 * 1024 * 1024})
    expect(st.uptime).toBeGreaterThanOrEqual(0)
    expect((await client.vmConfig('pve', 200)).memory).toBe('4096')
  })

  it('reads cluster resources and the next free VMID', async () => {
    const res = await client.clusterResources('vm')
    expect(res.some((r) => r.id === 'qemu/200')).toBe(true)
    expect(await client.nextId()).toBe(100)
  })
})

describe('ProxmoxClient writes and tasks', () => {
  it('creates, lists, rolls back and deletes snapshots, returning after each task', async () => {
    sim.addVm(210, {name: 'snap', status: 'running'})
    await client.createSnapshot('pve', 210, 'before-upgrade', {description: 'autolabs backup'})
    expect(await client.listSnapshots('pve', 210)).toEqual([expect.objectContaining({name: 'before-upgrade', description: 'autolabs backup', vmstate: false})])
    await client.rollbackSnapshot('pve', 210, 'before-upgrade')
    expect(sim.vm(210).status).toBe('stopped')
    await client.deleteSnapshot('pve', 210, 'before-upgrade')
    expect(await client.listSnapshots('pve', 210)).toEqual([])
  })

  it('starts, shuts down and stops VMs', async () => {
    sim.addVm(211, {name: 'power'})
    await client.startVm('pve', 211)
    expect(sim.vm(211).status).toBe('running')
    await client.shutdownVm('pve', 211)
    expect(sim.vm(211).status).toBe('stopped')
    await client.startVm('pve', 211)
    await client.stopVm('pve', 211)
    expect(sim.vm(211).status).toBe('stopped')
  })

  it('creates, updates (only when changed) and deletes a backup job', async () => {
    const spec = {id: 'autolabs-daily', schedule: '02:00', storage: 'local', vmids: [110, 120, 130], prune: {daily: 7, weekly: 4}, comment: 'autolabs'}
    expect(await client.upsertBackupJob(spec)).toBe('created')
    expect(await client.upsertBackupJob(spec)).toBe('unchanged')
    expect(await client.upsertBackupJob({...spec, schedule: '03:30'})).toBe('updated')
    const [job] = await client.listBackupJobs()
    expect(job).toMatchObject({id: 'autolabs-daily', schedule: '03:30', storage: 'local', vmids: [110, 120, 130], mode: 'snapshot', enabled: true, pruneBackups: 'keep-daily=7,keep-weekly=4'})
    await client.deleteBackupJob('autolabs-daily')
    expect(await client.listBackupJobs()).toEqual([])
  })

  it('enables a storage content type once and reports when it was already there', async () => {
    expect(await client.enableStorageContent('local', 'import')).toBe(true)
    expect(sim.state.storages.get('local')!.content.has('import')).toBe(true)
    expect(await client.enableStorageContent('local', 'import')).toBe(false)
    await expect(client.enableStorageContent('local-lvm', 'import')).rejects.toThrow(/does not support content type 'import'/)
  })

  it('reads a file through the guest agent, and gives null when there is no agent or it is not running', async () => {
    sim.addVm(212, {name: 'agent', status: 'running', config: {agent: 'enabled=1'}})
    sim.setAgentFile(212, '/etc/ssh/ssh_host_ed25519_key.pub', 'ssh-ed25519 AAAAC3Nza... root@vm\n')
    expect(await client.agentFileRead('pve', 212, '/etc/ssh/ssh_host_ed25519_key.pub')).toBe('ssh-ed25519 AAAAC3Nza... root@vm\n')
    sim.setAgentRunning(212, false)
    expect(await client.agentFileRead('pve', 212, '/etc/ssh/ssh_host_ed25519_key.pub')).toBeNull()
    sim.addVm(213, {name: 'noagent', status: 'running'})
    expect(await client.agentFileRead('pve', 213, '/etc/hostname')).toBeNull()
    sim.setAgentRunning(212, true)
    await expect(client.agentFileRead('pve', 212, '/nope')).rejects.toThrow(/No such file/)
    expect(await client.agentNetworkInterfaces('pve', 212)).toEqual(expect.arrayContaining([{name: 'lo', ips: ['127.0.0.1']}]))
  })

  it('waits for a slow task, reporting progress', async () => {
    sim.addVm(214, {name: 'slow'})
    sim.setTaskDuration(900)
    const seen: string[] = []
    const upid = await client.request<string>('POST', '/nodes/pve/qemu/214/status/start')
    const done = await client.waitForTask(upid, {onProgress: (s) => seen.push(s.status)})
    sim.setTaskDuration(10)
    expect(done.exitstatus).toBe('OK')
    expect(seen[0]).toBe('running')
    expect(seen.at(-1)).toBe('stopped')
  })

  it('gives up on a task after the timeout with the UPID in the message', async () => {
    sim.addVm(215, {name: 'stuck'})
    sim.setTaskDuration(5000)
    const upid = await client.request<string>('POST', '/nodes/pve/qemu/215/status/start')
    const err = await client.waitForTask(upid, {timeoutMs: 600}).catch((e) => e)
    sim.setTaskDuration(10)
    expect(err).toBeInstanceOf(ProxmoxTaskTimeoutError)
    expect(err.suggestion).toContain(upid)
  })

  it("turns a failed task into an error carrying the exit status and the log's tail", async () => {
    sim.addVm(216, {name: 'failing', status: 'running'})
    sim.failNextTask({type: 'qmsnapshot', message: "VM 216 qmp command 'savevm-start' failed - unable to save state", log: ['saving VM state and RAM', 'snapshot failed: unable to save state']})
    const err = await client.createSnapshot('pve', 216, 'x1').catch((e) => e)
    expect(err).toBeInstanceOf(ProxmoxTaskError)
    expect(err.exitstatus).toBe("VM 216 qmp command 'savevm-start' failed - unable to save state")
    expect(err.logTail).toEqual(['saving VM state and RAM', 'snapshot failed: unable to save state', "TASK ERROR: VM 216 qmp command 'savevm-start' failed - unable to save state"])
    expect(err.message).toContain('snapshot failed: unable to save state')
  })
})

describe('ProxmoxClient errors', () => {
  it('maps a locked VM (500) to a server error with the reason and how to unlock', async () => {
    sim.addVm(220, {name: 'locked'})
    sim.lockVm(220, 'clone')
    const err = await client.createSnapshot('pve', 220, 'x1').catch((e) => e)
    expect(err).toBeInstanceOf(ProxmoxServerError)
    expect(err.status).toBe(500)
    expect(err.reason).toBe('VM is locked (clone)')
    expect(err.suggestion).toContain('qm unlock')
  })

  it('retries a GET through transient 500s but never re-sends a POST', async () => {
    sim.clearRequests()
    sim.failNext(2, 'temporary failure')
    expect((await client.version()).major).toBe(9)
    expect(sim.requests.filter((r) => r.path === '/api2/json/version')).toHaveLength(3)

    sim.addVm(221, {name: 'once'})
    sim.clearRequests()
    sim.failNext(1, 'temporary failure')
    await expect(client.createSnapshot('pve', 221, 'once')).rejects.toBeInstanceOf(ProxmoxServerError)
    expect(sim.requests.filter((r) => r.method === 'POST')).toHaveLength(1)
  })

  it('maps 401 to an authentication error naming the token', async () => {
    const bad = await clientFor(sim, {auth: {type: 'token', tokenId: 'root@pam!autolabs', secret: '00000000-0000-4000-8000-000000000000'}})
    const err = await bad.version().catch((e) => e)
    await bad.close()
    expect(err).toBeInstanceOf(ProxmoxAuthError)
    expect(err.status).toBe(401)
    expect(err.message).toContain('root@pam!autolabs')
    expect(err.message).not.toContain('00000000-0000-4000-8000-000000000000')
  })

  it('maps 403 to the missing privilege and ACL path', async () => {
    await client.createUser('limited@pve')
    const {secret} = await client.createToken('limited@pve', 'ro')
    const limited = await clientFor(sim, {auth: {type: 'token', tokenId: 'limited@pve!ro', secret}})
    sim.addVm(222, {name: 'private'})
    const err = await limited.vmConfig('pve', 222).catch((e) => e)
    await limited.close()
    expect(err).toBeInstanceOf(ProxmoxPermissionError)
    expect(err.privilege).toBe('VM.Audit')
    expect(err.aclPath).toBe('/vms/222')
    expect(err.message).toBe('limited@pve!ro lacks the privilege VM.Audit on /vms/222 (needed for GET /nodes/pve/qemu/222/config).')
  })

  it('maps 501 to "this PVE version lacks the endpoint" with the version needed', async () => {
    const old = await startPveSim({version: '8.4'})
    const c = await clientFor(old)
    await c.version()
    // An endpoint only PVE 9 has: SDN fabrics.
    const err = (await c.request('GET', '/cluster/sdn/fabrics').catch((e: unknown) => e)) as Error
    expect(err).toBeInstanceOf(ProxmoxNotImplementedError)
    expect(err.message).toContain('(PVE 8.4.2) does not implement GET /cluster/sdn/fabrics')
    expect(old.invalidRequests).toHaveLength(1) // deliberately invalid here
    await c.close()
    await old.stop()
  })

  it('maps a 400 to the per-parameter errors', async () => {
    const err = await client.createRole('Bad', ['VM.Monitor']).catch((e) => e)
    expect(err).toBeInstanceOf(ProxmoxParameterError)
    expect(err.errors).toEqual({privs: "invalid format - invalid privilege 'VM.Monitor'\n"})
    sim.clearRequests() // deliberately invalid: VM.Monitor does not exist on PVE 9
  })

  it('reports an unreachable host with the URL and how long it waited', async () => {
    // A port nobody listens on: bind one, then close it.
    const srv = net.createServer()
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
    const port = (srv.address() as net.AddressInfo).port
    await new Promise((resolve) => srv.close(resolve))
    const c = await ProxmoxClient.connect({
      url: `https://127.0.0.1:${port}`,
      auth: {type: 'token', tokenId: 'root@pam!xy', secret: '00000000-0000-4000-8000-000000000000'},
      tls: {fingerprint: sim.fingerprint},
      readAttempts: 2,
    })
    const err = await c.version().catch((e) => e)
    await c.close()
    expect(err).toBeInstanceOf(ProxmoxUnreachableError)
    expect(err.message).toMatch(new RegExp(`^Cannot reach Proxmox at https://127\\.0\\.0\\.1:${port} \\(waited \\d+\\.\\d s\\): ECONNREFUSED \\(2 attempts\\)\\.$`))
    expect(err.exitCode).toBe(3)
  })

  it('reports the whole wait and the attempts, not one attempt\'s timeout', async () => {
    const c = await clientFor(sim, {timeoutMs: 300, readAttempts: 3})
    sim.setResponseDelay(1500)
    const started = Date.now()
    const err = await c.version().catch((e) => e)
    const took = Date.now() - started
    sim.setResponseDelay(0)
    await c.close()
    expect(err).toBeInstanceOf(ProxmoxUnreachableError)
    expect(err.message).toMatch(/\(3 attempts\)/)
    const waited = Number(/waited (\d+\.\d) s/.exec(err.message)![1]) * 1000
    // Three 300 ms attempts and the pauses between them, as measured around the call.
    expect(waited).toBeGreaterThanOrEqual(3 * 300 + 300 + 600 - 100)
    expect(waited).toBeLessThanOrEqual(took + 100)
  })

  it('times out a request the server does not answer', async () => {
    const c = await clientFor(sim, {timeoutMs: 300, readAttempts: 1})
    sim.setResponseDelay(1500)
    const err = await c.version().catch((e) => e)
    sim.setResponseDelay(0)
    await c.close()
    expect(err).toBeInstanceOf(ProxmoxUnreachableError)
    expect(err.message).toContain('no answer within')
  })

  it('reports expired credentials as 401', async () => {
    const own = await startPveSim({authFailureDelayMs: 5})
    const c = await clientFor(own)
    await c.version()
    own.expireCredentials()
    await expect(c.version()).rejects.toBeInstanceOf(ProxmoxAuthError)
    await c.close()
    await own.stop()
  })

  it('says so when the URL answers with something other than the Proxmox API (a web proxy)', async () => {
    const server = https.createServer({key: sim.certificate.key, cert: sim.certificate.cert}, (_req, res) => {
      res.writeHead(200, {'Content-Type': 'text/html'})
      res.end('<html>Welcome to nginx</html>')
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const {port} = server.address() as net.AddressInfo
    const c = await ProxmoxClient.connect({url: `https://127.0.0.1:${port}`, auth: {type: 'token', tokenId: sim.adminTokenId, secret: sim.adminTokenSecret}, tls: {fingerprint: sim.fingerprint}})
    const err = await c.version().catch((e: unknown) => e)
    await c.close()
    await new Promise((resolve) => server.close(resolve))
    expect((err as Error).message).toContain('not the Proxmox API')
  })

  it('rejects a snapshot name Proxmox would refuse before sending it', async () => {
    await expect(client.createSnapshot('pve', 200, '1-bad')).rejects.toThrow(/cannot be a Proxmox snapshot name/)
  })

  it('rejects a token secret that is not a UUID before sending anything', async () => {
    await expect(clientFor(sim, {auth: {type: 'token', tokenId: 'root@pam!autolabs', secret: 'hunter2'}})).rejects.toThrow(/must be a UUID/)
  })
})

describe('ProxmoxClient with password (ticket) auth', () => {
  it('logs in, reads and writes with the CSRF token', async () => {
    const c = await clientFor(sim, {auth: {type: 'password', username: 'root@pam', password: sim.rootPassword}})
    expect((await c.version()).major).toBe(9)
    await c.createUser('ticketmade@pve')
    expect((await c.users()).some((u) => u.userid === 'ticketmade@pve')).toBe(true)
    await c.close()
  })

  it('logs in again when the ticket expired (tickets live 2 h) instead of failing', async () => {
    const own = await startPveSim({authFailureDelayMs: 5})
    const c = await clientFor(own, {auth: {type: 'password', username: 'root@pam', password: own.rootPassword}})
    await c.version()
    own.expireCredentials()
    expect((await c.version()).major).toBe(9)
    expect(own.requests.filter((r) => r.path === '/api2/json/access/ticket' && r.status === 200)).toHaveLength(2)
    expect(own.invalidRequests).toEqual([])
    await c.close()
    await own.stop()
  })

  it('maps a wrong password to an authentication error', async () => {
    const c = await clientFor(sim, {auth: {type: 'password', username: 'root@pam', password: 'wrong-password'}})
    const err = await c.version().catch((e) => e)
    await c.close()
    expect(err).toBeInstanceOf(ProxmoxAuthError)
    expect(err.message).toContain('root@pam')
  })
})
