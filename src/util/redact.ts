/**
 * One redactor for every log line, error message and JSON output. Secret values are
 * registered as they are loaded or generated; known secret shapes are masked too.
 */
const secrets = new Set<string>()
const MASK = '********'

export function registerSecret(value: string | undefined | null): void {
  // Very short values would mask innocent text; every generated secret is long.
  if (value && value.length >= 6) secrets.add(value)
}

const PATTERNS: Array<[RegExp, string]> = [
  // PVE API token header / value: user@realm!tokenid=uuid
  [/(PVEAPIToken=?\s*[^\s=!]+![^\s=]+[=:])[0-9a-fA-F-]{36}/g, `$1${MASK}`],
  [/([?&](?:password|token|secret)=)[^&\s]+/gi, `$1${MASK}`],
  [/(PVEAuthCookie=)[^;\s]+/g, `$1${MASK}`],
  // age identities (AGE-SECRET-KEY-1…): the key to every workspace archive.
  [/AGE-SECRET-KEY-(?:PQ-)?1[02-9AC-HJ-NP-Z]+/g, MASK],
  [/(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----)/g, `$1${MASK}$2`],
]

export function redact(text: string): string {
  let out = text
  for (const s of secrets) {
    if (out.includes(s)) out = out.split(s).join(MASK)
  }
  for (const [re, rep] of PATTERNS) out = out.replace(re, rep)
  return out
}

/** Redact every string inside a JSON-able value (for --json output and error envelopes). */
export function redactDeep<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T
  if (Array.isArray(value)) return value.map((v) => redactDeep(v)) as T
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = redactDeep(v)
    return out as T
  }
  return value
}
