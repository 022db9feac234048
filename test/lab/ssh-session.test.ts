import {mkdtempSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'

import {UserError} from '../../src/errors.js'
import {connectSsh, type ConnectOptions, SshConnectionLostError, type SshSession} from '../../src/ssh/session.js'
import {type Lab, type LabMachine, labAvailable, startLab} from '../support/lab/lab.js'

const avail = labAvailable()

describe.skipIf(!avail.ok)(`SSH sessions to a lab VM as its cloud user (${avail.reason})`, () => {
  let lab: Lab
  let vm: LabMachine
  let dir: string
  const open: SshSession[] = []

  const connect = async (extra: Partial<ConnectOptions> = {}, user?: string) => {
    const s = await connectSsh(
      {name: vm.name, host: vm.ip, user: user ?? vm.user, privateKeyPath: vm.keyPath},
      {knownHostsFile: path.join(dir, 'known_hosts'), readyTimeoutMs: 10_000, reconnect: {tries: 5, delayMs: 300}, ...extra},
    )
    open.push(s)
    return s
  }

  beforeAll(async () => {
    lab = await startLab({name: 'ssh-session', subnet: 22, machines: [{name: 'database-vm'}]})
    vm = lab.machine('database-vm')
    dir = mkdtempSync(path.join(os.tmpdir(), 'autolabs-lab-session-'))
  })
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close()
  })
  afterAll(async () => {
    await lab?.stop()
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('runs commands as the cloud user, and as root with sudo (env values survive sudo)', async () => {
    const s = await connect()
    expect((await s.exec('id -un')).stdout).toBe('debian\n')
    const r = await s.exec('id -un; printf %s "$TOKEN"', {sudo: true, env: {TOKEN: 'tok-123456'}})
    expect(r.stdout).toBe('root\ntok-123456')
  })

  it('uploads a root-owned 0600 file with sudo', async () => {
    const s = await connect()
    await s.upload('PGPASSWORD=x\n', '/etc/autolabs/db.env', 0o600, {sudo: true, owner: 'root:root'})
    const r = await vm.exec('stat -c "%a %U %G" /etc/autolabs/db.env; cat /etc/autolabs/db.env; ls -A /etc/autolabs')
    expect(r.stdout).toBe('600 root root\nPGPASSWORD=x\ndb.env\n')
  })

  it('explains a user without passwordless sudo instead of hanging on a password prompt', async () => {
    await vm.exec('id nosudo >/dev/null 2>&1 || useradd -m -s /bin/bash nosudo; install -d -o nosudo -m700 /home/nosudo/.ssh; install -o nosudo -m600 /home/debian/.ssh/authorized_keys /home/nosudo/.ssh/')
    const s = await connect({}, 'nosudo')
    const err = await s.exec('true', {sudo: true, check: true, timeoutMs: 20_000}).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UserError)
    expect((err as Error).message).toBe('nosudo on database-vm cannot use sudo without a password.')
  })

  it('reconnects by itself after sshd is killed and restarted by systemd', async () => {
    const s = await connect()
    const running = s.exec('sleep 20', {label: 'apt-get install postgresql'}).catch((e: unknown) => e)
    await new Promise((r) => setTimeout(r, 500))
    await lab.killSshd('database-vm', 'all')
    expect(await running).toBeInstanceOf(SshConnectionLostError)
    // systemd restarts ssh.service (Restart=on-failure); the next exec reconnects with backoff.
    const r = await s.exec('systemctl is-active ssh')
    expect(r.stdout).toBe('active\n')
    expect(s.fingerprint).toBe(vm.hostKeyFingerprint)
  })

  it('notices a silently dead network through keep-alives instead of hanging, then resumes', async () => {
    const s = await connect({keepaliveIntervalMs: 500, reconnect: {tries: 10, delayMs: 500}})
    const running = s.exec('sleep 60', {label: 'wait for replication'}).catch((e: unknown) => e)
    await new Promise((r) => setTimeout(r, 500))
    await lab.setLink('database-vm', false)
    try {
      // With the link down nothing but the keep-alives can end the command: the error is the event.
      expect(await running).toBeInstanceOf(SshConnectionLostError)
    } finally {
      await lab.setLink('database-vm', true)
    }
    expect((await s.exec('echo resumed')).stdout).toBe('resumed\n')
  })
})
