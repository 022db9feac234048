import {spawn} from 'node:child_process'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {Agent, fetch} from 'undici'

import {type PveSim, startPveSim} from '../../support/pve-sim/index.mjs'

/**
 * The simulator must be able to fail: if it accepted anything, "autolabs never sent an invalid
 * request" would prove nothing. These tests talk raw HTTPS to it (no autolabs code involved).
 */
async function raw(sim: PveSim, method: string, path: string, params: Record<string, string> = {}, headers: Record<string, string> = {}) {
  const dispatcher = new Agent({connect: {rejectUnauthorized: false}})
  const body = method === 'GET' || method === 'DELETE' ? undefined : new URLSearchParams(params).toString()
  const qs = method === 'GET' || method === 'DELETE' ? `?${new URLSearchParams(params)}` : ''
  const res = await fetch(`${sim.url}/api2/json${path}${qs}`, {
    method,
    body,
    dispatcher,
    headers: {
      Authorization: `PVEAPIToken=${sim.adminTokenId}=${sim.adminTokenSecret}`,
      ...(body ? {'Content-Type': 'application/x-www-form-urlencoded'} : {}),
      ...headers,
    },
  })
  const text = await res.text()
  await dispatcher.close()
  return {status: res.status, statusText: res.statusText, contentType: res.headers.get('content-type'), json: JSON.parse(text)}
}

