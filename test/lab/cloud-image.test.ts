import {existsSync, readFileSync} from 'node:fs'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {ReadyResult} from '../../src/ssh/readiness.js'
import {labAvailable, type Lab, startLab} from '../support/lab/lab.js'
import {type CloudWorkspace, cloudWorkspace, readyAsInit} from './cloud-support.js'
import {describeRun, runDeploy, sh, statuses, type DeployRun} from './deploy-support.js'

// The real path on machines that are Debian 12 generic cloud images (lab image 'debian-cloud'),
// booted THROUGH cloud-init from the NoCloud seed Proxmox would write for autolabs' VM in the
// default builtin mode: user, SSH key, static address and DNS from autolabs.yaml. Then what
// `init` does next — readiness: SSH, `cloud-init status --wait`, the apt locks — and `deploy` of
// base + database, with unattended-upgrades running as on every real cloud VM.
const avail = labAvailable()
const hasClients = existsSync('/usr/bin/psql')
const SUBNET = 110
const DB_IP = `10.99.${SUBNET}.20`
const reason = !avail.ok ? avail.reason : !hasClients ? 'needs psql on the host (apt-get install postgresql-client)' : ''

describe.skipIf(!avail.ok || !hasClients)(`cloud-image lab machine: init readiness and deploy of base + database${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let lab: Lab
  let cw: CloudWorkspace
  let ready: ReadyResult
  let uuDuringReadiness = ''
  let first: DeployRun
  let again: DeployRun

  beforeAll(async () => {
    cw = await cloudWorkspace(SUBNET, {database: DB_IP})
    // Proxmox's builtin user-data has `package_upgrade: true` (ciupgrade defaults to 1) and no
    // apt proxy: a real VM reaches the archive directly; a lab machine has no route out, so its
    // image carries the lab's apt cache in its place (the stages set network.aptProxy anyway).
    lab = await startLab({
      name: 'cloud-image',
      subnet: SUBNET,
      image: 'debian-cloud',
      machines: [{name: 'database-vm', ip: DB_IP}],
      publicKey: cw.publicKey,
      cloudInit: cw.cloudInit,
    })
    const m = lab.machine('database-vm')
    console.log(`cloud-image: rootfs build ${lab.rootfsBuildMs} ms; boot to sshd ${m.bootMs} ms`)
    const t0 = Date.now()
    ready = await readyAsInit(cw, 'database-vm', DB_IP)
    uuDuringReadiness = (await m.exec('pgrep -a -x unattended-upgr || true')).stdout.trim()
    console.log(`cloud-image: readiness ${Date.now() - t0} ms (${ready.cloudInit}; ${ready.notes.join('; ')})`)
    first = await runDeploy(cw.ws, ['--only', 'database'])
    again = await runDeploy(cw.ws, ['--only', 'database'])
    console.log(`cloud-image: deploy ${first.ms} ms, again ${again.ms} ms`)
  })

  afterAll(async () => {
    await lab?.stop()
  })

  it('booted through cloud-init from the seed: NoCloud data source, the user with only its key, hostname, and the static address and DNS rendered for netplan', async () => {
    const m = lab.machine('database-vm')
    const r = await m.exec(
      [
        'cloud-init status; cat /var/lib/cloud/instance/datasource',
        'hostname -f',
        'id -nG debian',
        'cat /home/debian/.ssh/authorized_keys',
        'cat /etc/netplan/50-cloud-init.yaml',
        'readlink /etc/resolv.conf',
      ].join('; echo ---; '),
    )
    const [status, fqdn, groups, keys, netplan, resolv] = r.stdout.split('---\n').map((s) => s.trim())
    expect(status).toMatch(/^status: done/)
    expect(status).toMatch(/DataSourceNoCloud/)
    expect(fqdn).toBe('database-vm.lab.internal')
    expect(groups.split(' ')).toContain('sudo')
    expect(keys).toBe(cw.publicKey)
    // What Proxmox's ipconfig0/nameserver/searchdomain became on the machine (matched by net0's MAC).
    expect(netplan).toContain(`- ${DB_IP}/25`)
    expect(netplan).toContain(`macaddress: ${m.mac}`)
    expect(netplan).toMatch(new RegExp(`nameservers:\\s+addresses:\\s+- 10\\.99\\.${SUBNET}\\.2\\s+search:\\s+- lab\\.internal`))
    expect(resolv).toBe('/run/systemd/resolve/resolv.conf')
  })

  it('the host key the readiness pinned is the one cloud-init generated and printed for the console', async () => {
    const m = lab.machine('database-vm')
    expect(ready.firstContact).toBe(true)
    expect(ready.fingerprint).toBe(m.hostKeyFingerprint)
    // On a VM this is the serial console Proxmox shows; here the machine has no /dev/console of
    // its own, so cloud-init's output log holds what it printed.
    const consoleText = readFileSync(m.consoleLog, 'utf8') + (await m.exec('cat /var/log/cloud-init-output.log')).stdout
    const printed = /-----BEGIN SSH HOST KEY FINGERPRINTS-----([\s\S]*?)-----END SSH HOST KEY FINGERPRINTS-----/.exec(consoleText)
    expect(printed, 'cloud-init prints the host keys on the console').not.toBeNull()
    expect(printed![1]).toContain(`${m.hostKeyFingerprint} `)
  })

  it('readiness waited for cloud-init (done) and the apt locks while unattended-upgrades was running', () => {
    expect(ready.cloudInit).toBe('done')
    expect(uuDuringReadiness).toMatch(/^\d+ .*unattended-upgrade-shutdown --wait-for-signal/)
  })

  it('deploy: every base and database step ends changed or unchanged, except object storage, whose download fails at once naming its source', () => {
    const st = statuses(first, 'database')
    const notOk = Object.entries(st).filter(([, s]) => s !== 'changed' && s !== 'unchanged')
    expect(notOk, describeRun(first)).toEqual([
      ['database/seaweedfs_install', 'failed'],
      ['database/seaweedfs_config', 'skipped'],
      ['database/seaweedfs_buckets', 'skipped'],
    ])
    const step = first.json!.vms.database.steps.find((s) => s.id === 'database/seaweedfs_install')!
    expect(step.error).toMatch(/cannot reach https:\/\/github\.com\/seaweedfs\/seaweedfs\/releases\/download\//)
    expect(step.durationMs).toBeLessThan(45_000)
  })

  it('base/wait_boot finishes although unattended-upgr runs for as long as the machine is up (the old process-name check waited 10 minutes, then failed)', async () => {
    const wait = first.json!.vms.database.steps.find((s) => s.id === 'base/wait_boot')!
    expect(['changed', 'unchanged']).toContain(wait.status)
    expect(wait.durationMs).toBeLessThan(60_000)
    expect((await lab.machine('database-vm').exec('pgrep -x unattended-upgr')).code).toBe(0)
  })

  it('the cloud image keeps its own time service and the firewall is enforced', async () => {
    const m = lab.machine('database-vm')
    const r = await m.exec('systemctl is-enabled systemd-timesyncd; ufw status | head -n 1; systemctl is-active unattended-upgrades')
    expect(r.stdout.trim().split('\n')).toEqual(['enabled', 'Status: active', 'active'])
  })

  it('the databases answer their users over TCP with the generated passwords', async () => {
    for (const db of ['autolabs', 'zitadel', 'gitlab']) {
      const user = `${db}_user`
      const r = await sh('psql', ['-X', '-h', DB_IP, '-U', user, '-d', db, '-tAc', 'select current_user, current_database()'], {
        env: {PGPASSWORD: cw.secrets.postgres.users[db], PGCONNECT_TIMEOUT: '5'},
      })
      expect(r.stderr).toBe('')
      expect(r.stdout.trim()).toBe(`${user}|${db}`)
    }
  })

  it('a second deploy changes nothing', () => {
    const st = statuses(again, 'database')
    for (const [id, s] of Object.entries(st)) if (!id.startsWith('database/seaweedfs_')) expect(s, `${id}\n${describeRun(again)}`).toBe('unchanged')
  })
})
