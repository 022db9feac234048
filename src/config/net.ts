/** Small IPv4 helpers for the config's cross-field rules (no dependency needed for /32 math). */

export function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => (acc << 8) + Number(o), 0) >>> 0
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.')
}

export interface Cidr {
  network: number
  prefix: number
  size: number
  broadcast: number
}

export function parseCidr(cidr: string): Cidr {
  const [ip, p] = cidr.split('/')
  const prefix = Number(p)
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
  const network = (ipToInt(ip) & mask) >>> 0
  const size = 2 ** (32 - prefix)
  return {network, prefix, size, broadcast: (network + size - 1) >>> 0}
}

export function cidrContains(cidr: string, ip: string): boolean {
  const c = parseCidr(cidr)
  const n = ipToInt(ip)
  return n >= c.network && n <= c.broadcast
}

export function cidrsOverlap(a: string, b: string): boolean {
  const x = parseCidr(a)
  const y = parseCidr(b)
  return x.network <= y.broadcast && y.network <= x.broadcast
}

/** True when the address part of a CIDR has host bits set (192.168.100.5/24). */
export function hasHostBits(cidr: string): boolean {
  return parseCidr(cidr).network !== ipToInt(cidr.split('/')[0])
}
