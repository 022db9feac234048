import {chmod, copyFile, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parse, stringify} from 'yaml'

import {type CliResult, runCli, ROOT} from '../support/cli.js'
import {labAvailable, type Lab, startLab} from '../support/lab/lab.js'
import {type PveSim, startPveSim} from '../support/pve-sim/index.mjs'
import {sh} from './deploy-support.js'

/**
 * `autolabs init` end to end, as an administrator runs it, through the built CLI:
 * the Proxmox simulator (schema-validated API) stands in for the server, the fake terraform
 * creates the template and the VMs in it from the rendered tfvars, and three real systemd
 * machines answer at the VMs' addresses — so readiness and host-key pinning are real.
 * The stages themselves are proven by the deploy lab tests (--skip-deploy here keeps it short).
 */
const avail = labAvailable()
const SUBNET = 77
const IP = {gitlab: `10.99.${SUBNET}.10`, database: `10.99.${SUBNET}.20`, k8s: `10.99.${SUBNET}.30`}
const FAKE_TERRAFORM = path.join(ROOT, 'test/support/fake-terraform/terraform')

describe.skipIf(!avail.ok)(`init end to end: simulator + Terraform + lab machines${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let lab: Lab
  let sim: PveSim
  let dir: string
  let tfCalls: string
  const cliEnv = () => ({
    AUTOLABS_PROXMOX_TOKEN_SECRET: sim.adminTokenSecret,
    AUTOLABS_TERRAFORM: FAKE_TERRAFORM,
    FAKE_TF_AGENT_WAIT_MS: '200',
    FAKE_TF_PROGRESS_MS: '50',
    FAKE_TF_CALLS: tfCalls,
    AUTOLABS_TERRAFORM_PASS_ENV: 'FAKE_TF_AGENT_WAIT_MS,FAKE_TF_PROGRESS_MS,FAKE_TF_CALLS',
    // The key is the workspace's (an agent on the machine running the tests must not stand in for it).
    SSH_AUTH_SOCK: '',
  })
  const init = (extra: string[] = [], env: Record<string, string> = {}) =>
    runCli(['init', '--yes', '--skip-deploy', '--json', '--dir', dir, '--proxmox-fingerprint', sim.fingerprint, ...extra], {env: {...cliEnv(), ...env}, timeoutMs: 300_000})
  /** The Terraform commands the next init runs (`version`, `init`, `plan`, `apply`, `output`…). */
  const tfCommands = async (run: () => Promise<CliResult>) => {
    await writeFile(tfCalls, '')
    const r = await run()
    const argv = (await readFile(tfCalls, 'utf8')).trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as {argv: string[]}).argv[0])
    return {r, argv}
  }
  const editConfig = async (edit: (c: Record<string, any>) => void) => {
    const c = parse(await readFile(path.join(dir, 'autolabs.yaml'), 'utf8')) as Record<string, any>
    edit(c)
    await writeFile(path.join(dir, 'autolabs.yaml'), stringify(c))
  }

  beforeAll(async () => {
    ;[lab, sim] = await Promise.all([
      startLab({name: 'init-e2e', subnet: SUBNET, machines: [{name: 'gitlab-vm', ip: IP.gitlab}, {name: 'database-vm', ip: IP.database}, {name: 'k8s-vm', ip: IP.k8s}]}),
      startPveSim({version: '9.1'}),
    ])
    dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-e2e-'))
    tfCalls = `${dir}.tf-calls`
    // An administrator's starting point: the network and image chosen, everything else asked for.
    await writeFile(
      path.join(dir, 'autolabs.yaml'),
      stringify({
        name: 'e2e',
        proxmox: {url: sim.url, node: sim.node, tokenId: sim.adminTokenId},
        // As init pins it: a dated (immutable) build with its checksum.
        image: {os: 'debian-12', url: 'https://cloud.debian.org/images/cloud/bookworm/20261110-2293/debian-12-genericcloud-amd64-20261110-2293.qcow2', checksum: 'ab'.repeat(64)},
        network: {subnet: `10.99.${SUBNET}.0/24`, gateway: lab.gateway, vms: {gitlab: {ip: IP.gitlab}, database: {ip: IP.database}, k8s: {ip: IP.k8s}}},
        ssh: {publicKeyFile: `${lab.keyPath}.pub`, privateKeyFile: lab.keyPath, user: lab.machines[0].user},
        services: {kubernetes: {serviceCidr: '172.30.0.0/16'}},
      }),
    )
  })

  afterAll(async () => {
    await Promise.all([lab?.stop(), sim?.stop()])
    if (dir) await rm(dir, {recursive: true, force: true})
    if (tfCalls) await rm(tfCalls, {force: true})
  })

  it('creates the least-privilege token, the template and three VMs, and pins their host keys', async () => {
    const r = await init()
    expect(r.exitCode, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.trust).toBe('pinned')
    expect(out.preflight.filter((c: {status: string}) => c.status === 'fail')).toEqual([])
    // The VMs exist in Proxmox with the rendered values
    const vms = [...sim.state.vms.values()]
    expect(vms.map((v) => v.config.name).sort()).toEqual(['database-vm', 'e2e-debian-12-template', 'gitlab-vm', 'k8s-vm'].sort())
    const db = vms.find((v) => v.config.name === 'database-vm')!
    expect(db.vmid).toBe(120)
    expect(db.config.ipconfig0).toContain(IP.database)
    expect(db.config.memory).toBe('8192')
    // Terraform ran with the least-privilege token, not the administrator's
    const secrets = parse(await readFile(path.join(dir, '.autolabs/secrets.yaml'), 'utf8'))
    expect(secrets.proxmox.terraformTokenId).toBe('autolabs@pve!terraform')
    const tfvars = await readFile(path.join(dir, 'terraform/terraform.tfvars.json'), 'utf8')
    expect(tfvars).toContain('autolabs@pve!terraform')
    expect(tfvars).not.toContain(sim.adminTokenSecret)
    expect(sim.state.users.get('autolabs@pve')?.tokens.get('terraform')?.privsep).toBe(1)
    // Every VM's host key is pinned, and it is the machine's real key
    const kh = await readFile(path.join(dir, '.autolabs/known_hosts'), 'utf8')
    expect(lab.machines).toHaveLength(3)
    for (const m of lab.machines) expect(kh).toContain(m.ip)
    expect(out.ready).toHaveLength(3)
    for (const ready of out.ready as Array<{name: string; fingerprint: string; firstContact: boolean}>) {
      expect(ready.firstContact).toBe(true)
      expect(ready.fingerprint).toBe(lab.machine(ready.name).hostKeyFingerprint)
    }
    // No secret reached the output
    for (const s of [sim.adminTokenSecret, secrets.proxmox.terraformTokenSecret, secrets.postgres.superuser]) expect(r.stdout + r.stderr).not.toContain(s)
    expect(sim.invalidRequests).toEqual([])
  })

  it('changes nothing when run again: same token, same VMs, host keys verified', async () => {
    const vmsBefore = sim.state.vms.size
    const r = await init()
    expect(r.exitCode, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.terraformAccess.changes).toEqual([])
    expect(out.ready).toHaveLength(3)
    expect(out.ready.every((x: {firstContact: boolean}) => !x.firstContact)).toBe(true)
    expect(sim.state.vms.size).toBe(vmsBefore)
    expect(sim.invalidRequests).toEqual([])
  })

  it('refuses a VM whose SSH key is not the one the guest agent reports', async () => {
    // The guest agent (authenticated API) says k8s-vm has another key than the machine at its address.
    await runCli(['hosts', 'forget', 'k8s-vm', '--dir', dir])
    const k8s = [...sim.state.vms.values()].find((v) => v.config.name === 'k8s-vm')!
    sim.setAgentRunning(k8s.vmid, true)
    sim.setAgentFile(k8s.vmid, '/etc/ssh/ssh_host_ed25519_key.pub', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@other\n')
    const r = await init()
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toContain('k8s-vm')
    expect(r.stderr).toMatch(/refuses to connect/)
    expect(await readFile(path.join(dir, '.autolabs/known_hosts'), 'utf8')).not.toContain(IP.k8s)

    // With the agent reporting the machine's real key, the first contact is cross-checked, not trusted blindly.
    const real = await lab.machine('k8s-vm').exec('cat /etc/ssh/ssh_host_ed25519_key.pub')
    sim.setAgentFile(k8s.vmid, '/etc/ssh/ssh_host_ed25519_key.pub', real.stdout)
    const ok = await init()
    expect(ok.exitCode, ok.stderr).toBe(0)
    expect(await readFile(path.join(dir, '.autolabs/known_hosts'), 'utf8')).toContain(IP.k8s)
    expect(sim.invalidRequests).toEqual([])
  })

  it('re-creates a token whose secret was lost only with --rotate-token', async () => {
    const file = path.join(dir, '.autolabs/secrets.yaml')
    const secrets = parse(await readFile(file, 'utf8'))
    const old = secrets.proxmox.terraformTokenSecret
    delete secrets.proxmox.terraformTokenSecret
    await writeFile(file, stringify(secrets), {mode: 0o600})
    const refused = await init()
    expect(refused.exitCode).toBe(1)
    expect(refused.stderr).toContain('--rotate-token')
    const rotated = await init(['--rotate-token'])
    expect(rotated.exitCode, rotated.stderr).toBe(0)
    const now = parse(await readFile(file, 'utf8')).proxmox.terraformTokenSecret
    expect(now).toBeTruthy()
    expect(now).not.toBe(old)
    expect(rotated.stdout + rotated.stderr).not.toContain(now)
    expect(sim.invalidRequests).toEqual([])
  })

  it('a plan that replaces the template (a newer image pinned by hand) is refused without --allow-replace, nothing applied; with it the template is rebuilt', async () => {
    const vmsBefore = () => JSON.stringify([110, 120, 130].map((id) => sim.vm(id).config))
    const vms = vmsBefore()
    const template = JSON.stringify(sim.vm(9000).config)
    const imports = () => [...sim.state.volumes.keys()].filter((v) => v.startsWith('local:import/'))
    expect(imports()).toEqual([expect.stringContaining('20261110-2293')])
    await editConfig((c) => {
      c.image = {...c.image, url: 'https://cloud.debian.org/images/cloud/bookworm/20261201-2310/debian-12-genericcloud-amd64-20261201-2310.qcow2', checksum: 'cd'.repeat(64)}
    })

    const refused = await tfCommands(() => init())
    expect(refused.r.exitCode, refused.r.stderr).toBe(2)
    expect(refused.r.stderr).toContain("Not applied: the plan would destroy or replace e2e-debian-12-template, and with it the VM's disks.")
    expect(refused.r.stderr).toContain('run again with --allow-replace (--yes alone is not enough)')
    // Planned, never applied: Proxmox holds the same template, VMs and image.
    expect(refused.argv).toContain('plan')
    expect(refused.argv).not.toContain('apply')
    expect(JSON.stringify(sim.vm(9000).config)).toBe(template)
    expect(imports()).toEqual([expect.stringContaining('20261110-2293')])

    const applied = await tfCommands(() => init(['--allow-replace']))
    expect(applied.r.exitCode, applied.r.stderr).toBe(0)
    expect(applied.argv).toContain('apply')
    // The template is rebuilt from the new image; the VMs are full clones and keep their disks.
    expect(imports()).toEqual([expect.stringContaining('20261201-2310')])
    expect(JSON.stringify(sim.vm(9000).config)).not.toBe(template)
    expect(sim.vm(9000).config.template).toBe('1')
    expect(vmsBefore()).toBe(vms)
    const ready = (JSON.parse(applied.r.stdout) as {ready: Array<{name: string; firstContact: boolean}>}).ready
    expect(ready.map((x) => [x.name, x.firstContact]).sort()).toEqual([['database-vm', false], ['gitlab-vm', false], ['k8s-vm', false]])
    expect(sim.invalidRequests).toEqual([])
  })

  it('a changed VMID: init refuses to replace k8s-vm without --allow-replace; with AUTOLABS_ALLOW_REPLACE the VM is replaced and the new machine\'s host key pinned', async () => {
    expect(sim.vm(130).config.name).toBe('k8s-vm')
    await editConfig((c) => {
      c.vms = {...c.vms, k8s: {...c.vms?.k8s, vmid: 131}}
    })
    // Preflight lets it through (the address is k8s-vm's own, under its old VMID); the plan guard stops it.
    const refused = await tfCommands(() => init())
    expect(refused.r.exitCode, refused.r.stderr).toBe(2)
    expect(refused.r.stderr).toContain("Not applied: the plan would destroy or replace k8s-vm, and with it the VM's disks.")
    expect(refused.argv).not.toContain('apply')
    expect(sim.state.vms.has(131)).toBe(false)
    expect(sim.vm(130).config.name).toBe('k8s-vm')

    // The replacement is a new machine at the same address: new SSH host keys.
    const m = lab.machine('k8s-vm')
    const keygen = await m.exec('rm -f /etc/ssh/ssh_host_*key* && ssh-keygen -A >/dev/null && systemctl restart ssh && ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub')
    expect(keygen.code, keygen.stderr).toBe(0)
    const newKey = keygen.stdout.split(' ')[1]
    expect(newKey).not.toBe(m.hostKeyFingerprint)

    // This time through the flag's environment name.
    const applied = await tfCommands(() => init([], {AUTOLABS_ALLOW_REPLACE: 'true'}))
    expect(applied.r.exitCode, applied.r.stderr).toBe(0)
    expect(sim.state.vms.has(130)).toBe(false)
    expect(sim.vm(131).config.name).toBe('k8s-vm')
    // The old VM's pinned key went with it: the new one is a first contact, not a "changed key" refusal.
    const ready = (JSON.parse(applied.r.stdout) as {ready: Array<{name: string; fingerprint: string; firstContact: boolean}>}).ready
    expect(ready.find((x) => x.name === 'k8s-vm')).toMatchObject({fingerprint: newKey, firstContact: true})
    expect(ready.filter((x) => x.name !== 'k8s-vm').map((x) => x.firstContact)).toEqual([false, false])
    expect(sim.invalidRequests).toEqual([])
  })

  it('a passphrase-protected key: --ssh-passphrase-file unlocks it and init reaches the machines; a wrong passphrase stops before Terraform and SSH', async () => {
    // The lab's key, protected by a passphrase (same key: the machines accept it).
    const keys = await mkdtemp(path.join(os.tmpdir(), 'autolabs-e2e-key-'))
    const key = path.join(keys, 'id_ed25519')
    const passphrase = 'correct horse battery staple'
    try {
      await copyFile(lab.keyPath, key)
      await copyFile(`${lab.keyPath}.pub`, `${key}.pub`)
      await chmod(key, 0o600)
      const kg = await sh('ssh-keygen', ['-q', '-p', '-P', '', '-N', passphrase, '-f', key])
      expect(kg.code, kg.stderr).toBe(0)
      expect(await readFile(key, 'utf8')).not.toBe(await readFile(lab.keyPath, 'utf8'))
      await writeFile(path.join(keys, 'right'), `${passphrase}\n`, {mode: 0o600})
      await writeFile(path.join(keys, 'wrong'), 'not the passphrase\n', {mode: 0o600})
      await editConfig((c) => {
        c.ssh = {...c.ssh, privateKeyFile: key, publicKeyFile: `${key}.pub`}
      })
      const pinned = await readFile(path.join(dir, '.autolabs/known_hosts'), 'utf8')

      const wrong = await tfCommands(() => init(['--ssh-passphrase-file', path.join(keys, 'wrong')]))
      expect(wrong.r.exitCode, wrong.r.stderr).toBe(2)
      expect(wrong.r.stderr).toContain(`The passphrase for the SSH key ${key} is wrong (from --ssh-passphrase-file).`)
      // Settled before Terraform (only its version was asked: init, then preflight), hence before any SSH connection.
      expect([...new Set(wrong.argv)]).toEqual(['version'])
      expect(await readFile(path.join(dir, '.autolabs/known_hosts'), 'utf8')).toBe(pinned)

      const right = await tfCommands(() => init(['--ssh-passphrase-file', path.join(keys, 'right')]))
      expect(right.r.exitCode, right.r.stderr).toBe(0)
      const ready = (JSON.parse(right.r.stdout) as {ready: Array<{name: string; firstContact: boolean}>}).ready
      expect(ready.map((x) => x.name).sort()).toEqual(['database-vm', 'gitlab-vm', 'k8s-vm'])
      expect(ready.every((x) => !x.firstContact)).toBe(true)
      expect(right.r.stdout + right.r.stderr).not.toContain(passphrase)
    } finally {
      await editConfig((c) => {
        c.ssh = {...c.ssh, privateKeyFile: lab.keyPath, publicKeyFile: `${lab.keyPath}.pub`}
      })
      await rm(keys, {recursive: true, force: true})
    }
  })
})
