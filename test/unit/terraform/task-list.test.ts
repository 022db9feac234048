import {describe, expect, it, vi} from 'vitest'

import {parseUiLine, type UiEvent} from '../../../src/terraform/events.js'
import {applyTaskList} from '../../../src/terraform/task-list.js'

const ev = (type: string, addr: string, extra: Record<string, unknown> = {}) =>
  parseUiLine(JSON.stringify({'@level': 'info', '@message': '', '@timestamp': '', type, hook: {resource: {addr}, action: 'create', elapsed_seconds: 3, ...extra}})) as UiEvent

describe('the live task list of terraform apply', () => {
  it('completes each resource task from its apply events and reports a failed one', async () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      const list = applyTaskList([
        {address: 'proxmox_virtual_environment_vm.gitlab', type: 'proxmox_virtual_environment_vm', action: 'create', name: 'gitlab-vm'},
        {address: 'proxmox_virtual_environment_vm.k8s', type: 'proxmox_virtual_environment_vm', action: 'create', name: 'k8s-vm'},
      ])
      list.onEvent(ev('apply_start', 'proxmox_virtual_environment_vm.gitlab'))
      list.onEvent(ev('apply_progress', 'proxmox_virtual_environment_vm.gitlab'))
      list.onEvent(ev('apply_complete', 'proxmox_virtual_environment_vm.gitlab'))
      list.onEvent(ev('apply_errored', 'proxmox_virtual_environment_vm.k8s'))
      await list.finish()
      const out = write.mock.calls.map((c) => String(c[0])).join('')
      expect(out).toContain('gitlab')
      expect(out).toMatch(/FAILED after 3 s/)
    } finally {
      write.mockRestore()
    }
  })

  it('ends tasks Terraform never reached when the apply stops', async () => {
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
    try {
      const list = applyTaskList([{address: 'proxmox_virtual_environment_vm.database', type: 'proxmox_virtual_environment_vm', action: 'create'}])
      await expect(list.finish(new Error('interrupted'))).resolves.toBeUndefined()
      expect(write.mock.calls.map((c) => String(c[0])).join('')).toContain('not applied')
    } finally {
      write.mockRestore()
    }
  })
})
