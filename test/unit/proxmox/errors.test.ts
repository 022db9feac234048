import {describe, expect, it} from 'vitest'

import {ProxmoxPermissionError, ProxmoxTaskError, taskType} from '../../../src/proxmox/errors.js'
import {upidNode} from '../../../src/proxmox/client.js'
import {compareVersions} from '../../../src/steps/preflight.js'
import {formatChecks} from '../../../src/commands/preflight.js'

const UPID = 'UPID:pve:00001234:0089ABCD:6740A1B2:qmclone:9000:autolabs@pve!terraform:'

describe('Proxmox error messages', () => {
  it('parse the privilege and ACL path out of a 403', () => {
    const e = new ProxmoxPermissionError('autolabs@pve!terraform', 'Permission check failed (/sdn/zones/localnetwork/vmbr0, SDN.Use)', {method: 'POST', path: '/nodes/pve/qemu'})
    expect(e.privilege).toBe('SDN.Use')
    expect(e.aclPath).toBe('/sdn/zones/localnetwork/vmbr0')
    expect(e.suggestion).toContain("pveum acl modify /sdn/zones/localnetwork/vmbr0 --tokens 'autolabs@pve!terraform'")
  })

  it('name a task by type and id, and read the node from a UPID', () => {
    expect(taskType(UPID)).toBe('qmclone 9000')
    expect(upidNode(UPID)).toBe('pve')
    expect(() => upidNode('nope')).toThrow('not a Proxmox task ID')
    const e = new ProxmoxTaskError(UPID, "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout", ['create full clone of drive scsi0'])
    expect(e.message).toContain('Proxmox task qmclone 9000 failed')
    expect(e.message).toContain('  create full clone of drive scsi0')
    expect(e.suggestion).toContain(UPID)
  })
})

describe('preflight helpers', () => {
  it('compare dotted versions numerically', () => {
    expect(compareVersions('1.11.4', '1.5.0')).toBeGreaterThan(0)
    expect(compareVersions('1.4.7', '1.5.0')).toBeLessThan(0)
    expect(compareVersions('1.5', '1.5.0')).toBe(0)
  })

  it('print one line per check and the fix under a failure', () => {
    const text = formatChecks({
      ok: false,
      checks: [
        {id: 'a', title: 'Bridge vmbr0', status: 'pass', detail: 'active'},
        {id: 'b', title: 'Terraform', status: 'fail', detail: 'not found', fix: 'install it'},
      ],
    })
    expect(text).toBe('PASS  Bridge vmbr0: active\nFAIL  Terraform: not found\n      fix: install it\n\nPreflight failed: 1 check to fix before autolabs creates anything.')
  })

  it('wrap a long check and its fix within a terminal width, keeping every word', () => {
    const detail = 'services.kubernetes.version 1.35 ends its support on 2027-02-28 (in 90 days), per https://kubernetes.io/releases/patch-releases/'
    const fix = 'Choose a supported minor in autolabs.yaml (services.kubernetes.version) and run autolabs deploy again.'
    const text = formatChecks({ok: true, checks: [{id: 'v', title: 'Version support', status: 'warn', detail, fix}]}, (_, t) => t, 60)
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(60)
    expect(text.split(/\s+/).join(' ')).toContain(`${detail} fix: ${fix}`)
    expect(text).toMatch(/^WARN {2}Version support: /)
    expect(text).toMatch(/\n {6}\S/)
  })
})
