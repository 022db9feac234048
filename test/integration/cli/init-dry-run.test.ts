import {readFile, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {parse} from 'yaml'

import {removeDir, runCli, snapshotTree, tempDir} from '../../support/cli.js'

const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => removeDir(d))))
async function freshDir() {
  const d = await tempDir()
  dirs.push(d)
  return d
}
const mode = async (p: string) => ((await stat(p)).mode & 0o777).toString(8)

describe('init --dry-run --yes (every default, no server)', () => {
  it('writes the whole workspace with safe modes and prints the plan', async () => {
    // Given an empty directory
    const dir = await freshDir()
    // When the dry run runs with every default
    const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir])
    // Then it succeeds and prints the VM table and the stages with their steps per VM
    expect(r.exitCode, r.stderr).toBe(0)
    for (const s of ['gitlab-vm', 'database-vm', 'k8s-vm', '192.168.100.10', '192.168.100.20', '192.168.100.30', '9000', 'Wait for cloud-init and the apt lock', 'Create databases and their users', 'Remove the control-plane taint'])
      expect(r.stdout).toContain(s)
    expect(r.stderr).toContain('nothing was contacted')
    // And the workspace has every file, secrets and tfvars readable by the owner only
    expect(await mode(path.join(dir, '.autolabs'))).toBe('700')
    expect(await mode(path.join(dir, '.autolabs/secrets.yaml'))).toBe('600')
    expect(await mode(path.join(dir, 'terraform/terraform.tfvars.json'))).toBe('600')
    expect(await mode(path.join(dir, '.autolabs/state.json'))).toBe('600')
    expect(await mode(path.join(dir, '.autolabs/known_hosts'))).toBe('600')
    for (const f of ['providers.tf', 'variables.tf', 'outputs.tf', 'gitlab-vm.tf', 'database-vm.tf', 'k8s-vm.tf']) expect(await mode(path.join(dir, 'terraform', f))).toBe('644')
    // And the .gitignore covers secrets, tfvars, tfstate, logs, kubeconfig and backups
    const gi = await readFile(path.join(dir, '.gitignore'), 'utf8')
    for (const p of ['.autolabs/', 'terraform/terraform.tfvars.json', 'terraform/*.tfstate', 'backups/', 'kubeconfig']) expect(gi).toContain(p)
  })

  it('generates every secret with enough entropy, and never prints one', async () => {
    const dir = await freshDir()
    const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir])
    const secrets = parse(await readFile(path.join(dir, '.autolabs/secrets.yaml'), 'utf8'))
    const values = [secrets.postgres.superuser, ...Object.values(secrets.postgres.users), secrets.redis.password, secrets.objectStorage.secretKey, secrets.gitlab.rootPassword] as string[]
    expect(Object.keys(secrets.postgres.users).sort()).toEqual(['autolabs', 'gitlab', 'zitadel'])
    expect(new Set(values).size).toBe(values.length)
    for (const v of values) {
      expect(v.length).toBeGreaterThanOrEqual(32)
      expect(r.stdout + r.stderr).not.toContain(v)
    }
    // No secret in any .tf file or in autolabs.yaml
    const tree = await snapshotTree(dir)
    for (const f of Object.keys(tree).filter((f) => f.endsWith('.tf') || f === 'autolabs.yaml')) {
      const text = await readFile(path.join(dir, f), 'utf8')
      expect(values.length).toBeGreaterThan(0)
      for (const v of values) expect(text).not.toContain(v)
    }
  })

  it('prints only the plan as JSON on stdout under --json', async () => {
    const dir = await freshDir()
    const r = await runCli(['init', '--dry-run', '--yes', '--json', '--dir', dir])
    expect(r.exitCode).toBe(0)
    const body = JSON.parse(r.stdout)
    expect(body.dryRun).toBe(true)
    expect(body.plan.vms.map((v: {name: string}) => v.name)).toEqual(['gitlab-vm', 'database-vm', 'k8s-vm'])
    expect(body.plan.totals).toEqual({cores: 12, memoryMiB: 24576, diskGiB: 500})
    expect(body.plan.stages.map((s: {id: string}) => s.id)).toEqual(['proxmox', 'terraform', 'base', 'gitlab', 'database', 'k8s'])
    expect(body.plan.files).toContain('terraform/terraform.tfvars.json')
  })

  it('takes answers from flags and AUTOLABS_* variables', async () => {
    const dir = await freshDir()
    const r = await runCli(['init', '--dry-run', '--yes', '--json', '--dir', dir, '--k8s-cores', '8', '--k8s-memory', '16G', '--os', 'debian-12'], {
      env: {AUTOLABS_SUBNET: '10.20.0.0/24', AUTOLABS_GATEWAY: '10.20.0.1', AUTOLABS_GITLAB_IP: '10.20.0.10', AUTOLABS_DATABASE_IP: '10.20.0.20', AUTOLABS_K8S_IP: '10.20.0.30', AUTOLABS_PROXMOX_URL: 'pve.lab'},
    })
    expect(r.exitCode, r.stderr).toBe(0)
    const config = parse(await readFile(path.join(dir, 'autolabs.yaml'), 'utf8'))
    expect(config.network.subnet).toBe('10.20.0.0/24')
    expect(config.proxmox.url).toBe('https://pve.lab:8006')
    expect(config.vms.k8s).toMatchObject({cores: 8, memoryMiB: 16384})
    expect(config.image.os).toBe('debian-12')
    const tfvars = JSON.parse(await readFile(path.join(dir, 'terraform/terraform.tfvars.json'), 'utf8'))
    expect(JSON.stringify(tfvars)).toContain('10.20.0.30')
  })
})

describe('init on an existing workspace', () => {
  it('updates settings and keeps secrets and user comments', async () => {
    const dir = await freshDir()
    expect((await runCli(['init', '--dry-run', '--yes', '--dir', dir])).exitCode).toBe(0)
    const secretsBefore = await readFile(path.join(dir, '.autolabs/secrets.yaml'), 'utf8')
    const yamlPath = path.join(dir, 'autolabs.yaml')
    await writeFile(yamlPath, '# our lab, room 101\n' + (await readFile(yamlPath, 'utf8')))
    // When init runs again with a changed answer, from inside a subdirectory (found like git)
    const sub = path.join(dir, 'terraform')
    const r = await runCli(['init', '--dry-run', '--yes', '--k8s-cores', '6'], {cwd: sub})
    expect(r.exitCode, r.stderr).toBe(0)
    expect(await readFile(path.join(dir, '.autolabs/secrets.yaml'), 'utf8')).toBe(secretsBefore)
    const text = await readFile(yamlPath, 'utf8')
    expect(text).toContain('# our lab, room 101')
    expect(parse(text).vms.k8s.cores).toBe(6)
  })

  it('is a no-op when nothing changed', async () => {
    const dir = await freshDir()
    await runCli(['init', '--dry-run', '--yes', '--dir', dir])
    const before = await snapshotTree(dir)
    expect((await runCli(['init', '--dry-run', '--yes', '--dir', dir])).exitCode).toBe(0)
    expect(await snapshotTree(dir)).toEqual(before)
  })
})
