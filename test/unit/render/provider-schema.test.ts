import {parse as parseHcl} from '@cdktf/hcl2json'
import {describe, expect, it} from 'vitest'

import {readTerraformAssets} from '../../../src/render/terraform.js'
import {VERSIONS} from '../../../src/config/catalog.js'
import {configProblems, PINNED, PROVIDER, RESOURCES} from '../../support/fake-terraform/bpg-schema.mjs'

type Hcl = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

// The .tf files against the bpg/proxmox schema transcribed in test/support/fake-terraform/bpg-schema.mjs
// (the provider itself cannot be downloaded here, so `terraform validate` never sees it).

const assets = await readTerraformAssets()
const parsed: Record<string, Hcl> = {}
for (const [file, text] of Object.entries(assets)) parsed[file] = (await parseHcl(file, text)) as Hcl

/** The resource blocks of one parsed file. */
function resourcesOf(doc: Hcl): Array<{type: string; name: string; body: Hcl}> {
  return Object.entries((doc.resource ?? {}) as Hcl).flatMap(([type, byName]) =>
    Object.entries(byName as Hcl).map(([name, blocks]) => ({type, name, body: (blocks as Hcl[])[0]})),
  )
}

function resources(): Array<{file: string; type: string; name: string; body: Hcl}> {
  return Object.entries(parsed).flatMap(([file, doc]) => resourcesOf(doc).map((r) => ({file, ...r})))
}

async function problemsOf(file: string, text: string): Promise<string[]> {
  const doc = (await parseHcl(file, text)) as Hcl
  return resourcesOf(doc).flatMap((r) => configProblems(RESOURCES[r.type], r.body, `${r.type}.${r.name}`, true))
}

