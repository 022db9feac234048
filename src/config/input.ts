/** Normalisers for what users type at a prompt or in a flag. */

/**
 * Accept "pve.example", "pve.example:8443", "https://pve.example" → https://host:port. Anything
 * more (a user, a path, a query, another scheme, a bad port) is returned as typed, with the
 * scheme added, so that validation names what is wrong instead of it being dropped silently.
 */
export function normalizeProxmoxUrl(input: string): string {
  let s = input.trim()
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) s = `https://${s}`
  let u: URL
  try {
    u = new URL(s)
  } catch {
    return s
  }
  if (u.protocol !== 'https:' || u.username || u.password || u.search || u.hash || !['', '/'].includes(u.pathname)) return s
  if (!u.port) u.port = '8006'
  return `${u.protocol}//${u.host}`
}

/** "16G", "16GB", "12288", "12288M" → MiB. */
export function parseMemory(input: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(g|gb|gib|m|mb|mib)?\s*$/i.exec(input)
  if (!m) return undefined
  const n = Number(m[1])
  const unit = (m[2] ?? 'm').toLowerCase()
  return Math.round(unit.startsWith('g') ? n * 1024 : n)
}
