import {mkdtemp, readFile, rm, stat} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {parse as parseHcl} from '@cdktf/hcl2json'
import {afterAll, describe, expect, it} from 'vitest'

import {VERSIONS} from '../../../src/config/catalog.js'
import {
  assertProvisionable,
  readTerraformAssets,
  renderTerraform,
  terraformVariables,
  TFVARS_FILE,
  writeTerraform,
} from '../../../src/render/terraform.js'
import {UserError} from '../../../src/errors.js'
import {customConfig, defaultConfig, KEY, PASSWORD, secretsWith, TF_TOKEN_SECRET, TOKEN_SECRET} from './fixtures.js'

type Hcl = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

const GOLDEN = path.join(import.meta.dirname, '__golden__')

async function parsedTf(files: Array<{path: string; content: string}>): Promise<Record<string, Hcl>> {
  const out: Record<string, Hcl> = {}
  for (const f of files.filter((f) => f.path.endsWith('.tf'))) out[f.path] = (await parseHcl(f.path, f.content)) as Hcl
  return out
}

function declaredVariables(parsed: Record<string, Hcl>): Map<string, Hcl> {
  const vars = new Map<string, Hcl>()
  for (const doc of Object.values(parsed)) for (const [name, blocks] of Object.entries((doc.variable ?? {}) as Hcl)) vars.set(name, (blocks as Hcl[])[0])
  return vars
}

describe('renderTerraform', () => {
  it('renders the design layout: the static .tf files, the 0600 tfvars and no cloud-init in builtin mode', async () => {
    const files = await renderTerraform(defaultConfig(), secretsWith({tokenSecret: TOKEN_SECRET}), {sshPublicKeys: [KEY]})
    expect(files.map((f) => [f.path, f.mode.toString(8)])).toEqual([
      ['cloud-init.tf', '644'],
      ['database-vm.tf', '644'],
      ['gitlab-vm.tf', '644'],
      ['k8s-vm.tf', '644'],
      ['main.tf', '644'],
      ['outputs.tf', '644'],
      ['providers.tf', '644'],
      ['template.tf', '644'],
      ['variables.tf', '644'],
      [TFVARS_FILE, '600'],
    ])
  })

  it('copies every .tf file verbatim from assets/terraform (a teacher can apply them by hand)', async () => {
    const assets = await readTerraformAssets()
    const files = await renderTerraform(defaultConfig(), undefined, {sshPublicKeys: [KEY]})
    for (const [name, text] of Object.entries(assets)) expect(files.find((f) => f.path === name)?.content).toBe(text)
  })

  it('matches the golden tfvars for the default config', async () => {
    const files = await renderTerraform(defaultConfig(), secretsWith({tokenSecret: TOKEN_SECRET}), {sshPublicKeys: [KEY]})
    await expect(files.find((f) => f.path === TFVARS_FILE)?.content).toMatchFileSnapshot(path.join(GOLDEN, 'default.tfvars.json'))
  })

  it('matches the golden tfvars and user-data for a customised config (snippet mode, apt proxy, Debian, password auth)', async () => {
    const config = {...customConfig(), proxmox: {...customConfig().proxmox, auth: 'password' as const, username: 'terraform@pve'}}
    const files = await renderTerraform(config, secretsWith({password: PASSWORD}), {sshPublicKeys: [KEY]})
    await expect(files.find((f) => f.path === TFVARS_FILE)?.content).toMatchFileSnapshot(path.join(GOLDEN, 'custom.tfvars.json'))
    for (const role of ['gitlab', 'database', 'k8s']) {
      const f = files.find((x) => x.path === `cloud-init/${role}.user-data.yaml`)
      expect(f?.mode).toBe(0o644)
      await expect(f?.content).toMatchFileSnapshot(path.join(GOLDEN, `custom.${role}.user-data.yaml`))
    }
  })

  it('pins the bpg/proxmox provider to the catalog version and Terraform to >= 1.5.0', async () => {
    const parsed = await parsedTf(await renderTerraform(defaultConfig(), undefined, {sshPublicKeys: [KEY]}))
    const tf = parsed['providers.tf'].terraform[0]
    expect(tf.required_version).toBe(`>= ${VERSIONS.terraformMin}`)
    expect(tf.required_providers[0].proxmox).toEqual({source: 'bpg/proxmox', version: VERSIONS.bpgProvider})
    expect(parsed['providers.tf'].provider.proxmox[0].insecure).toBe('${var.proxmox_insecure}')
  })
})