describe('the Terraform configuration against the bpg/proxmox provider schema', () => {
  it('uses only resource types the provider has (and the schema table models)', () => {
    expect(resources().map((r) => r.type).filter((t) => !(t in RESOURCES))).toEqual([])
  })

  it('uses only arguments and blocks that exist, with valid literal values and every required argument', () => {
    const problems = resources().flatMap((r) => configProblems(RESOURCES[r.type], r.body, `${r.file} ${r.type}.${r.name}`, true))
    expect(problems).toEqual([])
  })

  it('configures the provider (endpoint, credentials, TLS, ssh{}) with arguments it has', () => {
    const provider = parsed['providers.tf'].provider.proxmox[0] as Hcl
    expect(configProblems(PROVIDER, provider, 'provider "proxmox"')).toEqual([])
  })

  it('references only attributes the resources export (outputs, locals, clones, the disk import)', () => {
    const refs = new Set<string>()
    for (const doc of Object.values(parsed))
      for (const m of JSON.stringify(doc).matchAll(/\b(proxmox_[a-z_]+)\.([a-z_]+)\.([a-z_]+)/g)) refs.add(`${m[1]}.${m[3]}`)
    expect(refs.size).toBeGreaterThan(3)
    for (const ref of refs) {
      const [type, attr] = ref.split('.')
      const s = RESOURCES[type]
      expect([...s.attributes, ...(s.computed ?? [])], ref).toContain(attr)
    }
  })

  it("states each VM's snippet id from known values, so a changed snippet never replaces the VMs", () => {
    // The file resource's id is unknown in a plan that replaces the file, and user_data_file_id
    // is ForceNew: referencing it would plan every VM for destroy-and-create.
    expect(JSON.stringify(parsed['main.tf'].locals)).not.toMatch(/proxmox_virtual_environment_file\.user_data/)
    expect(assets['main.tf']).toMatch(/role => "\$\{var\.snippet_datastore\}:snippets\/\$\{name\}"/)
    expect(parsed['cloud-init.tf'].resource.proxmox_virtual_environment_file.user_data[0].source_raw[0].file_name).toBe('${local.snippet_file_names[each.key]}')
  })

  it('keeps the documented conflict user_account / user_data_file_id apart by mode (builtin: the user; snippet: the snippet)', () => {
    for (const role of ['gitlab', 'database', 'k8s']) {
      const init = parsed[`${role}-vm.tf`].resource.proxmox_virtual_environment_vm[role][0].initialization[0] as Hcl
      expect(init.dynamic.user_account[0].for_each).toBe('${var.cloud_init_mode == "builtin" ? [var.vm_user] : []}')
      expect(init.user_data_file_id).toBe(`\${lookup(local.user_data_file_ids, "${role}", null)}`)
    }
    expect(parsed['cloud-init.tf'].resource.proxmox_virtual_environment_file.user_data[0].for_each).toBe('${var.cloud_init_mode == "snippet" ? var.vms : {}}')
  })

  // The check must be able to fail: each of these is a mistake the pinned provider rejects.
  it.each([
    ['an argument the block does not have', 'agent {\n    enabled = true\n    timeout = "15s"\n    wait = true\n  }', /agent: unsupported argument "wait"/],
    ['the wait_for_ip switch of another release (enabled; the pinned one has disabled)', 'agent {\n    wait_for_ip {\n      enabled = false\n    }\n  }', /agent\.wait_for_ip: unsupported argument "enabled"/],
    ['dns.server (removed; the pinned provider has only servers)', 'initialization {\n    dns {\n      server = "1.1.1.1"\n    }\n  }', /initialization\.dns: unsupported argument "server"/],
    ['a block the provider has but the table does not transcribe', 'efi_disk {\n    type = "4m"\n  }', /efi_disk: the block exists in the provider but is not transcribed/],
    ['an invalid enum value', 'disk {\n    interface = "scsi0"\n    aio       = "posix"\n  }', /disk\.aio: "posix" is not one of io_uring, native, threads/],
    ['a disk interface Proxmox does not have', 'disk {\n    interface = "nvme0"\n  }', /disk\.interface: "nvme0" does not match/],
    ['a missing required argument', 'clone {\n    full = true\n  }', /clone: the argument "vm_id" is required/],
    ['a timeout that is not a Go duration', 'agent {\n    timeout = "5 minutes"\n  }', /agent\.timeout: "5 minutes" does not match/],
    ['a read-only attribute', 'ipv4_addresses = []', /x\.ipv4_addresses is read-only/],
  ])('rejects %s', async (_what, snippet, message) => {
    const problems = await problemsOf('x.tf', `resource "proxmox_virtual_environment_vm" "x" {\n  node_name = "pve"\n  ${snippet}\n}\n`)
    expect(problems.join('\n')).toMatch(message)
  })

  // ... and each of these the pinned provider accepts (an older transcription refused them).
  it.each([
    ['agent.wait_for_ip', 'agent {\n    wait_for_ip {\n      disabled = true\n    }\n  }'],
    ['hotplug and the destroy options', 'hotplug = "disk,network,usb"\n  purge_on_destroy = true\n  delete_unreferenced_disks_on_destroy = true'],
    ['mac_addresses (optional and computed)', 'mac_addresses = ["BC:24:11:00:00:01"]'],
    ['disk.queues, any discard string, file_id with import_from', 'disk {\n    interface   = "scsi0"\n    queues      = 2\n    discard     = "ignore"\n    file_id     = "local:iso/x.img"\n    import_from = "local:import/x.qcow2"\n  }'],
    ['initialization.file_format', 'initialization {\n    file_format = "raw"\n  }'],
  ])('accepts %s', async (_what, snippet) => {
    expect(await problemsOf('x.tf', `resource "proxmox_virtual_environment_vm" "x" {\n  node_name = "pve"\n  ${snippet}\n}\n`)).toEqual([])
  })

  it("accepts the file resource's upload_mode and the provider's ssh.node_address_source", async () => {
    expect(await problemsOf('x.tf', 'resource "proxmox_virtual_environment_file" "x" {\n  node_name = "pve"\n  datastore_id = "local"\n  upload_mode = "sftp"\n}\n')).toEqual([])
    expect(configProblems(PROVIDER, {ssh: [{node_address_source: 'dns'}]}, 'provider')).toEqual([])
    expect(configProblems(PROVIDER, {ssh: [{node_address_source: 'ssh'}]}, 'provider')).toEqual(['provider.ssh.node_address_source: "ssh" is not one of api, dns'])
  })

  it('was transcribed from the release that the providers.tf constraint selects', () => {
    // `~> 0.111.0` admits 0.111.x; the table names the tag (and commit) it was read from. Moving
    // the constraint to another minor must come with a new transcription (bump PINNED).
    const constraint = /source\s*=\s*"bpg\/proxmox"\s*\n\s*version\s*=\s*"~> (\d+)\.(\d+)\.(\d+)"/.exec(assets['providers.tf'])
    expect(constraint, 'providers.tf pins bpg/proxmox with a pessimistic ~> X.Y.Z constraint').not.toBeNull()
    const [, major, minor, patch] = constraint!.map(Number)
    const tag = /^v(\d+)\.(\d+)\.(\d+)$/.exec(PINNED.tag)!.slice(1).map(Number)
    expect([tag[0], tag[1]], `bpg-schema.mjs was read at ${PINNED.tag}, outside ${major}.${minor}.x`).toEqual([major, minor])
    expect(tag[2]).toBeGreaterThanOrEqual(patch)
    expect(PINNED.commit).toMatch(/^[0-9a-f]{40}$/)
    expect(VERSIONS.bpgProvider).toBe(`~> ${major}.${minor}.${patch}`)
  })

  it('rejects a download without the node or with an unknown content type', async () => {
    const problems = await problemsOf('x.tf', 'resource "proxmox_download_file" "x" {\n  content_type = "images"\n  datastore_id = "local"\n  url = "https://example.org/x.qcow2"\n}\n')
    expect(problems).toEqual([
      'proxmox_download_file.x.content_type: "images" is not one of iso, vztmpl, import',
      'proxmox_download_file.x: the argument "node_name" is required',
    ])
  })
})
