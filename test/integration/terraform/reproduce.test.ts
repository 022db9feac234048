import {execFile} from 'node:child_process'
import {EventEmitter} from 'node:events'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'

import {afterAll, describe, expect, it} from 'vitest'
import {parse, stringify} from 'yaml'

import {loadConfig} from '../../../src/config/load.js'
import {provision} from '../../../src/steps/provision.js'
import {Terraform} from '../../../src/terraform/terraform.js'
import {terraformTlsEnv} from '../../../src/terraform/tls.js'
import {Workspace} from '../../../src/workspace/workspace.js'
import {removeDir, runCli, tempDir} from '../../support/cli.js'
import {type PveSim, startPveSim} from '../../support/pve-sim/index.mjs'
import {KEY} from '../../unit/render/fixtures.js'
import {FAKE_TERRAFORM, IMAGE_SHA256, IMAGE_URL} from './helpers.js'

// A teacher's reproduction, end to end: the administrator's workspace goes into Git; a teacher
// clones it on another machine and runs init against another Proxmox server. The same plan must
// come out (image URL and checksum, versions, sizes, addresses), with secrets of its own, and the
// repository must hold no secret.

const git = (cwd: string, ...args: string[]) => promisify(execFile)('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.org', '-c', 'init.defaultBranch=main', ...args], {cwd})
const sims: PveSim[] = []
const dirs: string[] = []
afterAll(async () => {
  for (const s of sims) expect(s.invalidRequests).toEqual([])
  await Promise.all(sims.map((s) => s.stop()))
  await Promise.all(dirs.map((d) => removeDir(d)))
})

/** Every string leaf of a parsed secrets.yaml that is long enough to be a generated secret. */
function secretValues(tree: unknown): string[] {
  if (typeof tree === 'string') return tree.length >= 16 ? [tree] : []
  if (tree && typeof tree === 'object') return Object.values(tree).flatMap(secretValues)
  return []
}

async function server(version: '9.1' | '8.4') {
  const sim = await startPveSim({version})
  sims.push(sim)
  sim.setStorage('local', {content: ['iso', 'vztmpl', 'backup', 'import']})
  sim.state.downloads.set(IMAGE_URL, {size: 700 * 1024 * 1024, sha256: IMAGE_SHA256})
  return sim
}

/** init (workspace, secrets, terraform/) against `sim`, then Terraform with the fake provider. */
async function initAndApply(dir: string, sim: PveSim) {
  const r = await runCli(['init', '--dry-run', '--yes', '--json', '--dir', dir, '--proxmox-url', sim.url, '--proxmox-fingerprint', sim.fingerprint])
  expect(r.exitCode, r.stderr).toBe(0)
  const ws = new Workspace(dir)
  const {config} = await loadConfig(ws)
  const terraform = new Terraform({
    cwd: ws.terraformDir,
    logsDir: ws.logsDir,
    bin: FAKE_TERRAFORM,
    signals: new EventEmitter(),
    // The least-privilege token is created by a real init; here the provider takes the server's
    // token from its own environment variable (terraform.tfvars.json leaves it null).
    env: {...(await terraformTlsEnv(ws, config)), PROXMOX_VE_API_TOKEN: `${sim.adminTokenId}=${sim.adminTokenSecret}`, FAKE_TF_PROGRESS_MS: '100'},
  })
  sim.clearRequests()
  const result = await provision({workspace: ws, config, terraform, yes: true})
  const download = sim.requests.find((q) => q.method === 'POST' && q.path.endsWith('/download-url')) as {params: Record<string, string>}
  const vms = Object.fromEntries([...sim.state.vms.values()].map((vm) => [vm.vmid, vm.config]))
  return {config, plan: result.plan, download: download.params, vms}
}

