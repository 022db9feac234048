import {describe, expect, it} from 'vitest'

import {normalizeProxmoxUrl} from '../../../src/config/input.js'
import {LIMITS, printable, RULES} from '../../../src/config/grammar.js'
import {validateConfig} from '../../../src/config/load.js'
import {ConfigError} from '../../../src/errors.js'

/** The field issues validateConfig reports for `raw` ([] when it is accepted). */
function issues(raw: unknown): Array<{path: string; message: string}> {
  try {
    validateConfig(raw)
    return []
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    return error.issues.map(({path, message}) => ({path, message}))
  }
}
const refused = (raw: unknown, path: string) => expect(issues(raw).map((i) => i.path)).toContain(path)

describe('the grammar of free strings (hostile input)', () => {
  it.each([
    ['proxmox.vmStorage', {proxmox: {vmStorage: 'local\n$(id)'}}],
    ['proxmox.imageStorage', {proxmox: {imageStorage: '../../etc'}}],
    ['cloudInit.snippetStorage', {cloudInit: {snippetStorage: 'a b'}}],
    ['backup.storage', {backup: {storage: 'x;rm -rf /'}}],
    ['proxmox.node', {proxmox: {node: 'pve\u001b[2J'}}],
    ['proxmox.bridge', {proxmox: {bridge: 'vmbr0 "x"'}}],
    ['network.searchDomain', {network: {searchDomain: 'lab.example\nnameserver 6.6.6.6'}}],
    ['backup.schedule', {backup: {schedule: '02:00\n* * * * * root id'}}],
    ['network.aptProxy', {network: {aptProxy: 'http://10.0.0.5:3142/";APT::Update::Pre-Invoke {"id";};//'}}],
    ['network.aptProxy', {network: {aptProxy: 'javascript:alert(1)'}}],
    ['network.aptProxy', {network: {aptProxy: 'file:///etc/passwd'}}],
    ['network.aptProxy', {network: {aptProxy: 'http://user:pw@proxy:3128'}}],
    ['vms.gitlab.diskGiB', {vms: {gitlab: {diskGiB: 9007199254740991}}}],
    ['vms.database.memoryMiB', {vms: {database: {memoryMiB: LIMITS.memoryMiB + 1}}}],
    ['ssh.publicKeyFile', {ssh: {publicKeyFile: 'key\u0000.pub'}}],
    ['image.url', {image: {url: 'file:///etc/shadow'}}],
    ['services.gitlab.externalUrl', {services: {gitlab: {externalUrl: 'javascript:alert(1)'}}}],
  ])('refuses a hostile %s', (path, raw) => refused(raw, path))

  it('refuses a gateway that is the network or the broadcast address', () => {
    expect(issues({network: {gateway: '192.168.100.0'}})).toContainEqual({path: 'network.gateway', message: '192.168.100.0 is the network address of 192.168.100.0/24'})
    expect(issues({network: {gateway: '192.168.100.255'}})).toContainEqual({path: 'network.gateway', message: '192.168.100.255 is the broadcast address of 192.168.100.0/24'})
  })

  it('accepts the ordinary values: default config, a storage with dots, a search domain, an apt-cacher-ng URL, a calendar event', () => {
    expect(
      issues({
        proxmox: {vmStorage: 'ceph.pool-1', bridge: 'vmbr1'},
        network: {searchDomain: 'lab.example.edu', aptProxy: 'http://apt-cache.lab:3142/'},
        backup: {schedule: 'sat *-1..7 15:00'},
      }),
    ).toEqual([])
    expect(issues({network: {aptProxy: 'http://[fd00::5]:3142'}})).toEqual([])
  })

  it('refuses a Proxmox URL with credentials, a path or a query instead of silently stripping them', () => {
    const url = normalizeProxmoxUrl('https://root:pw@pve:8006/api2/json?x#y')
    expect(url).toBe('https://root:pw@pve:8006/api2/json?x#y')
    expect(issues({proxmox: {url}})).toEqual([{path: 'proxmox.url', message: expect.stringMatching(/must not contain a user or password/)}])
    expect(issues({proxmox: {url: normalizeProxmoxUrl('https://pve:8006/api2/json')}})[0].message).toMatch(/without a path, query or fragment/)
  })

  it('says that the port is wrong, not that the scheme is, for pve.lan:99999', () => {
    expect(issues({proxmox: {url: normalizeProxmoxUrl('pve.lan:99999')}})).toEqual([{path: 'proxmox.url', message: 'port 99999 is not a TCP port (1–65535)'}])
    expect(issues({proxmox: {url: normalizeProxmoxUrl('http://pve.lan')}})[0].message).toBe('must use https://, not http:')
  })

  it('keeps every rule in one table, each with its source and a bound', () => {
    for (const [name, r] of Object.entries(RULES)) {
      expect(r.source, name).not.toBe('')
      expect(r.maxLength, name).toBeGreaterThan(0)
      expect(r.pattern.source.startsWith('^') && r.pattern.source.endsWith('$'), name).toBe(true)
    }
  })

  it('strips control characters from terminal text but keeps newlines and tabs', () => {
    expect(printable('gitlab\u001b[2J\u001b]0;pwned\u0007-vm\r\n\tok\u009b')).toBe('gitlab?[2J?]0;pwned?-vm?\n\tok?')
  })
})
