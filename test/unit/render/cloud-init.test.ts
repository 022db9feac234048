import {parse} from 'yaml'
import {describe, expect, it} from 'vitest'

import {fillUserData, readUserDataTemplate, renderCloudInit} from '../../../src/render/cloud-init.js'
import {customConfig, defaultConfig, KEY} from './fixtures.js'

describe('cloud-init user-data', () => {
  it('sets the hostname, the key-only user with sudo, the guest agent, and disables password login', async () => {
    const doc = parse((await renderCloudInit(defaultConfig(), [KEY])).database) as Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(doc.hostname).toBe('database-vm')
    expect(doc.fqdn).toBeUndefined()
    expect(doc.users).toEqual([
      {name: 'ubuntu', groups: ['sudo'], shell: '/bin/bash', sudo: 'ALL=(ALL) NOPASSWD:ALL', lock_passwd: true, ssh_authorized_keys: [KEY]},
    ])
    expect(doc.ssh_pwauth).toBe(false)
    expect(doc.packages).toEqual(['qemu-guest-agent'])
    // Never fails the first boot where the VM has no agent channel (found by the ubuntu-like lab test).
    expect(doc.runcmd).toEqual([['sh', '-c', "systemctl start qemu-guest-agent || echo 'qemu-guest-agent not started: no virtio channel'"]])
    // No proxy configured: no apt section at all.
    expect(doc.apt).toBeUndefined()
  })

  it('adds the apt proxy and the FQDN when configured', async () => {
    const doc = parse((await renderCloudInit(customConfig(), [KEY])).gitlab) as Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(doc.apt).toEqual({proxy: 'http://10.20.0.5:3142'})
    expect(doc.fqdn).toBe('git.lab.example.edu')
    expect(doc.users[0].name).toBe('debian')
  })

  it('quotes values so that YAML-special characters cannot change the document', async () => {
    const text = fillUserData(await readUserDataTemplate(), {hostname: 'vm', user: 'u', sshPublicKeys: ['ssh-ed25519 AAAA x: "y" # z']})
    expect((parse(text) as {users: Array<{ssh_authorized_keys: string[]}>}).users[0].ssh_authorized_keys).toEqual(['ssh-ed25519 AAAA x: "y" # z'])
  })

  it('fails loudly (a bug) on a placeholder the renderer does not know', () => {
    expect(() => fillUserData('hostname: {{hostname}}\nx: {{nope}}\n', {hostname: 'vm', user: 'u', sshPublicKeys: []})).toThrow(/nope/)
  })
})