/** A VM's configuration without what each server assigns on its own (MACs, generation ids, volume names). */
const portable = (vms: Record<string, Record<string, string>>) =>
  Object.fromEntries(
    Object.entries(vms).map(([id, c]) => {
      const {vmgenid: _g, smbios1: _s, meta: _m, net0, scsi0, ide2: _i, ...rest} = c
      return [id, {...rest, net0: net0?.replace(/=[0-9A-F:]{17}/i, '=MAC'), scsi0: scsi0?.replace(/vm-\d+-disk-\d+/, 'DISK')}]
    }),
  )

describe("a teacher's reproduction from the Git repository", () => {
  it('gives the same plan on a second server, with new secrets, and the repository holds no secret', {timeout: 300_000}, async () => {
    const [adminSim, teacherSim] = await Promise.all([server('9.1'), server('8.4')])
    const root = await tempDir('autolabs-repro-')
    dirs.push(root)
    const keyFile = path.join(root, 'id_ed25519.pub')
    await writeFile(keyFile, `${KEY}\n`)

    // The administrator: a workspace made by init (the image as init pins it), provisioned.
    const admin = path.join(root, 'admin')
    await runCli(['init', '--dry-run', '--yes', '--dir', admin, '--ssh-public-key', keyFile])
    const yaml = parse(await readFile(path.join(admin, 'autolabs.yaml'), 'utf8'))
    yaml.image = {...yaml.image, url: IMAGE_URL, checksum: IMAGE_SHA256}
    await writeFile(path.join(admin, 'autolabs.yaml'), stringify(yaml))
    const first = await initAndApply(admin, adminSim)

    // ... committed to Git, exactly as the workspace's .gitignore allows.
    await git(admin, 'init', '-q')
    await git(admin, 'add', '-A')
    await git(admin, 'commit', '-qm', 'AutoLabs environment')
    const committed = (await git(admin, 'ls-files')).stdout.trim().split('\n')
    expect(committed).toEqual(expect.arrayContaining(['.gitignore', 'autolabs.yaml', 'terraform/providers.tf', 'terraform/template.tf', 'terraform/gitlab-vm.tf']))
    expect(committed.filter((f) => f.startsWith('.autolabs/') || /tfvars|tfstate|tfplan|\.terraform\//.test(f))).toEqual([])
    const adminSecrets = secretValues(parse(await readFile(path.join(admin, '.autolabs/secrets.yaml'), 'utf8')))
    expect(adminSecrets.length).toBeGreaterThan(5)
    for (const f of committed) {
      const text = await readFile(path.join(admin, f), 'utf8')
      for (const s of [...adminSecrets, adminSim.adminTokenSecret]) expect(text.includes(s), `${f} holds a secret`).toBe(false)
    }

    // The teacher: a clone on another machine, init against another server.
    const teacher = path.join(root, 'teacher')
    await git(root, 'clone', '-q', admin, teacher)
    const second = await initAndApply(teacher, teacherSim)

    // The same plan: image URL and checksum, versions, every VM's settings.
    expect(second.download).toEqual(first.download)
    expect(second.download).toMatchObject({url: IMAGE_URL, checksum: IMAGE_SHA256, 'checksum-algorithm': 'sha256'})
    expect(second.config.services).toEqual(first.config.services)
    expect(second.config.image).toEqual(first.config.image)
    expect(second.plan.resources).toEqual(first.plan.resources)
    expect(Object.keys(first.vms).sort()).toEqual(['110', '120', '130', '9000'])
    expect(first.vms['120']).toMatchObject({cores: '4', memory: '8192', ipconfig0: 'ip=192.168.100.20/24,gw=192.168.100.1'})
    expect(portable(second.vms)).toEqual(portable(first.vms))
    // Only the server differs in autolabs.yaml.
    expect({...second.config, proxmox: {}}).toEqual({...first.config, proxmox: {}})
    expect(second.config.proxmox.url).toBe(teacherSim.url)

    // Secrets of its own, none of the administrator's.
    const teacherSecrets = secretValues(parse(await readFile(path.join(teacher, '.autolabs/secrets.yaml'), 'utf8')))
    expect(teacherSecrets.length).toBe(adminSecrets.length)
    for (const s of teacherSecrets) expect(adminSecrets).not.toContain(s)
  })
})
