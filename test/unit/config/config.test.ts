import {describe, expect, it} from 'vitest'
import {parse} from 'yaml'

import {FIELD_DOCS} from '../../../src/config/docs.js'
import {renderConfigYaml, validateConfig} from '../../../src/config/load.js'
import {cidrContains, cidrsOverlap, hasHostBits} from '../../../src/config/net.js'
import {configSchema} from '../../../src/config/schema.js'
import {didYouMean} from '../../../src/config/validate.js'
import {ConfigError} from '../../../src/errors.js'
import {normalizeProxmoxUrl, parseMemory} from '../../../src/config/input.js'

function leafPaths(o: Record<string, unknown>, p = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) =>
    v && typeof v === 'object' && !Array.isArray(v) ? [`${p}${k}`, ...leafPaths(v as Record<string, unknown>, `${p}${k}.`)] : [`${p}${k}`],
  )
}

describe('the config schema', () => {
  it('gives the design document defaults for an empty file', () => {
    const {config, warnings} = validateConfig({})
    expect(config.network.subnet).toBe('192.168.100.0/24')
    expect([config.network.vms.gitlab.ip, config.network.vms.database.ip, config.network.vms.k8s.ip]).toEqual(['192.168.100.10', '192.168.100.20', '192.168.100.30'])
    expect(config.vms.gitlab).toMatchObject({cores: 4, memoryMiB: 8192, diskGiB: 100})
    expect(config.vms.database).toMatchObject({cores: 4, memoryMiB: 8192, diskGiB: 200})
    expect(config.vms.k8s).toMatchObject({cores: 4, memoryMiB: 8192, diskGiB: 200})
    expect(config.proxmox.templateVmid).toBe(9000)
    expect(config.services.postgres.version).toBe(17)
    expect(config.services.kubernetes.podCidr).toBe('10.244.0.0/16')
    expect(config.services.kubernetes.namespaces).toEqual(['platform', 'infrastructure', 'auth', 'messaging', 'labs', 'ingress-nginx'])
    expect(warnings).toEqual([])
  })

  it('documents every setting (comments in autolabs.yaml and the README reference)', () => {
    const missing = leafPaths(configSchema.parse({}) as Record<string, unknown>).filter((p) => !FIELD_DOCS[p])
    expect(missing).toEqual([])
  })

  it('warns (not fails) where the design table only recommends', () => {
    const {warnings} = validateConfig({vms: {gitlab: {memoryMiB: 4096}}})
    expect(warnings.map((w) => w.path)).toEqual(['vms.gitlab.memoryMiB'])
  })

  it('collects every bad field at once', () => {
    try {
      validateConfig({network: {vms: {gitlab: {ip: '10.0.0.1'}, k8s: {ip: '10.0.0.2'}}}})
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as ConfigError).issues.map((i) => i.path)).toEqual(['network.vms.gitlab.ip', 'network.vms.k8s.ip'])
      expect((error as ConfigError).exitCode).toBe(2)
    }
  })
})

describe('autolabs.yaml rendering', () => {
  it('writes every setting with a comment and reads back to the same config', () => {
    const config = configSchema.parse({name: 'lab1'})
    const text = renderConfigYaml(config)
    expect(text).toContain('# Environment name')
    expect(text).toContain('# VM subnet in CIDR form.')
    expect(configSchema.parse(parse(text))).toEqual(config)
  })

  it('updates an existing file in place, keeping the user comments', () => {
    const existing = '# my lab\nname: lab1 # keep\nnetwork:\n  # our office\n  subnet: 10.20.0.0/24\n'
    const out = renderConfigYaml({name: 'lab2', network: {subnet: '10.20.0.0/24'}}, existing)
    expect(out).toContain('# my lab')
    expect(out).toContain('# our office')
    expect(out).toContain('name: lab2')
  })
})

describe('helpers', () => {
  it('does IPv4 CIDR math', () => {
    expect(cidrContains('192.168.100.0/24', '192.168.100.254')).toBe(true)
    expect(cidrContains('192.168.100.0/24', '192.168.101.1')).toBe(false)
    expect(cidrsOverlap('192.168.0.0/16', '192.168.100.0/24')).toBe(true)
    expect(cidrsOverlap('10.244.0.0/16', '192.168.100.0/24')).toBe(false)
    expect(hasHostBits('10.0.0.1/8')).toBe(true)
    expect(hasHostBits('0.0.0.0/0')).toBe(false)
  })

  it('suggests the nearest known key', () => {
    expect(didYouMean('netwrok', ['network', 'name', 'vms'])).toBe('network')
    expect(didYouMean('zzzzzz', ['network', 'name'])).toBeUndefined()
  })

  it('normalises a Proxmox address to https with port 8006', () => {
    expect(normalizeProxmoxUrl('pve.lan')).toBe('https://pve.lan:8006')
    expect(normalizeProxmoxUrl('https://pve.lan:8443/')).toBe('https://pve.lan:8443')
    expect(normalizeProxmoxUrl('10.0.0.2')).toBe('https://10.0.0.2:8006')
  })

  it('reads memory sizes in G or MiB', () => {
    expect(parseMemory('16G')).toBe(16384)
    expect(parseMemory('12288')).toBe(12288)
    expect(parseMemory('8 GB')).toBe(8192)
    expect(parseMemory('lots')).toBeUndefined()
  })
})
