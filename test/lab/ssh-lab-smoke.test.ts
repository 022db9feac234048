import {execFileSync} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {type Lab, labAvailable, startLab} from '../support/lab/lab.js'

const avail = labAvailable()

describe.skipIf(!avail.ok)(`lab machines (${avail.reason})`, () => {
  let lab: Lab

  beforeAll(async () => {
    lab = await startLab({name: 'lab-smoke', subnet: 20, machines: [{name: 'alpha'}, {name: 'beta'}]})
    // Numbers for the report: boot to sshd per machine, rootfs build (0 = cached tarball).
    console.log(`lab-smoke: rootfs build ${lab.rootfsBuildMs} ms; boot ${lab.machines.map((m) => `${m.name} ${m.bootMs} ms`).join(', ')}`)
  })

  afterAll(async () => {
    await lab?.stop()
  })

  it('boots real systemd machines with sshd running and the cloud user able to sudo without a password', async () => {
    const m = lab.machine('alpha')
    const r = await m.exec('systemctl is-system-running --wait >/dev/null 2>&1; systemctl is-active ssh; readlink /proc/1/exe; su - debian -c "sudo -n id -u"')
    expect(r.stdout.split('\n').slice(0, 3)).toEqual(['active', '/usr/lib/systemd/systemd', '0'])
  })

  it('lets machines reach each other and the host gateway over TCP', async () => {
    const [a, b] = lab.machines
    // alpha reads beta's sshd banner over the bridge (and beta alpha's).
    const ab = await a.exec(`timeout 5 bash -c 'exec 3<>/dev/tcp/${b.ip}/22; head -c 8 <&3'`)
    expect(ab.stdout).toBe('SSH-2.0-')
    const ba = await b.exec(`timeout 5 bash -c 'exec 3<>/dev/tcp/${a.ip}/22; head -c 8 <&3'`)
    expect(ba.stdout).toBe('SSH-2.0-')
    const gw = await a.exec(`(exec 3<>/dev/tcp/${lab.gateway}/3149) && echo reached`)
    expect(gw.stdout.trim()).toBe('reached')
  })

  it('has no route out: only the lab subnet is reachable', async () => {
    const r = await lab.machine('alpha').exec('ip route')
    expect(r.stdout).not.toMatch(/default/)
    expect(r.stdout).toContain(lab.subnet.replace('/24', ''))
  })

  it('installs a Debian package with apt through the host apt-cacher-ng', async () => {
    const m = lab.machine('beta')
    const r = await m.exec('apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq && jq --version', {timeoutMs: 300_000})
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/jq-1\./)
  })
})

describe.skipIf(!avail.ok)(`lab cleanup (${avail.reason})`, () => {
  it('cleans up a lab that a crashed run left running on the same subnet, and stop() leaves nothing behind', async () => {
    // Given a lab that is never stopped (as when a test process dies)…
    const crashed = await startLab({name: 'lab-crashed', subnet: 23, machines: [{name: 'orphan'}]})
    const orphanPid = crashed.machine('orphan').pid!
    expect(existsSync(`/proc/${orphanPid}`)).toBe(true)
    // …the next start on that subnet removes it and works.
    const lab = await startLab({name: 'lab-after-crash', subnet: 23, machines: [{name: 'orphan'}]})
    try {
      expect(existsSync(`/proc/${orphanPid}`)).toBe(false)
      expect((await lab.machine('orphan').exec('systemctl is-active ssh')).stdout).toBe('active\n')
    } finally {
      await lab.stop()
    }
    const netns = execFileSync('ip', ['netns', 'list']).toString()
    const links = execFileSync('ip', ['-o', 'link', 'show']).toString()
    expect(netns).not.toMatch(/^al23-/m)
    expect(links).not.toMatch(/\b(alb23|alv23m\d+)\b/)
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(lab.dir)
    expect(existsSync(lab.dir)).toBe(false)
  })
})
