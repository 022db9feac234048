import {describe, expect, it} from 'vitest'

import {lookupFormat, PRIVILEGES_8, PRIVILEGES_9} from '../../support/pve-sim/formats.mjs'
import {loadSchema, matchPath, parsePropertyString, perlPattern, validateParams} from '../../support/pve-sim/schema.mjs'

// The simulator's validator is test support, but tests lean on it: it must reject what PVE rejects.
describe('the simulator validator', () => {
  const s9 = loadSchema('9.1')
  const op = (path: string, method: string) => matchPath(s9, path)!.node.info[method]

  it('matches concrete paths to schema paths, literal segments first', () => {
    expect(matchPath(s9, '/nodes/pve/qemu/100/config')).toMatchObject({node: {path: '/nodes/{node}/qemu/{vmid}/config'}, pathParams: {node: 'pve', vmid: '100'}})
    expect(matchPath(s9, '/cluster/nextid')!.node.path).toBe('/cluster/nextid')
    expect(matchPath(s9, '/nodes/pve/frob')).toBeUndefined()
  })

  it('translates Perl patterns and anchors them', () => {
    expect(perlPattern('(?^:[A-Za-z][A-Za-z0-9\\.\\-_]+)').test('terraform')).toBe(true)
    expect(perlPattern('(?^:[A-Za-z][A-Za-z0-9\\.\\-_]+)').test('x terraform')).toBe(false)
    expect(perlPattern('[a-z]{,3}').test('abc')).toBe(true)
    expect(perlPattern('[a-z]{,3}').test('abcd')).toBe(false)
    expect(perlPattern('(?^i:[a-z]+)').test('ABC')).toBe(true)
  })

  it('parses property strings like PVE, with default keys and key aliases', () => {
    const net = op('/nodes/pve/qemu/100/config', 'POST').parameters.properties['net[n]'].format
    expect(parsePropertyString(net, 'virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=true')).toEqual({model: 'virtio', macaddr: 'BC:24:11:00:00:01', bridge: 'vmbr0', firewall: '1'})
    expect(parsePropertyString(net, 'virtio,bridge=vmbr0')).toEqual({model: 'virtio', bridge: 'vmbr0'})
    expect(() => parsePropertyString(net, 'virtio,e1000')).toThrow('duplicate key')
  })

  it('accepts what autolabs sends and rejects near misses', () => {
    const create = op('/nodes/pve/qemu', 'POST')
    const ok = {node: 'pve', vmid: '110', name: 'gitlab-vm', cores: '4', memory: '8192', scsi0: 'local-lvm:100,discard=on,ssd=1', net0: 'virtio,bridge=vmbr0', ipconfig0: 'ip=192.168.100.10/24,gw=192.168.100.1', agent: 'enabled=1', tags: 'autolabs;gitlab'}
    expect(validateParams(s9, create, ok)).toEqual({})
    expect(validateParams(s9, create, {...ok, ipconfig0: 'ip=192.168.100.10,gw=192.168.100.1'})).toEqual({'ipconfig0.ip': 'invalid format - value does not look like a valid IPv4 network configuration'})
    expect(validateParams(s9, create, {...ok, net0: 'virtio,bridge=vmbr0,tag=5000'})).toEqual({'net0.tag': 'value must have a maximum value of 4094'})
    expect(validateParams(s9, create, {...ok, scsi0: 'local-lvm:100,ssd=yes'})).toEqual({})
    expect(Object.keys(validateParams(s9, create, {...ok, scsi7: 'local-lvm:1', scsi99: 'local-lvm:1', net40: 'virtio'}))).toEqual(['scsi99', 'net40'])
    expect(validateParams(s9, create, {...ok, net0: 'bridge=vmbr0,mtu'})).toEqual({'net0.model': expect.stringMatching(/^value 'mtu' does not have a value in the enumeration/)})
    expect(validateParams(s9, create, {...ok, vmid: '99'})).toEqual({vmid: 'invalid format - value does not look like a valid VM ID'})
    expect(validateParams(s9, create, {...ok, cores: '4.5'})).toEqual({cores: "type check ('integer') failed - got '4.5'"})
  })

  it('checks prune-backups and list formats', () => {
    const job = op('/cluster/backup', 'POST')
    const base = {schedule: '02:00', storage: 'local', vmid: '110,120,130'}
    expect(validateParams(s9, job, {...base, 'prune-backups': 'keep-daily=7,keep-weekly=4'})).toEqual({})
    expect(validateParams(s9, job, {...base, 'prune-backups': 'keep-daily=-1'})).toEqual({'prune-backups.keep-daily': 'value must have a minimum value of 0'})
    expect(validateParams(s9, job, {...base, vmid: '110,abc'})).toEqual({vmid: 'invalid format - value does not look like a valid VM ID'})
  })

  it('knows the PVE 9 privilege change', () => {
    expect(PRIVILEGES_8).toContain('VM.Monitor')
    expect(PRIVILEGES_9).not.toContain('VM.Monitor')
    expect(PRIVILEGES_9).toContain('VM.GuestAgent.Audit')
    expect(lookupFormat('pve-priv-list')!('VM.Audit,VM.Monitor', {privileges: PRIVILEGES_9})).toBe("invalid privilege 'VM.Monitor'")
  })

  it('uses the schema of the simulated version: 9.1 has endpoints 8.4 lacks', () => {
    const s8 = loadSchema('8.4')
    expect(matchPath(s8, '/cluster/sdn/fabrics')).toBeUndefined()
    expect(matchPath(s9, '/cluster/sdn/fabrics')).toBeDefined()
  })
})
