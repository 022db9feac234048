import {describe, expect, it} from 'vitest'

import {validateConfig} from '../../../src/config/load.js'
import {parseJumpHost} from '../../../src/ssh/jump-spec.js'
import {chooseRoute, sshRouteCheck, type TcpProbe} from '../../../src/ssh/route.js'

// The probe is injected: these tests never send a packet (the planned addresses are 192.168.100.x).
const config = (ssh: Record<string, unknown> = {}) => validateConfig({proxmox: {url: 'https://pve.lan:8006'}, ssh}, 'test').config
const probeWith =
  (answers: Record<string, string | undefined>, calls: string[] = []): TcpProbe =>
  async (host, port) => {
    calls.push(`${host}:${port}`)
    return host in answers ? answers[host] : 'no answer (timed out)'
  }

describe('parseJumpHost', () => {
  it.each([
    ['root@pve.lan', {user: 'root', host: 'pve.lan', port: 22}],
    ['admin@10.0.0.2:2222', {user: 'admin', host: '10.0.0.2', port: 2222}],
    ['pve.lan', {user: 'root', host: 'pve.lan', port: 22}],
    ['root@[fd00::1]:22', {user: 'root', host: 'fd00::1', port: 22}],
  ])('%s', (value, spec) => expect(parseJumpHost(value)).toEqual(spec))
  it.each(['root@', 'root@pve lan', 'root@pve:0', 'root@pve:70000', 'Root@pve', 'a@b@c'])('rejects %s', (value) => expect(typeof parseJumpHost(value)).toBe('string'))
})

describe('ssh.jumpHost in autolabs.yaml', () => {
  it('defaults to auto and accepts none and user@host[:port]', () => {
    expect(config().ssh.jumpHost).toBe('auto')
    expect(config({jumpHost: 'none'}).ssh.jumpHost).toBe('none')
    expect(config({jumpHost: 'root@pve.lan:2222'}).ssh.jumpHost).toBe('root@pve.lan:2222')
  })
  it('names the field and the accepted forms for anything else', () => {
    expect(() => config({jumpHost: 'root@pve lan'})).toThrow(/ssh\.jumpHost: must be auto, none, or user@host\[:port\]/)
    expect(() => config({jumpHostFingerprint: 'abc'})).toThrow(/ssh\.jumpHostFingerprint: must be an SSH host key fingerprint/)
  })
})

describe('chooseRoute', () => {
  it('none: direct without a probe', async () => {
    const calls: string[] = []
    expect(await chooseRoute(config({jumpHost: 'none'}), ['192.168.100.10'], {probe: probeWith({}, calls)})).toEqual({kind: 'direct', why: 'ssh.jumpHost is "none"'})
    expect(calls).toEqual([])
  })

  it('an explicit jump host: always through it, without a probe; the flag/env overrides the file', async () => {
    const calls: string[] = []
    expect(await chooseRoute(config({jumpHost: 'admin@bastion:2222'}), [], {probe: probeWith({}, calls)})).toEqual({
      kind: 'jump',
      jump: {user: 'admin', host: 'bastion', port: 2222},
      why: 'ssh.jumpHost is admin@[bastion]:2222',
    })
    const r = await chooseRoute(config({jumpHost: 'none'}), [], {override: 'root@pve.lan', probe: probeWith({}, calls)})
    expect(r).toMatchObject({kind: 'jump', why: '--ssh-jump-host (AUTOLABS_SSH_JUMP_HOST) is root@pve.lan'})
    expect(calls).toEqual([])
    await expect(chooseRoute(config(), [], {override: 'not a host'})).rejects.toThrow(/--ssh-jump-host \(AUTOLABS_SSH_JUMP_HOST\): must be auto, none/)
  })

  it('auto: direct as soon as the gateway or a VM answers, even with "connection refused" (a route exists)', async () => {
    const calls: string[] = []
    const r = await chooseRoute(config(), ['192.168.100.10', '192.168.100.20'], {probe: probeWith({'192.168.100.20': 'connection refused'}, calls)})
    expect(r).toEqual({kind: 'direct', why: 'ssh.jumpHost is auto and 192.168.100.20:22 answers from this machine (connection refused)'})
    expect(new Set(calls)).toEqual(new Set(['192.168.100.1:22', '192.168.100.10:22', '192.168.100.20:22']))
  })

  it('auto: through the Proxmox node (root, port 22) when nothing answers, saying what was tried', async () => {
    const r = await chooseRoute(config(), ['192.168.100.10'], {probe: probeWith({'192.168.100.10': 'host unreachable'})})
    expect(r).toEqual({
      kind: 'jump',
      jump: {user: 'root', host: 'pve.lan', port: 22},
      why: 'ssh.jumpHost is auto and this machine has no route to 192.168.100.0/24 (192.168.100.1:22 no answer (timed out), 192.168.100.10:22 host unreachable): through the Proxmox node',
    })
  })
})

describe('the preflight line', () => {
  it('passes with the path and why; fails when the jump host does not answer, naming the fix', async () => {
    expect(await sshRouteCheck(config(), {probe: probeWith({'192.168.100.1': undefined})})).toMatchObject({
      id: 'ssh-route',
      status: 'pass',
      detail: 'direct: ssh.jumpHost is auto and 192.168.100.1:22 answers from this machine (connected)',
    })
    expect(await sshRouteCheck(config(), {probe: probeWith({'pve.lan': undefined})})).toMatchObject({status: 'pass', detail: expect.stringMatching(/^through the jump host root@pve\.lan: ssh\.jumpHost is auto and this machine has no route/)})
    const down = await sshRouteCheck(config({jumpHost: 'root@bastion'}), {probe: probeWith({bastion: 'connection refused'})})
    expect(down).toMatchObject({status: 'fail', detail: 'through the jump host root@bastion (ssh.jumpHost is root@bastion), but bastion:22 does not answer: connection refused'})
    expect(down.fix).toContain('ssh.jumpHost')
  })
})
