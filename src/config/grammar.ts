/**
 * The grammar of every free string autolabs accepts, in one table. Each rule is taken from
 * where the value lands (a Proxmox API parameter, a tfvars value, a file on the VMs, a line
 * of apt.conf) and is as strict as that place, or stricter: a value that passes here cannot
 * change the meaning of the file or request it is written into. README "Security" lists them.
 *
 * Proxmox formats: the API schema names them (`format: "pve-storage-id"`, /work/shared/pve-api)
 * and pve-common's PVE/JSONSchema.pm defines them; the simulator re-implements the same ones
 * (test/support/pve-sim/formats.mjs), so a value accepted here is accepted by the API.
 */

export interface StringRule {
  /** What the value must look like, said the way an error message continues "must be …". */
  expected: string
  /** Where the rule comes from (shown in the README's security table). */
  source: string
  pattern: RegExp
  maxLength: number
}

const rule = (expected: string, source: string, pattern: RegExp, maxLength: number): StringRule => ({expected, source, pattern, maxLength})

/**
 * An http(s) URL with a host, an optional port and at most a "/" path: no credentials (they
 * would be committed with autolabs.yaml), no query, no quotes, whitespace, ";" or control
 * characters. base.sh checks the same pattern before it writes the apt.conf line.
 */
const APT_PROXY_RE = /^https?:\/\/(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?\/?$/

export const RULES = {
  dnsLabel: rule('a DNS label: lowercase letters, digits and "-", 1–63 characters, not starting or ending with "-"', 'RFC 1123 label; VM names are PVE format dns-name', /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 63),
  dnsName: rule('a DNS name like lab.example.edu (letters, digits, "-" and ".")', 'RFC 1123; written as cloud-init searchdomain and into resolv.conf', /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/, 253),
  storageId: rule('a Proxmox storage id like local-lvm: a letter, then letters, digits, "-", "_" or ".", ending with a letter or digit', 'PVE format pve-storage-id', /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i, 64),
  nodeName: rule('a Proxmox node name: letters, digits and "-", not starting or ending with "-"', 'PVE format pve-node', /^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/, 63),
  bridge: rule('a Linux bridge name like vmbr0 (at most 15 characters)', 'PVE format pve-bridge-id; Linux IFNAMSIZ', /^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$/, 15),
  calendarEvent: rule('a Proxmox calendar event like 02:00 or "sat *-1..7 15:00"', 'PVE format pve-calendar-event (maxLength 128)', /^[\w :*,./~-]+$/, 128),
  userRealm: rule('user@realm', 'PVE format pve-userid', /^[^\s@!:/]+@[A-Za-z][A-Za-z0-9.\-_]+$/, 64),
  tokenId: rule('user@realm!tokenid', 'PVE format pve-tokenid', /^[^\s@!:/]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9._-]*$/, 128),
  roleId: rule('a Proxmox role id: letters, digits, ".", "_" and "-"', 'PVE format pve-roleid', /^[A-Za-z0-9._-]+$/, 64),
  linuxUser: rule('a Linux user name', 'useradd NAME_REGEX', /^[a-z_][a-z0-9_-]{0,31}$/, 32),
  aptProxy: rule(
    'an http(s) URL like http://10.0.0.5:3142: scheme, host, optional port; no user or password, path, query, quotes, spaces or ";"',
    'one line of apt.conf (Acquire::http::Proxy "…";) on every VM',
    APT_PROXY_RE,
    255,
  ),
  /** A file path in autolabs.yaml: no control characters (it is printed and passed on). */
  filePath: rule('a file path without control characters', 'the workstation file system', /^[^\u0000-\u001f\u007f]+$/, 4096),
} as const satisfies Record<string, StringRule>

export type RuleName = keyof typeof RULES

/** Upper bounds from Proxmox's own limits. */
export const LIMITS = {
  /** qemu-server PVE/QemuServer/Memory.pm: $MAX_MEM = 4194304 (MiB, 4 TiB). */
  memoryMiB: 4_194_304,
  /** The schema says "1 - N" (N = the host's CPUs, checked by preflight); 512 bounds a typo. */
  cores: 512,
  /**
   * Not in the API schema (a size is `\d+[KMGT]?`); 128 TiB is far above any single storage a
   * lab server has and keeps the number exact in JSON and HCL.
   */
  diskGiB: 131_072,
} as const

/** Why `value` breaks `rule`, or undefined when it is fine. */
export function ruleProblem(name: RuleName, value: string): string | undefined {
  const r: StringRule = RULES[name]
  if (value.length > r.maxLength) return `must be at most ${r.maxLength} characters`
  if (!r.pattern.test(value)) return `must be ${r.expected}`
  return undefined
}

/**
 * A URL the user gives for a server (Proxmox API, image mirror, GitLab): `schemes` only, a
 * host, no user:password (it would end up in autolabs.yaml, which is committed), and — unless
 * `path` — no path, query or fragment (they would be dropped silently otherwise).
 */
export function urlProblem(value: string, opts: {schemes: string[]; path?: boolean}): string | undefined {
  if (/[\u0000-\u0020\u007f"'`\\<>{}|^]/.test(value)) return 'must not contain spaces, quotes or control characters'
  const port = /^[a-z]+:\/\/[^/?#]*:(\d+)(?:[/?#]|$)/i.exec(value)?.[1]
  if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) return `port ${port} is not a TCP port (1–65535)`
  let u: URL
  try {
    u = new URL(value)
  } catch {
    return `must be a URL like ${opts.schemes[0]}//host`
  }
  if (!opts.schemes.includes(u.protocol)) return `must use ${opts.schemes.map((s) => `${s}//`).join(' or ')}, not ${u.protocol}`
  if (!u.hostname) return 'must name a host'
  if (u.username || u.password) return 'must not contain a user or password (autolabs.yaml is committed; credentials go to .autolabs/secrets.yaml)'
  if (!opts.path && (u.pathname !== '/' || u.search || u.hash)) return 'must be only scheme, host and port, without a path, query or fragment'
  return undefined
}

/**
 * Text for a terminal: control characters (escape sequences, carriage returns, bells) replaced
 * by "?", so a name from a file or a server cannot move the cursor or rewrite earlier lines.
 * Newlines and tabs are kept.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '?')
}
