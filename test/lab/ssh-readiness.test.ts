import {execFileSync} from 'node:child_process'
import {chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {HostKeyChangedError} from '../../src/ssh/known-hosts.js'
import {ReadinessError, type ReadinessOptions, type ReadinessTarget, VmsNotReadyError, waitForReady, waitForVmReady} from '../../src/ssh/readiness.js'
import {type Lab, type LabMachine, labAvailable, startLab} from '../support/lab/lab.js'

const avail = labAvailable()

/** Polls a condition (bounded) instead of sleeping a guessed time. */
async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

// A stand-in for cloud-init on a machine: "running" until /run/fake-cloud-init-done exists,
// "error" when /run/fake-cloud-init-error exists (exit codes as cloud-init's).
const FAKE_CLOUD_INIT = `#!/bin/sh
done_file=/run/fake-cloud-init-done
err_file=/run/fake-cloud-init-error
case "$*" in
  "status --wait")
    i=0
    while [ ! -e "$done_file" ] && [ ! -e "$err_file" ]; do
      i=$((i + 1)); [ "$i" -gt 600 ] && exit 1
      printf .; sleep 0.5
    done
    echo
    if [ -e "$err_file" ]; then echo "status: error"; exit 1; fi
    echo "status: done" ;;
  "status --long") echo "status: error"; echo "errors:"; echo "  - ('scripts_user', RuntimeError('runparts: 1 failed'))" ;;
  *) exit 0 ;;
esac
`

describe.skipIf(!avail.ok)(`readiness of lab VMs (${avail.reason})`, () => {
  let lab: Lab
  let dir: string
  let web: LabMachine // has (a fake) cloud-init
  let db: LabMachine // has no cloud-init
  let late: LabMachine // booted by a test, after waiting starts
  let never: LabMachine // never booted

  const target = (m: LabMachine): ReadinessTarget => ({name: m.name, host: m.ip, user: m.user, privateKeyPath: m.keyPath})
  const opts = (extra: Partial<ReadinessOptions> = {}): ReadinessOptions => ({
    knownHostsFile: path.join(dir, 'known_hosts'),
    backoff: {initialMs: 200, maxMs: 1000},
    ...extra,
  })

  beforeAll(async () => {
    lab = await startLab({
      name: 'ssh-readiness',
      subnet: 21,
      boot: false,
      machines: [{name: 'web-vm'}, {name: 'db-vm'}, {name: 'late-vm'}, {name: 'never-vm'}],
      prepare: ({name, rootfs}) => {
        if (name !== 'web-vm') return
        writeFileSync(path.join(rootfs, 'usr/bin/cloud-init'), FAKE_CLOUD_INIT)
        chmodSync(path.join(rootfs, 'usr/bin/cloud-init'), 0o755)
      },
    })
    ;[web, db, late, never] = lab.machines
    await Promise.all([lab.boot('web-vm'), lab.boot('db-vm')])
    console.log(`ssh-readiness: boot ${[web, db].map((m) => `${m.name} ${m.bootMs} ms`).join(', ')}`)
  })
  afterAll(async () => {
    await lab?.stop()
  })
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'autolabs-readiness-'))
    return () => rmSync(dir, {recursive: true, force: true})
  })

  it('waits for SSH that is not up yet, then logs in, records the host key and skips an absent cloud-init', async () => {
    const statuses: string[] = []
    const waiting = waitForVmReady(target(late), opts({onStatus: (vm, s) => statuses.push(`${vm}: ${s}`)}))
    await until(() => statuses.includes(`late-vm: waiting for SSH at ${late.ip}:22 (connection refused)`), 30_000)
    await lab.boot('late-vm')
    const ready = await waiting
    expect(statuses).toContain(`late-vm: waiting for SSH at ${late.ip}:22 (connection refused)`)
    expect(statuses.at(-1)).toBe('late-vm: ready')
    expect(ready).toMatchObject({name: 'late-vm', firstContact: true, fingerprint: late.hostKeyFingerprint, cloudInit: 'not-installed'})
    expect(ready.notes).toContain('cloud-init is not installed: not waited for')
    expect(readFileSync(path.join(dir, 'known_hosts'), 'utf8')).toContain(`${late.ip} ssh-ed25519 `)
  })

  it('fails with the cause when SSH never comes up within the bound', async () => {
    const err = await waitForVmReady(target(never), opts({sshTimeoutMs: 3000})).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ReadinessError)
    expect((err as ReadinessError).message).toBe(`SSH not up after 3 s at ${never.ip}:22: connection refused`)
    expect((err as ReadinessError).phase).toBe('tcp')
  })

  it('waits while cloud-init is still running and continues when it finishes', async () => {
    await web.exec('rm -f /run/fake-cloud-init-done /run/fake-cloud-init-error')
    const statuses: string[] = []
    let settled = false
    const waiting = waitForVmReady(target(web), opts({onStatus: (_vm, s) => statuses.push(s)})).finally(() => {
      settled = true
    })
    // Once it reports waiting for cloud-init, it keeps waiting until cloud-init is done.
    await until(() => statuses.includes('waiting for cloud-init to finish'), 60_000)
    await new Promise((r) => setTimeout(r, 2000))
    expect(settled).toBe(false)
    expect(statuses.at(-1)).toBe('waiting for cloud-init to finish')
    await web.exec('touch /run/fake-cloud-init-done')
    const ready = await waiting
    expect(ready.cloudInit).toBe('done')
  })

  it('fails when cloud-init is still running after its bound', async () => {
    await web.exec('rm -f /run/fake-cloud-init-done /run/fake-cloud-init-error')
    const err = await waitForVmReady(target(web), opts({cloudInitTimeoutMs: 3000})).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ReadinessError)
    expect((err as ReadinessError).message).toBe('cloud-init still running on web-vm after 3 s')
    expect((err as ReadinessError).phase).toBe('cloud-init')
    expect((err as ReadinessError).suggestion).toContain('/var/log/cloud-init-output.log')
    // Nothing of the waiting is left behind on the VM.
    expect((await web.exec('pgrep -f "[c]loud-init status" || true')).stdout.trim()).toBe('')
  })

  it('reports a failed cloud-init with its own account of the error', async () => {
    await web.exec('rm -f /run/fake-cloud-init-done; touch /run/fake-cloud-init-error')
    const err = await waitForVmReady(target(web), opts()).catch((e: unknown) => e)
    await web.exec('rm -f /run/fake-cloud-init-error; touch /run/fake-cloud-init-done')
    expect(err).toBeInstanceOf(ReadinessError)
    expect((err as Error).message).toMatch(/^cloud-init failed on web-vm \(status: error\):\n/)
    expect((err as Error).message).toContain('runparts: 1 failed')
  })

  describe('with the apt lock held (as by unattended-upgrades on first boot)', () => {
    beforeEach(async () => {
      const r = await db.exec('systemd-run --unit=hold-apt-lock --collect flock /var/lib/dpkg/lock-frontend sleep 300 && sleep 0.5')
      expect(r.code, r.stderr).toBe(0)
      return async () => {
        await db.exec('systemctl stop hold-apt-lock 2>/dev/null || true')
      }
    })

    it('fails after its bound, naming the process holding the lock', async () => {
      const err = await waitForVmReady(target(db), opts({aptLockTimeoutMs: 3000})).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ReadinessError)
      expect((err as Error).message).toMatch(/^apt\/dpkg lock on db-vm still held after 3 s by (flock|sleep) \(pid \d+\) on \/var\/lib\/dpkg\/lock-frontend$/)
      expect((err as ReadinessError).phase).toBe('apt-lock')
    })

    it('waits until the lock is released', async () => {
      const statuses: string[] = []
      const held = /^waiting for the apt\/dpkg lock \(held by (flock|sleep) \(pid \d+\) on \/var\/lib\/dpkg\/lock-frontend\)$/
      let settled = false
      const waiting = waitForVmReady(target(db), opts({onStatus: (_vm, s) => statuses.push(s)})).finally(() => {
        settled = true
      })
      await until(() => statuses.some((s) => held.test(s)), 60_000)
      await new Promise((r) => setTimeout(r, 1500))
      expect(settled).toBe(false)
      await db.exec('systemctl stop hold-apt-lock')
      const ready = await waiting
      expect(ready.name).toBe('db-vm')
      expect(statuses.at(-1)).toBe('ready')
    })
  })

  it('awaits several VMs concurrently and names every VM that is not ready', async () => {
    await web.exec('touch /run/fake-cloud-init-done')
    const ok = await waitForReady([target(web), target(db)], opts())
    expect(ok.map((r) => r.name)).toEqual(['web-vm', 'db-vm'])
    const bad = {...target(db), name: 'db-vm-wrong-key', privateKeyPath: path.join(dir, 'nokey')}
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', bad.privateKeyPath])
    const err = await waitForReady([target(web), target(never), bad], opts({sshTimeoutMs: 3000})).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(VmsNotReadyError)
    expect((err as Error).message).toContain(`never-vm: SSH not up after 3 s at ${never.ip}:22: connection refused`)
    expect((err as Error).message).toContain(`db-vm-wrong-key: SSH login to debian@${db.ip} not possible after 3 s: the key ${bad.privateKeyPath} was not accepted for debian`)
    expect((err as Error).message).not.toContain('web-vm')
  })

  it('refuses a VM whose host key changed since it was recorded', async () => {
    await waitForVmReady(target(db), opts())
    await lab.regenerateHostKeys('db-vm')
    const err = await waitForVmReady(target(db), opts()).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(HostKeyChangedError)
    expect((err as HostKeyChangedError).suggestion).toContain('autolabs hosts forget db-vm')
  })

  it('accepts a VM whose host key matches the fingerprint reported by the hypervisor, without trusting on first use', async () => {
    const ready = await waitForVmReady({...target(db), expectedFingerprint: db.hostKeyFingerprint}, opts())
    expect(ready.fingerprint).toBe(db.hostKeyFingerprint)
  })
})