describe('the rendered HCL, parsed by a real HCL parser', async () => {
  const config = customConfig()
  const files = await renderTerraform(config, secretsWith({tokenSecret: TOKEN_SECRET, terraformTokenId: 'autolabs@pve!terraform', terraformTokenSecret: TF_TOKEN_SECRET}), {sshPublicKeys: [KEY]})
  const parsed = await parsedTf(files)
  const declared = declaredVariables(parsed)
  const tfvars = JSON.parse(files.find((f) => f.path === TFVARS_FILE)!.content) as Record<string, unknown>

  it('declares every variable it uses', () => {
    const used = new Set<string>()
    for (const doc of Object.values(parsed)) for (const m of JSON.stringify(doc).matchAll(/\bvar\.([a-z_][a-z0-9_]*)/g)) used.add(m[1])
    expect([...used].filter((v) => !declared.has(v))).toEqual([])
    // ...and uses every variable it declares (no dead knobs).
    expect([...declared.keys()].filter((v) => !used.has(v))).toEqual([])
  })

  it('gives every variable a description, a type, and validation where the value is free-form', () => {
    for (const [name, v] of declared) {
      expect(v.description, name).toBeTruthy()
      expect(v.type, name).toBeTruthy()
    }
    for (const name of ['proxmox_endpoint', 'proxmox_node', 'bridge', 'network', 'image', 'template', 'vm_user', 'ssh_public_keys', 'vms', 'cloud_init_mode']) {
      expect(declared.get(name)?.validation, name).toBeTruthy()
    }
  })

  it('puts only declared variables in terraform.tfvars.json, and every required one', () => {
    expect(Object.keys(tfvars).filter((k) => !declared.has(k))).toEqual([])
    const required = [...declared].filter(([, v]) => !('default' in v)).map(([k]) => k)
    expect(required.filter((k) => !(k in tfvars))).toEqual([])
  })

  it('marks the credentials sensitive and keeps every secret out of the .tf files', () => {
    expect(declared.get('proxmox_api_token')?.sensitive).toBe(true)
    expect(declared.get('proxmox_password')?.sensitive).toBe(true)
    for (const f of files.filter((x) => x.path !== TFVARS_FILE)) {
      expect(f.content).not.toContain(TF_TOKEN_SECRET)
      expect(f.content).not.toContain(TOKEN_SECRET)
    }
    // The least-privilege Terraform token wins over the administrator's.
    expect(tfvars.proxmox_api_token).toBe(`autolabs@pve!terraform=${TF_TOKEN_SECRET}`)
  })

  it('defines the template from the downloaded image and three VMs cloned from it, one clone at a time', () => {
    const all: Hcl = {}
    for (const doc of Object.values(parsed)) for (const [type, byName] of Object.entries((doc.resource ?? {}) as Hcl)) all[type] = {...all[type], ...byName}
    const template = all.proxmox_virtual_environment_vm.template[0]
    expect(template.template).toBe(true)
    expect(template.vm_id).toBe('${var.template.vm_id}')
    expect(template.disk[0].import_from).toBe('${proxmox_download_file.cloud_image.id}')
    const image = all.proxmox_download_file.cloud_image[0]
    expect(image.content_type).toBe('import')
    expect(image.checksum).toBe('${var.image.checksum}')
    expect(image.overwrite).toBe(false)
    const vms = ['gitlab', 'database', 'k8s'].map((r) => all.proxmox_virtual_environment_vm[r][0])
    for (const vm of vms) {
      expect(vm.clone[0].vm_id).toBe('${proxmox_virtual_environment_vm.template.vm_id}')
      expect(vm.clone[0].retries).toBe('${var.clone_retries}')
      // A bounded agent wait (never the provider's 15-minute default) and stop on destroy.
      expect(vm.agent[0].timeout).toBe('${local.guest_agent_timeout}')
      expect(vm.stop_on_destroy).toBe(true)
    }
    // Bounded per mode: the agent exists from first boot only in snippet mode.
    expect(parsed['main.tf'].locals[0].guest_agent_timeout).toBe('${var.cloud_init_mode == "snippet" ? "5m" : "15s"}')
    const snippet = '${proxmox_virtual_environment_file.user_data}'
    expect(vms[0].depends_on).toEqual([snippet])
    expect(vms[1].depends_on).toEqual(['${proxmox_virtual_environment_vm.gitlab}', snippet])
    expect(vms[2].depends_on).toEqual(['${proxmox_virtual_environment_vm.database}', snippet])
    // A new image rebuilds the template: the provider ignores import_from after creation.
    expect(template.lifecycle[0].replace_triggered_by).toEqual(['${proxmox_download_file.cloud_image}'])
  })

  it('keeps the three VM files identical apart from the role (so a fix reaches all three)', () => {
    const norm = (role: string, file: string) => {
      const res = parsed[file].resource.proxmox_virtual_environment_vm[role][0] as Hcl
      const {depends_on: _d, description: _desc, ...rest} = res
      return JSON.stringify(rest).replaceAll(`"${role}"`, '"ROLE"').replaceAll(`\\"${role}\\"`, '\\"ROLE\\"')
    }
    expect(norm('database', 'database-vm.tf')).toBe(norm('gitlab', 'gitlab-vm.tf'))
    expect(norm('k8s', 'k8s-vm.tf')).toBe(norm('gitlab', 'gitlab-vm.tf'))
  })

  it('outputs each VM and a map of all of them with name, vmid and ip', () => {
    const outputs = parsed['outputs.tf'].output as Hcl
    expect(Object.keys(outputs).sort()).toEqual(['database_vm', 'gitlab_vm', 'k8s_vm', 'template_vmid', 'vms'])
    const vms = outputs.vms[0].value as Hcl
    expect(Object.keys(vms).sort()).toEqual(['database', 'gitlab', 'k8s'])
    for (const v of Object.values(vms)) expect(Object.keys(v as Hcl).sort()).toEqual(['ip', 'name', 'node', 'vmid'])
  })
})