describe('pve-sim (PVE 9.1)', () => {
  let sim: PveSim
  beforeAll(async () => {
    sim = await startPveSim({version: '9.1'})
  })
  afterAll(async () => {
    await sim.stop()
  })

  it('answers a valid request with data and the exact PVE content type', async () => {
    const r = await raw(sim, 'GET', '/version')
    expect(r.status).toBe(200)
    expect(r.contentType).toBe('application/json;charset=UTF-8')
    expect(r.json.data.version).toBe('9.1.3')
  })

  it('answers an unknown path with 501, not 404, and records it as invalid', async () => {
    sim.clearRequests()
    const r = await raw(sim, 'GET', '/nodes/pve/qemu/100/frobnicate')
    expect(r.status).toBe(501)
    expect(r.statusText).toBe("Method 'GET /nodes/pve/qemu/100/frobnicate' not implemented")
    expect(sim.invalidRequests).toHaveLength(1)
  })

  it('answers a method the path does not have with 501', async () => {
    const r = await raw(sim, 'PUT', '/version')
    expect(r.status).toBe(501)
  })

  it('rejects unknown parameters, wrong types, "true" booleans, bad formats and missing required ones with per-parameter errors', async () => {
    sim.clearRequests()
    const r = await raw(sim, 'POST', '/nodes/pve/qemu', {vmid: '99', memory: 'lots', onboot: 'true', colour: 'blue', net0: 'virtio,bridge=vmbr0,speed=fast', ipconfig0: 'ip=10.0.0.5/24,gw=nope', scsihw: 'megaraid'})
    expect(r.status).toBe(400)
    expect(r.statusText).toBe('Parameter verification failed.')
    expect(r.json.data).toBeNull()
    expect(r.json.errors).toEqual({
      vmid: 'invalid format - value does not look like a valid VM ID\n',
      'memory.current': "type check ('integer') failed - got 'lots'\n",
      onboot: "type check ('boolean') failed - got 'true'\n",
      colour: 'property is not defined in schema and the schema does not allow additional properties\n',
      net0: 'invalid format - invalid key in comma-separated list property: speed\n',
      'ipconfig0.gw': 'invalid format - value does not look like a valid IPv4 address\n',
      scsihw: expect.stringMatching(/^value 'megaraid' does not have a value in the enumeration 'lsi, /),
    })
    expect(sim.invalidRequests).toHaveLength(1)
    const missing = await raw(sim, 'POST', '/access/roles', {privs: 'VM.Audit'})
    expect(missing.json.errors).toEqual({roleid: 'property is missing and it is not optional\n'})
  })

  it('applies Perl patterns translated to JavaScript (anchored)', async () => {
    const bad = await raw(sim, 'POST', '/access/users/root@pam/token/1bad', {})
    expect(bad.status).toBe(400)
    expect(bad.json.errors.tokenid).toBe('value does not match the regex pattern\n')
  })

  it('validates composite values key by key (scsi0 with import-from)', async () => {
    const r = await raw(sim, 'POST', '/nodes/pve/qemu', {vmid: '150', scsi0: 'local-lvm:0,import-from=local:import/x.qcow2,cache=fastest'})
    expect(r.status).toBe(400)
    expect(r.json.errors['scsi0.cache']).toMatch(/does not have a value in the enumeration 'none, writethrough/)
  })

  it('rejects VM.Monitor as a privilege on PVE 9 with the real message', async () => {
    const r = await raw(sim, 'POST', '/access/roles', {roleid: 'Old', privs: 'VM.Audit,VM.Monitor'})
    expect(r.json.errors).toEqual({privs: "invalid format - invalid privilege 'VM.Monitor'\n"})
  })

  it('answers bad credentials with 401 only after the configured delay', async () => {
    sim.authFailureDelayMs = 200
    const r = await raw(sim, 'GET', '/version', {}, {Authorization: `PVEAPIToken=${sim.adminTokenId}=00000000-0000-0000-0000-000000000000`})
    expect(r.status).toBe(401)
    // The simulator records the delay it applied before answering.
    expect(sim.requests.at(-1)).toMatchObject({status: 401, delayedMs: 200})
    sim.authFailureDelayMs = 10
  })

  it('gives a new token with privilege separation no rights until an ACL names it (403 with path and privilege)', async () => {
    expect((await raw(sim, 'POST', '/access/users', {userid: 'probe@pve'})).status).toBe(200)
    const tok = await raw(sim, 'POST', '/access/users/probe@pve/token/t1', {})
    const secret = tok.json.data.value
    expect(secret).toMatch(/^[0-9a-f-]{36}$/)
    sim.addVm(101, {name: 'x'})
    const r = await raw(sim, 'GET', '/nodes/pve/qemu/101/config', {}, {Authorization: `PVEAPIToken=probe@pve!t1=${secret}`})
    expect(r.status).toBe(403)
    expect(r.statusText).toBe('Permission check failed (/vms/101, VM.Audit)')
  })

  it('reports runtime failures as 500 with the message in the status line and the body', async () => {
    const r = await raw(sim, 'GET', '/nodes/pve/qemu/4242/config')
    expect(r.status).toBe(500)
    expect(r.statusText).toBe("Configuration file 'nodes/pve/qemu-server/4242.conf' does not exist")
    expect(r.json.message).toBe("Configuration file 'nodes/pve/qemu-server/4242.conf' does not exist\n")
  })

  it('requires the CSRF token on writes with ticket auth', async () => {
    const login = await raw(sim, 'POST', '/access/ticket', {username: 'root@pam', password: sim.rootPassword}, {Authorization: ''})
    const {ticket, CSRFPreventionToken} = login.json.data
    const cookie = `PVEAuthCookie=${encodeURIComponent(ticket)}`
    expect((await raw(sim, 'GET', '/version', {}, {Authorization: '', Cookie: cookie})).status).toBe(200)
    expect((await raw(sim, 'POST', '/access/users', {userid: 'csrf@pve'}, {Authorization: '', Cookie: cookie})).status).toBe(401)
    expect((await raw(sim, 'POST', '/access/users', {userid: 'csrf@pve'}, {Authorization: '', Cookie: cookie, CSRFPreventionToken})).status).toBe(200)
  })

  it('runs tasks with real-looking UPIDs, a status and a log', async () => {
    sim.addVm(102, {name: 'y'})
    const r = await raw(sim, 'POST', '/nodes/pve/qemu/102/status/start')
    expect(r.json.data).toMatch(/^UPID:pve:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:qmstart:102:root@pam!autolabs:$/)
    await new Promise((resolve) => setTimeout(resolve, sim.taskDurationMs + 50))
    const s = await raw(sim, 'GET', `/nodes/pve/tasks/${encodeURIComponent(r.json.data)}/status`)
    expect(s.json.data).toMatchObject({status: 'stopped', exitstatus: 'OK', type: 'qmstart', id: '102'})
    const log = await raw(sim, 'GET', `/nodes/pve/tasks/${encodeURIComponent(r.json.data)}/log`)
    expect(log.json.data.at(-1)).toEqual({n: log.json.data.length, t: 'TASK OK'})
  })
})

describe('pve-sim clone locking', () => {
  it('fails a second concurrent clone of one template with the lock timeout when asked to', async () => {
    const sim = await startPveSim({taskDurationMs: 100})
    try {
      sim.addVm(9000, {name: 'tpl', template: true})
      sim.exclusiveClones()
      const a = await raw(sim, 'POST', '/nodes/pve/qemu/9000/clone', {newid: '110'})
      const b = await raw(sim, 'POST', '/nodes/pve/qemu/9000/clone', {newid: '120'})
      await new Promise((resolve) => setTimeout(resolve, 250))
      expect(sim.state.tasks.get(a.json.data)!.exitstatus).toBe('OK')
      expect(sim.state.tasks.get(b.json.data)!.exitstatus).toBe("clone failed: can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout")
      expect(sim.state.vms.has(110)).toBe(true)
      expect(sim.state.vms.has(120)).toBe(false)
      expect(sim.invalidRequests).toEqual([])
    } finally {
      await sim.stop()
    }
  })
})

describe('pve-sim (PVE 8.4)', () => {
  it('validates against the 8.4 schema: VM.Monitor is a valid privilege there', async () => {
    const sim = await startPveSim({version: '8.4'})
    try {
      const r = await raw(sim, 'POST', '/access/roles', {roleid: 'Old', privs: 'VM.Audit,VM.Monitor'})
      expect(r.status).toBe(200)
      expect((await raw(sim, 'GET', '/version')).json.data.version).toBe('8.4.2')
      expect(sim.invalidRequests).toEqual([])
    } finally {
      await sim.stop()
    }
  })
})

describe('pve-sim as a process', () => {
  it('prints its URL, fingerprint and admin token, serves, and exits 3 on SIGTERM after an invalid request', async () => {
    const child = spawn(process.execPath, ['test/support/pve-sim/cli.mjs', '--version', '9.1', '--auth-delay-ms', '10'], {stdio: ['ignore', 'pipe', 'pipe']})
    const line = await new Promise<string>((resolve, reject) => {
      let buf = ''
      child.stdout.on('data', (d) => {
        buf += d
        if (buf.includes('\n')) resolve(buf.split('\n')[0])
      })
      child.once('exit', (code) => reject(new Error(`exited ${code}`)))
      setTimeout(() => reject(new Error('no output within 15 s')), 15_000)
    })
    const info = JSON.parse(line)
    expect(info).toMatchObject({version: '9.1.3', tokenId: 'root@pam!autolabs'})
    expect(info.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
    const dispatcher = new Agent({connect: {rejectUnauthorized: false}})
    const res = await fetch(`${info.url}/api2/json/nodes/pve/nonsense`, {dispatcher, headers: {Authorization: `PVEAPIToken=${info.tokenId}=${info.tokenSecret}`}})
    expect(res.status).toBe(501)
    await dispatcher.close()
    const code = await new Promise<number | null>((resolve) => {
      child.once('exit', (c) => resolve(c))
      child.kill('SIGTERM')
    })
    expect(code).toBe(3)
  })
})


describe('pve-sim network listing', () => {
  it('leaves out bridges the caller may not use, like PVE 8+ (no 403)', async () => {
    const sim = await startPveSim()
    try {
      expect((await raw(sim, 'POST', '/access/users', {userid: 'net@pve'})).status).toBe(200)
      const secret = (await raw(sim, 'POST', '/access/users/net@pve/token/t1', {privsep: '0'})).json.data.value
      const as = {Authorization: `PVEAPIToken=net@pve!t1=${secret}`}
      expect((await raw(sim, 'GET', '/nodes/pve/network', {type: 'any_bridge'}, as)).json.data).toEqual([])
      await raw(sim, 'PUT', '/access/acl', {path: '/sdn/zones/localnetwork', roles: 'PVEAuditor', users: 'net@pve'})
      expect((await raw(sim, 'GET', '/nodes/pve/network', {type: 'any_bridge'}, as)).json.data.map((n: {iface: string}) => n.iface)).toEqual(['vmbr0'])
      expect(sim.invalidRequests).toEqual([])
    } finally {
      await sim.stop()
    }
  })
})
