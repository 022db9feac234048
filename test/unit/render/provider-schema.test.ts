import {parse as parseHcl} from '@cdktf/hcl2json'
import {describe, expect, it} from 'vitest'

import {readTerraformAssets} from '../../../src/render/terraform.js'
import {configProblems, PROVIDER, RESOURCES} from '../../support/fake-terraform/bpg-schema.mjs'

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
    // local.user_data_file_ids reads `file.id` of each for_each instance.
    expect(assets['main.tf']).toMatch(/for role, file in proxmox_virtual_environment_file\.user_data : role => file\.id/)
    refs.add('proxmox_virtual_environment_file.id')
    expect(refs.size).toBeGreaterThan(3)
    for (const ref of refs) {
      const [type, attr] = ref.split('.')
      const s = RESOURCES[type]
      expect([...s.attributes, ...(s.computed ?? [])], ref).toContain(attr)
    }
  })

  it('keeps the documented conflict user_account / user_data_file_id apart by mode (builtin: the user; snippet: the snippet)', () => {
    for (const role of ['gitlab', 'database', 'k8s']) {
      const init = parsed[`${role}-vm.tf`].resource.proxmox_virtual_environment_vm[role][0].initialization[0] as Hcl
      expect(init.dynamic.user_account[0].for_each).toBe('${var.cloud_init_mode == "builtin" ? [var.vm_user] : []}')
      expect(init.user_data_file_id).toBe(`\${lookup(local.user_data_file_ids, "${role}", null)}`)
    }
    expect(parsed['cloud-init.tf'].resource.proxmox_virtual_environment_file.user_data[0].for_each).toBe('${var.cloud_init_mode == "snippet" ? var.vms : {}}')
  })

  // The check must be able to fail: each of these is a mistake the real provider rejects.
  it.each([
    ['an argument the block does not have', 'agent {\n    enabled = true\n    timeout = "15s"\n    wait = true\n  }', /agent: unsupported argument "wait"/],
    ['a block the schema table does not know', 'agent {\n    enabled = true\n    wait_for_ip {\n      ipv4 = true\n    }\n  }', /agent: unsupported block type "wait_for_ip"/],
    ['an invalid enum value', 'disk {\n    interface = "scsi0"\n    discard   = "yes"\n  }', /disk\.discard: "yes" is not one of on, ignore/],
    ['a disk interface Proxmox does not have', 'disk {\n    interface = "nvme0"\n  }', /disk\.interface: "nvme0" does not match/],
    ['a missing required argument', 'clone {\n    full = true\n  }', /clone: the argument "vm_id" is required/],
    ['a timeout that is not a Go duration', 'agent {\n    timeout = "5 minutes"\n  }', /agent\.timeout: "5 minutes" does not match/],
    ['a read-only attribute', 'ipv4_addresses = []', /x\.ipv4_addresses is read-only/],
  ])('rejects %s', async (_what, snippet, message) => {
    const problems = await problemsOf('x.tf', `resource "proxmox_virtual_environment_vm" "x" {\n  node_name = "pve"\n  ${snippet}\n}\n`)
    expect(problems.join('\n')).toMatch(message)
  })

  it('rejects a download without the node or with an unknown content type', async () => {
    const problems = await problemsOf('x.tf', 'resource "proxmox_download_file" "x" {\n  content_type = "images"\n  datastore_id = "local"\n  url = "https://example.org/x.qcow2"\n}\n')
    expect(problems).toEqual([
      'proxmox_download_file.x.content_type: "images" is not one of iso, vztmpl, import',
      'proxmox_download_file.x: the argument "node_name" is required',
    ])
  })
})
