/**
 * Defaults that follow earlier answers: the gateway and the VMs' addresses follow the subnet,
 * a suggested range never overlaps what is already in use (and is never the failing value).
 */
import {cidrsOverlap, intToIp, ipToInt, parseCidr} from './net.js'
import type {Role} from './schema.js'

/** The design's host numbers (.1 gateway, .10/.20/.30 the VMs), placed in the given subnet. */
const DESIGN_HOST = {gateway: 1, gitlab: 10, database: 20, k8s: 30} as const

function hostIn(subnet: string, host: number, taken: readonly string[]): string | undefined {
  let net
  try {
    net = parseCidr(subnet)
  } catch {
    return undefined
  }
  if (!Number.isInteger(net.prefix) || net.prefix > 30 || net.prefix < 0) return undefined
  const last = net.broadcast - 1
  const usable = last - net.network
  // A small subnet: hosts .2, .3, … in order; otherwise the design's number, then the next free.
  let n = net.network + (host < usable ? host : Math.min(usable, 2))
  for (let i = 0; i <= usable; i++, n = n >= last ? net.network + 1 : n + 1) if (!taken.includes(intToIp(n))) return intToIp(n)
  return undefined
}

export function gatewayDefault(subnet: string): string | undefined {
  return hostIn(subnet, DESIGN_HOST.gateway, [])
}

/** The role's address in the subnet, skipping the gateway and the addresses already given. */
export function vmIpDefault(subnet: string, role: Role, taken: readonly string[]): string | undefined {
  return hostIn(subnet, DESIGN_HOST[role], taken)
}


/**
 * A private range of the given size that overlaps none of `avoid`: `preferred` when it is free,
 * else the next block of that size through 10.0.0.0/8, then 172.16.0.0/12.
 */
export function freeRange(preferred: string, avoid: readonly string[]): string | undefined {
  const {prefix, network} = parseCidr(preferred)
  const size = 2 ** (32 - prefix)
  const free = (c: string) => !avoid.some((a) => cidrsOverlap(a, c))
  if (free(preferred)) return preferred
  for (const [start, end] of [
    [network, ipToInt('10.255.255.255')],
    [ipToInt('10.0.0.0'), network],
    [ipToInt('172.16.0.0'), ipToInt('172.31.255.255')],
  ])
    for (let n = start; n + size - 1 <= end; n += size) {
      const c = `${intToIp(n)}/${prefix}`
      if (free(c)) return c
    }
  return undefined
}
