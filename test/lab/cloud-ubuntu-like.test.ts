import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {ReadyResult} from '../../src/ssh/readiness.js'
import {labAvailable, type Lab, startLab} from '../support/lab/lab.js'
import {type CloudWorkspace, cloudWorkspace, readyAsInit} from './cloud-support.js'
import {describeRun, runDeploy, statuses, type DeployRun} from './deploy-support.js'

// The "Ubuntu-like" cloud image (Debian's cloud image plus what Ubuntu's server cloud images add
// that Debian packages too: needrestart, ufw installed but inactive; apt-daily timers and
// unattended-upgrades as in both), booted in autolabs' snippet mode: the user-data is the snippet
// autolabs renders (src/render/cloud-init.ts: user, key, guest agent, apt proxy), Proxmox adds
// network-config and meta-data. Then readiness and the base stage, as init runs them.
// What the lab cannot show of Ubuntu itself is listed in docs/lab.md.
const avail = labAvailable()
const SUBNET = 111
const K8S_IP = `10.99.${SUBNET}.30`

describe.skipIf(!avail.ok)(`ubuntu-like cloud image in snippet mode: readiness and the base stage${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let lab: Lab
  let cw: CloudWorkspace
  let ready: ReadyResult
  let first: DeployRun
  let again: DeployRun

  beforeAll(async () => {
    cw = await cloudWorkspace(SUBNET, {k8s: K8S_IP}, 'snippet')
    // The snippet's `apt: proxy:` (network.aptProxy) is the only way this machine reaches the
    // archive: the image carries no proxy, as a fresh VM would not.
    lab = await startLab({
      name: 'cloud-ubuntu-like',
      subnet: SUBNET,
      image: 'ubuntu-like',
      machines: [{name: 'k8s-vm', ip: K8S_IP}],
      publicKey: cw.publicKey,
      cloudInit: cw.cloudInit,
      aptProxyInMachine: false,
    })
    ready = await readyAsInit(cw, 'k8s-vm', K8S_IP)
    first = await runDeploy(cw.ws, ['--only', 'k8s-vm,base'])
    again = await runDeploy(cw.ws, ['--only', 'k8s-vm,base'])
    console.log(`cloud-ubuntu-like: boot ${lab.machine('k8s-vm').bootMs} ms, readiness ${ready.waitedMs} ms, deploy ${first.ms} ms`)
  })

  afterAll(async () => {
    await lab?.stop()
  })

  it('cloud-init ran the snippet: the proxy it wrote, and the guest agent it installed', async () => {
    expect(ready.cloudInit).toBe('done')
    const m = lab.machine('k8s-vm')
    const r = await m.exec("cat /etc/apt/apt.conf.d/90cloud-init-aptproxy; echo ---; dpkg-query -W -f='${Status}\\n' qemu-guest-agent; echo ---; cat /home/debian/.ssh/authorized_keys")
    const [proxy, agent, keys] = r.stdout.split('---\n').map((x) => x.trim())
    expect(proxy).toContain(`http://10.99.${SUBNET}.1:3149`)
    expect(agent).toBe('install ok installed')
    expect(keys).toBe(cw.publicKey)
  })

  it('base: every step ends changed or unchanged, and ufw (installed, inactive) ends active with the rules', async () => {
    const st = statuses(first, 'k8s')
    expect(Object.entries(st).filter(([, s]) => s !== 'changed' && s !== 'unchanged'), describeRun(first)).toEqual([])
    expect(st['base/firewall']).toBe('changed')
    const r = await lab.machine('k8s-vm').exec("ufw status | head -n 1; systemctl is-enabled apt-daily.timer apt-daily-upgrade.timer; systemctl is-active unattended-upgrades; dpkg-query -W -f='${Status}\\n' needrestart")
    expect(r.stdout.trim().split('\n')).toEqual(['Status: active', 'enabled', 'enabled', 'active', 'install ok installed'])
  })

  it('a second deploy changes nothing', () => {
    const st = statuses(again, 'k8s')
    for (const [id, s] of Object.entries(st)) expect(s, `${id}\n${describeRun(again)}`).toBe('unchanged')
  })
})
