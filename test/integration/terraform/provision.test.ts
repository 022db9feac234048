import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {afterEach, describe, expect, it} from 'vitest'

import {ExternalError, InterruptedError, UsageError} from '../../../src/errors.js'
import {destroyEnvironment} from '../../../src/steps/destroy.js'
import {PLAN_FILE, provision, type ProvisionEvent} from '../../../src/steps/provision.js'
import type {UiEvent} from '../../../src/terraform/events.js'
import {loadState} from '../../../src/workspace/state.js'
import {KEY} from '../../unit/render/fixtures.js'
import {type Env, setup} from './helpers.js'

let env: Env | undefined
afterEach(async () => {
  if (env) expect(env.sim.invalidRequests).toEqual([])
  await env?.cleanup()
  env = undefined
})

const tfEvents = (events: ProvisionEvent[]) => events.filter((e): e is {type: 'terraform'; event: UiEvent} => e.type === 'terraform').map((e) => e.event)

describe('provision with the fake terraform against the Proxmox simulator', () => {
  it('creates the image, the template and three VMs carrying the rendered values, and records them in the state', async () => {
    env = await setup()
    const {sim, ws} = env
    const events: ProvisionEvent[] = []
    const result = await provision({workspace: ws, config: env.config, terraform: env.terraform(), yes: true, onEvent: (e) => events.push(e)})

    // The plan summary: image + template + 3 VMs, nothing destroyed.
    expect(result.plan).toMatchObject({add: 5, change: 0, destroy: 0})
    // (Terraform lists planned changes by address.)
    expect(result.plan.resources.map((r) => `${r.action} ${r.address}`)).toEqual([
      'create proxmox_download_file.cloud_image',
      'create proxmox_virtual_environment_vm.database',
      'create proxmox_virtual_environment_vm.gitlab',
      'create proxmox_virtual_environment_vm.k8s',
      'create proxmox_virtual_environment_vm.template',
    ])
    // Live progress in dependency order: image → template → the clones one after another.
    const ui = tfEvents(events)
    const starts = ui.filter((e) => e.type === 'apply_start').map((e) => (e as {addr: string}).addr)
    expect(starts).toEqual([
      'proxmox_download_file.cloud_image',
      'proxmox_virtual_environment_vm.template',
      'proxmox_virtual_environment_vm.gitlab',
      'proxmox_virtual_environment_vm.database',
      'proxmox_virtual_environment_vm.k8s',
    ])
    expect(ui.filter((e) => e.type === 'apply_complete')).toHaveLength(5)
    expect(ui.find((e) => e.type === 'change_summary' && e.operation === 'apply')).toMatchObject({add: 5, change: 0, remove: 0})

    // The template, from the imported cloud image.
    const template = sim.vm(9000)
    expect(template.config.template).toBe('1')
    expect(template.config.scsi0).toMatch(/^local-lvm:base-9000-disk-0,/)
    // The hardware template.tf states (OS type, controller, serial console), as the provider sends it.
    expect([template.config.ostype, template.config.scsihw, template.config.serial0, template.config.vga]).toEqual(['l26', 'virtio-scsi-single', 'socket', 'serial0'])
    expect([...sim.state.volumes.keys()]).toContain('local:import/jammy-server-cloudimg-amd64-20261120.qcow2')

    // Each VM carries the values from autolabs.yaml's defaults (the design table).
    const expected = {gitlab: [110, 4, 8192, 100, '192.168.100.10'], database: [120, 4, 8192, 200, '192.168.100.20'], k8s: [130, 4, 8192, 200, '192.168.100.30']} as const
    for (const [role, [vmid, cores, mem, disk, ip]] of Object.entries(expected)) {
      const vm = sim.vm(vmid)
      expect(vm.config.name, role).toBe(`${role}-vm`)
      expect(vm.status).toBe('running')
      expect(vm.config.cores).toBe(String(cores))
      expect(vm.config.memory).toBe(String(mem))
      expect(vm.config.scsi0).toContain(`size=${disk}G`)
      expect(vm.config.net0).toContain('bridge=vmbr0')
      expect(vm.config.ipconfig0).toBe(`ip=${ip}/24,gw=192.168.100.1`)
      expect(vm.config.nameserver).toBe('1.1.1.1 9.9.9.9')
      expect(vm.config.ciuser).toBe('ubuntu')
      expect(decodeURIComponent(vm.config.sshkeys)).toContain(KEY)
      expect(vm.config.agent).toMatch(/^enabled=1/)
      expect([vm.config.ostype, vm.config.scsihw, vm.config.vga, vm.config.onboot]).toEqual(['l26', 'virtio-scsi-single', 'serial0', '1'])
    }

    // terraform output → .autolabs/state.json
    expect(result.vms.map((v) => [v.name, v.vmid, v.ip])).toEqual([
      ['gitlab-vm', 110, '192.168.100.10'],
      ['database-vm', 120, '192.168.100.20'],
      ['k8s-vm', 130, '192.168.100.30'],
    ])
    expect((await loadState(ws)).vms?.database).toEqual({name: 'database-vm', vmid: 120, ip: '192.168.100.20', node: 'pve'})
    // The plan file held the variable values: it is gone.
    expect(existsSync(path.join(ws.terraformDir, PLAN_FILE))).toBe(false)
    // Full output in the logs, secrets masked; never on a command line.
    const log = await readFile(path.join(ws.logsDir, 'terraform-apply.log'), 'utf8')
    expect(log).toContain('proxmox_virtual_environment_vm.k8s: Creation complete')
    expect(log).not.toContain(env.sim.adminTokenSecret)
    // `show -json` of a plan holds the variable values: only its size is logged.
    const showLog = await readFile(path.join(ws.logsDir, 'terraform-show.log'), 'utf8')
    expect(showLog).toMatch(/bytes of JSON on stdout, not logged/)
    expect(showLog).not.toContain('proxmox_api_token')
  })

  it('uses a customised config: sizes, addresses, bridge, VMIDs and the template id reach the VMs', async () => {
    env = await setup({
      proxmox: {templateVmid: 9100},
      network: {subnet: '10.99.0.0/16', gateway: '10.99.0.1', dns: ['10.99.0.53'], searchDomain: 'lab.test', vms: {gitlab: {ip: '10.99.1.10'}, database: {ip: '10.99.1.20'}, k8s: {ip: '10.99.1.30'}}},
      vms: {k8s: {name: 'kube', vmid: 330, cores: 12, memoryMiB: 16384, diskGiB: 250}},
    })
    await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true})
    const kube = env.sim.vm(330)
    expect(kube.config).toMatchObject({name: 'kube', cores: '12', memory: '16384', ipconfig0: 'ip=10.99.1.30/16,gw=10.99.0.1', nameserver: '10.99.0.53', searchdomain: 'lab.test'})
    expect(kube.config.scsi0).toContain('size=250G')
    expect(env.sim.vm(9100).config.template).toBe('1')
  })

  it('continues after a failure mid-apply: the re-run creates only what is missing', async () => {
    env = await setup()
    const failing = provision({workspace: env.ws, config: env.config, terraform: env.terraform({FAKE_TF_FAIL_ON: 'proxmox_virtual_environment_vm.database'}), yes: true})
    const error = await failing.catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ExternalError)
    expect((error as ExternalError).stderrTail).toContain('injected failure')
    expect((error as ExternalError).stderrTail).toContain('proxmox_virtual_environment_vm.database')
    expect((error as ExternalError).logPath).toBe(path.join(env.ws.logsDir, 'terraform-apply.log'))
    expect((error as ExternalError).suggestion).toMatch(/run `autolabs init` again/)
    // gitlab exists, database failed, k8s (after it) was not started.
    expect(env.sim.state.vms.has(110)).toBe(true)
    expect(env.sim.state.vms.has(120)).toBe(false)
    expect(env.sim.state.vms.has(130)).toBe(false)

    const events: ProvisionEvent[] = []
    const again = await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true, onEvent: (e) => events.push(e)})
    expect(again.plan.resources.map((r) => r.address)).toEqual(['proxmox_virtual_environment_vm.database', 'proxmox_virtual_environment_vm.k8s'])
    expect([...env.sim.state.vms.keys()].sort()).toEqual([110, 120, 130, 9000])

    // A third run has nothing to do and does not ask.
    const third = await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: false})
    expect(third.applied).toBe(false)
    expect(third.plan.resources).toEqual([])
  })

  it('replaces a VM that failed after its clone (tainted), so the re-run ends with a clean VM', async () => {
    env = await setup()
    const failed = await provision({workspace: env.ws, config: env.config, terraform: env.terraform({FAKE_TF_FAIL_ON: 'proxmox_virtual_environment_vm.gitlab@start'}), yes: true}).catch((e: unknown) => e)
    expect(failed).toBeInstanceOf(ExternalError)
    // The half-made VM exists in Proxmox, stopped.
    expect(env.sim.vm(110).status).toBe('stopped')
    const again = await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true})
    expect(again.plan.resources.map((r) => `${r.action} ${r.address}`)).toEqual([
      'create proxmox_virtual_environment_vm.database',
      'replace proxmox_virtual_environment_vm.gitlab',
      'create proxmox_virtual_environment_vm.k8s',
    ])
    expect(again.plan).toMatchObject({add: 3, destroy: 1})
    expect(env.sim.vm(110).status).toBe('running')
    expect([...env.sim.state.vms.keys()].sort()).toEqual([110, 120, 130, 9000])
  })

  it('lets Proxmox verify the pinned checksum: a different image fails the download, and nothing is cloned', async () => {
    env = await setup({}, {actualSha256: 'bad'.padEnd(64, '1')})
    const err = await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true}).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ExternalError)
    expect((err as ExternalError).stderrTail).toMatch(/checksum mismatch/)
    expect((err as ExternalError).stderrTail).toContain('proxmox_download_file.cloud_image')
    expect(env.sim.state.vms.size).toBe(0)
    expect([...env.sim.state.volumes.keys()].filter((v) => v.includes(':import/'))).toEqual([])
  })

  it('asks before applying, and without a terminal refuses with the --yes hint', async () => {
    env = await setup()
    await expect(provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: false})).rejects.toThrow(UsageError)
    await expect(provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: false})).rejects.toMatchObject({suggestion: expect.stringContaining('--yes')})
    let shown = ''
    let planMode = 0
    await expect(
      provision({
        workspace: env.ws,
        config: env.config,
        terraform: env.terraform(),
        yes: false,
        confirm: async (_s, text) => {
          shown = text
          // The plan file holds the variable values (the token): readable by the owner only.
          const {stat} = await import('node:fs/promises')
          planMode = (await stat(path.join(env!.ws.terraformDir, PLAN_FILE))).mode & 0o777
          return false
        },
      }),
    ).rejects.toThrow(/declined/)
    expect(shown).toContain('Plan: 5 to add, 0 to change, 0 to destroy.')
    expect(planMode).toBe(0o600)
    expect(existsSync(path.join(env.ws.terraformDir, PLAN_FILE))).toBe(false)
    expect(shown).toContain('proxmox_virtual_environment_vm.k8s (k8s-vm): create')
    expect(env.sim.state.vms.size).toBe(0)
  })

  it('stops gracefully on Ctrl+C: terraform saves its state and a re-run continues', async () => {
    env = await setup()
    const tf = env.terraform({FAKE_TF_SLOW_MS: '400'})
    let sent = false
    const run = provision({
      workspace: env.ws,
      config: env.config,
      terraform: tf,
      yes: true,
      onEvent: (e) => {
        // Interrupt while the template is being created.
        if (!sent && e.type === 'terraform' && e.event.type === 'apply_start' && e.event.addr === 'proxmox_virtual_environment_vm.template') {
          sent = true
          env!.signals.emit('SIGINT')
        }
      },
    })
    await expect(run).rejects.toBeInstanceOf(InterruptedError)
    // The running operation finished and was saved; nothing after it started.
    const state = JSON.parse(await readFile(path.join(env.ws.terraformDir, 'terraform.tfstate'), 'utf8')) as {resources: Array<{name: string}>}
    expect(state.resources.map((r) => r.name)).toEqual(['cloud_image', 'template'])
    expect(env.sim.state.vms.has(110)).toBe(false)
    const log = await readFile(path.join(env.ws.logsDir, 'terraform-apply.log'), 'utf8')
    expect(log).toContain('Ctrl+C #1 forwarded')
    expect(log).toContain('execution halted')

    const again = await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true})
    expect(again.plan.resources.map((r) => r.address)).toEqual(['proxmox_virtual_environment_vm.database', 'proxmox_virtual_environment_vm.gitlab', 'proxmox_virtual_environment_vm.k8s'])
  })

  it('destroys everything after typing the environment name, forgetting host keys and deployment state', async () => {
    env = await setup()
    await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true})
    const {writeFile} = await import('node:fs/promises')
    await writeFile(env.ws.knownHostsFile, '192.168.100.10 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA autolabs:gitlab-vm\nother.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB\n', {mode: 0o600})

    await expect(destroyEnvironment({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: false, purge: false})).rejects.toThrow(UsageError)
    await expect(
      destroyEnvironment({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: false, purge: false, confirmName: async () => 'wrong-name'}),
    ).rejects.toThrow(/Nothing was changed/)
    expect(env.sim.state.vms.size).toBe(4)

    let listed: string[] = []
    const result = await destroyEnvironment({
      workspace: env.ws,
      config: env.config,
      terraform: env.terraform(),
      yes: false,
      purge: false,
      confirmName: async (expected, resources) => {
        listed = resources.map((r) => r.address)
        return expected
      },
    })
    expect(listed).toHaveLength(5)
    expect(env.sim.state.vms.size).toBe(0)
    expect([...env.sim.state.volumes.keys()].filter((v) => v.includes('import/'))).toEqual([])
    expect(result.forgottenHostKeys).toBe(1)
    expect(await readFile(env.ws.knownHostsFile, 'utf8')).toContain('other.example')
    expect((await loadState(env.ws)).vms).toBeUndefined()
    // Secrets and backups stay without --purge.
    expect(existsSync(env.ws.secretsFile)).toBe(true)
    expect(result.kept).toContain(env.ws.secretsFile)
    // Nothing left: a second destroy is a no-op.
    const again = await destroyEnvironment({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: false, purge: true})
    expect(again.destroyed).toEqual([])
    expect(existsSync(env.ws.secretsFile)).toBe(false)
  })

  it('destroys nothing, and needs no terraform, in a workspace that was never provisioned', async () => {
    env = await setup()
    const result = await destroyEnvironment({workspace: env.ws, config: env.config, terraform: env.terraform({}), yes: false, purge: false})
    expect(result.destroyed).toEqual([])
    const {readdir} = await import('node:fs/promises')
    expect(existsSync(env.ws.logsDir) ? await readdir(env.ws.logsDir) : []).toEqual([])
  })

  it('skips TLS verification only on the explicit insecure opt-in, and says so', async () => {
    env = await setup({proxmox: {insecure: true, fingerprint: null}})
    const warnings: string[] = []
    const result = await provision({
      workspace: env.ws,
      config: env.config,
      terraform: env.terraform(),
      yes: true,
      onEvent: (e) => {
        if (e.type === 'warning') warnings.push(e.message)
      },
    })
    expect(result.applied).toBe(true)
    expect(JSON.parse(await readFile(env.ws.tfvarsFile, 'utf8')).proxmox_insecure).toBe(true)
    expect(warnings).toEqual([expect.stringContaining('TLS verification of the Proxmox API is OFF')])
  })

  it('verifies TLS: without the pinned certificate the provider refuses the simulator', async () => {
    env = await setup()
    // The system roots only (no autolabs bundle): like Go, the fake then cannot verify the
    // simulator's self-signed certificate, and apply fails on the first API call.
    const tf = env.terraform({SSL_CERT_FILE: '/etc/ssl/certs/ca-certificates.crt'})
    await tf.init()
    await tf.plan('x.tfplan')
    const err = await tf.apply('x.tfplan').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ExternalError)
    expect((err as ExternalError).stderrTail).toMatch(/certificate/i)
    expect(env.sim.state.vms.size).toBe(0)
  })
})