describe('terraformVariables', () => {
  it('carries the configured values: sizes, IPs, VMIDs, bridge, storages, template and the SSH key', () => {
    const v = terraformVariables(customConfig(), undefined, [KEY])
    expect(v.vms.k8s).toEqual({name: 'kube', vm_id: 230, cores: 16, memory_mib: 16384, disk_gib: 300, ip: '10.20.1.30'})
    expect(v.network).toEqual({prefix_length: 16, gateway: '10.20.0.1', dns_servers: ['10.20.0.53'], search_domain: 'lab.example.edu'})
    expect(v.proxmox_endpoint).toBe('https://10.0.0.2:8443/')
    expect(v.image).toMatchObject({file_name: 'debian-12-genericcloud-amd64-20261110-2293.qcow2', checksum_algorithm: 'sha512'})
    expect(v.template).toEqual({vm_id: 9100, name: 'lab-cs101-debian-12-template'})
    expect(v.vm_user).toBe('debian')
    expect(v.ssh_public_keys).toEqual([KEY])
    expect(v.proxmox_ssh_username).toBe('root')
  })

  it('leaves the credentials null when none is stored, so the provider reads PROXMOX_VE_API_TOKEN', () => {
    const v = terraformVariables(defaultConfig(), secretsWith({}), [KEY])
    expect([v.proxmox_api_token, v.proxmox_username, v.proxmox_password]).toEqual([null, null, null])
    expect(v.proxmox_ssh_username).toBeNull()
  })

  it('renders without an SSH key (a dry run works anywhere) but refuses to provision without one', () => {
    const url = 'https://cloud-images.ubuntu.com/releases/jammy/release-20261120/ubuntu-22.04-server-cloudimg-amd64.img'
    const config = {...defaultConfig(), image: {...defaultConfig().image, url, checksum: 'b'.repeat(64)}}
    const v = terraformVariables(config, undefined, [])
    expect(v.ssh_public_keys).toEqual([])
    expect(() => assertProvisionable(v, config)).toThrow(UserError)
    expect(() => assertProvisionable(v, config)).toThrow(/ssh\.publicKeyFile/)
    expect(() => assertProvisionable(terraformVariables(config, undefined, [KEY]), config)).not.toThrow()
  })

  it("refuses to provision from the publisher's moving link: the pinned checksum would stop matching", () => {
    const config = {...defaultConfig(), image: {...defaultConfig().image, checksum: 'b'.repeat(64)}}
    expect(() => assertProvisionable(terraformVariables(config, undefined, [KEY]), config)).toThrow(/moving link/)
  })

  it('refuses to provision an image without a checksum (it would be downloaded unverified)', () => {
    const v = terraformVariables(defaultConfig(), undefined, [KEY])
    expect(v.image.checksum).toBeNull()
    expect(() => assertProvisionable(v, defaultConfig())).toThrow(/image\.checksum/)
  })
})

describe('writeTerraform', () => {
  const dirs: string[] = []
  afterAll(async () => Promise.all(dirs.map((d) => rm(d, {recursive: true, force: true}))))

  it('writes the tfvars with mode 0600 and the .tf files with 0644', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-tf-'))
    dirs.push(dir)
    await writeTerraform(path.join(dir, 'terraform'), await renderTerraform(customConfig(), secretsWith({tokenSecret: TOKEN_SECRET}), {sshPublicKeys: [KEY]}))
    expect((await stat(path.join(dir, 'terraform', TFVARS_FILE))).mode & 0o777).toBe(0o600)
    expect((await stat(path.join(dir, 'terraform', 'gitlab-vm.tf'))).mode & 0o777).toBe(0o644)
    expect(await readFile(path.join(dir, 'terraform', 'cloud-init', 'k8s.user-data.yaml'), 'utf8')).toContain('hostname: "kube"')
  })
})
