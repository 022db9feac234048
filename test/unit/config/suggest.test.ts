import {describe, expect, it} from 'vitest'

import {freeRange, gatewayDefault, vmIpDefault} from '../../../src/config/defaults.js'
import {cidrsOverlap} from '../../../src/config/net.js'
import {closest} from '../../../src/ui/suggest.js'

describe('suggestions', () => {
  it('a free range is never one that overlaps what it must avoid', () => {
    expect(freeRange('10.244.0.0/16', ['192.168.100.0/24'])).toBe('10.244.0.0/16')
    const pod = freeRange('10.244.0.0/16', ['10.244.0.0/24', '10.96.0.0/12'])!
    expect(pod).not.toBe('10.244.0.0/16')
    expect(cidrsOverlap(pod, '10.244.0.0/24') || cidrsOverlap(pod, '10.96.0.0/12')).toBe(false)
    expect(freeRange('10.96.0.0/12', ['10.0.0.0/8'])).toBe('172.16.0.0/12')
  })

  it('the gateway and the addresses follow the subnet', () => {
    expect(gatewayDefault('10.20.0.0/24')).toBe('10.20.0.1')
    expect(vmIpDefault('10.20.0.0/24', 'database', ['10.20.0.1'])).toBe('10.20.0.20')
    expect(vmIpDefault('10.20.0.0/24', 'database', ['10.20.0.1', '10.20.0.20'])).toBe('10.20.0.21')
    // A /29 has six hosts: the gateway .1, the VMs from .2 on
    expect(vmIpDefault('10.20.0.0/29', 'gitlab', ['10.20.0.1'])).toBe('10.20.0.2')
    expect(vmIpDefault('10.20.0.0/29', 'k8s', ['10.20.0.1', '10.20.0.2', '10.20.0.3'])).toBe('10.20.0.4')
    expect(gatewayDefault('not a subnet')).toBeUndefined()
  })

  it('closest prefers a candidate whose beginning matches, and never returns the word', () => {
    expect(closest('--dri', ['--dns', '--dry-run', '--dir'])).toBe('--dry-run')
    expect(closest('stauts', ['status', 'init'])).toBe('status')
    expect(closest('status', ['status'])).toBeUndefined()
    expect(closest('xyzzy', ['status', 'init'])).toBeUndefined()
  })
})
