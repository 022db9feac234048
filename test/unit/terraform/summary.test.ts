import {describe, expect, it} from 'vitest'

import {formatPlanSummary, stateResources, summarizePlan} from '../../../src/terraform/summary.js'

const change = (address: string, actions: string[], before: unknown, after: unknown) => ({
  address,
  mode: 'managed',
  type: address.split('.')[0],
  name: address.split('.')[1],
  change: {actions, before, after},
})

describe('summarizePlan (terraform show -json of a plan file)', () => {
  const plan = {
    format_version: '1.2',
    resource_changes: [
      change('proxmox_download_file.cloud_image', ['no-op'], {file_name: 'x.qcow2'}, {file_name: 'x.qcow2'}),
      change('proxmox_virtual_environment_vm.gitlab', ['update'], {name: 'gitlab-vm'}, {name: 'gitlab-vm'}),
      change('proxmox_virtual_environment_vm.database', ['delete', 'create'], {name: 'database-vm'}, {name: 'db'}),
      change('proxmox_virtual_environment_vm.k8s', ['create'], null, {name: 'k8s-vm'}),
      change('proxmox_virtual_environment_vm.old', ['delete'], {name: 'old-vm'}, null),
      {address: 'data.x.y', mode: 'data', type: 'x', name: 'y', change: {actions: ['read']}},
    ],
  }

  it('counts like Terraform (a replacement is one add and one destroy) and names each resource', () => {
    const s = summarizePlan(plan)
    expect({add: s.add, change: s.change, destroy: s.destroy, replace: s.replace}).toEqual({add: 2, change: 1, destroy: 2, replace: 1})
    expect(s.resources).toEqual([
      {address: 'proxmox_virtual_environment_vm.gitlab', type: 'proxmox_virtual_environment_vm', action: 'update', name: 'gitlab-vm'},
      {address: 'proxmox_virtual_environment_vm.database', type: 'proxmox_virtual_environment_vm', action: 'replace', name: 'db'},
      {address: 'proxmox_virtual_environment_vm.k8s', type: 'proxmox_virtual_environment_vm', action: 'create', name: 'k8s-vm'},
      {address: 'proxmox_virtual_environment_vm.old', type: 'proxmox_virtual_environment_vm', action: 'delete', name: 'old-vm'},
    ])
  })

  it('formats a summary a person can read before confirming, with destructive actions in capitals', () => {
    expect(formatPlanSummary(summarizePlan(plan))).toBe(
      [
        'Plan: 2 to add, 1 to change, 2 to destroy.',
        '  ~ proxmox_virtual_environment_vm.gitlab (gitlab-vm): update in place',
        '  -/+ proxmox_virtual_environment_vm.database (db): REPLACE (destroy, then create)',
        '  + proxmox_virtual_environment_vm.k8s (k8s-vm): create',
        '  - proxmox_virtual_environment_vm.old (old-vm): DESTROY',
      ].join('\n'),
    )
    expect(formatPlanSummary(summarizePlan({resource_changes: []}))).toMatch(/^No changes/)
  })
})

describe('stateResources (terraform show -json without a plan)', () => {
  it('lists managed resources with their names, including child modules', () => {
    const state = {
      values: {
        root_module: {
          resources: [
            {address: 'proxmox_virtual_environment_vm.k8s', mode: 'managed', type: 'proxmox_virtual_environment_vm', values: {name: 'k8s-vm', vm_id: 130}},
            {address: 'data.a.b', mode: 'data', type: 'a', values: {}},
          ],
          child_modules: [{resources: [{address: 'module.m.proxmox_virtual_environment_file.f', mode: 'managed', type: 'proxmox_virtual_environment_file', values: {source_raw: [{file_name: 'u.yaml'}]}}]}],
        },
      },
    }
    expect(stateResources(state).map((r) => [r.address, r.name])).toEqual([
      ['proxmox_virtual_environment_vm.k8s', 'k8s-vm'],
      ['module.m.proxmox_virtual_environment_file.f', 'u.yaml'],
    ])
    expect(stateResources({format_version: '1.0'})).toEqual([])
  })
})

describe('vmsAtRisk', () => {
  it('lists VMs a plan destroys or replaces, the template too, but not a tainted half-made VM', async () => {
    const {vmsAtRisk} = await import('../../../src/terraform/summary.js')
    const plan = {
      resource_changes: [
        {...change('proxmox_virtual_environment_vm.database', ['delete', 'create'], {name: 'database-vm'}, {name: 'database-vm'}), action_reason: 'replace_because_cannot_update'},
        {...change('proxmox_virtual_environment_vm.gitlab', ['delete', 'create'], {name: 'gitlab-vm'}, {name: 'gitlab-vm'}), action_reason: 'replace_because_tainted'},
        change('proxmox_virtual_environment_vm.template', ['delete', 'create'], {name: 't'}, {name: 't'}),
        change('proxmox_virtual_environment_vm.k8s', ['delete'], {name: 'k8s-vm'}, null),
        change('proxmox_download_file.cloud_image', ['delete', 'create'], {file_name: 'a.qcow2'}, {file_name: 'b.qcow2'}),
      ],
    }
    expect(vmsAtRisk(summarizePlan(plan)).map((r) => r.name)).toEqual(['database-vm', 't', 'k8s-vm'])
  })
})
