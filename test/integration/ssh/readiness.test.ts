import {execFileSync} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ReadinessError, waitForVmReady} from '../../../src/ssh/readiness.js'
import {freePort} from '../../support/net.js'
import {type Sshd, sshdAvailable, startSshd} from '../../support/sshd/sshd.js'

// The full sequence (cloud-init, apt locks) runs on lab machines (test/lab/ssh-readiness); here
// the SSH phases run against a loopback sshd, also where the lab is not available.
const avail = sshdAvailable()

describe.skipIf(!avail.ok)(`readiness: the SSH phases against a loopback sshd (${avail.reason})`, () => {
  let sshd: Sshd
  let dir: string
  beforeAll(async () => {
    sshd = await startSshd()
    dir = mkdtempSync(path.join(os.tmpdir(), 'autolabs-ready-'))
  })
  afterAll(async () => {
    await sshd?.stop()
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  it('fails with "SSH not up" and the cause when nothing listens, within its bound', async () => {
    // A port that was free a moment ago: connection refused on loopback.
    const port = await freePort()
    const statuses: string[] = []
    const err = await waitForVmReady(
      {name: 'gitlab-vm', host: '127.0.0.1', port, user: sshd.user, privateKeyPath: sshd.keyPath},
      {knownHostsFile: path.join(dir, 'kh1'), sshTimeoutMs: 1500, backoff: {initialMs: 100, maxMs: 300}, onStatus: (_vm, s) => statuses.push(s)},
    ).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ReadinessError)
    expect((err as ReadinessError).message).toBe(`SSH not up after 1.5 s at 127.0.0.1:${port}: connection refused`)
    expect((err as ReadinessError).exitCode).toBe(3)
    expect(statuses[0]).toBe(`waiting for SSH at 127.0.0.1:${port} (connection refused)`)
  })

  it('keeps retrying a login whose key is not (yet) accepted, then names the key', async () => {
    const other = path.join(dir, 'other_key')
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other])
    const statuses: string[] = []
    const err = await waitForVmReady(
      {name: 'k8s-vm', host: sshd.host, port: sshd.port, user: sshd.user, privateKeyPath: other},
      {knownHostsFile: path.join(dir, 'kh2'), sshTimeoutMs: 2000, backoff: {initialMs: 100, maxMs: 300}, onStatus: (_vm, s) => statuses.push(s)},
    ).catch((e: unknown) => e)
    expect((err as ReadinessError).message).toBe(
      `SSH login to ${sshd.user}@[127.0.0.1]:${sshd.port} not possible after 2 s: the key ${other} was not accepted for ${sshd.user}`,
    )
    expect((err as ReadinessError).phase).toBe('login')
    expect(statuses.filter((s) => s.startsWith('waiting for SSH login')).length).toBeGreaterThan(1)
  })
})
