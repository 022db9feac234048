// Named formats of the Proxmox VE API. The schema only names them (`format: "pve-vmid"`);
// their definitions live in Perl (pve-common PVE/JSONSchema.pm, qemu-server, pve-storage,
// pve-access-control). Re-implemented here for the formats autolabs sends; every other named
// format is accepted as-is (listed in UNCHECKED_FORMATS so a reader knows where the limits are).
//
// A checker returns undefined when the value is fine, or a message ("value does not look like
// a valid VM ID") that the validator reports as "invalid format - <message>", like PVE does.
// Composite formats (`key=value,...`) return an object {composite: <format dict>} instead.

const IPV4_OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)'
const IPV4_RE = new RegExp(`^${IPV4_OCTET}(?:\\.${IPV4_OCTET}){3}$`)
const IPV6_RE = /^(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}$/i
const STORAGE_ID_RE = /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i
const REALM_RE = /^[A-Za-z][A-Za-z0-9.\-_]+$/
const USER_RE = /^[^\s:/]+$/
const TOKEN_NAME_RE = /^[A-Za-z][A-Za-z0-9.\-_]+$/

export const PRIVILEGES_8 = [
  'Datastore.Allocate', 'Datastore.AllocateSpace', 'Datastore.AllocateTemplate', 'Datastore.Audit',
  'Group.Allocate', 'Mapping.Audit', 'Mapping.Modify', 'Mapping.Use', 'Permissions.Modify',
  'Pool.Allocate', 'Pool.Audit', 'Realm.Allocate', 'Realm.AllocateUser', 'SDN.Allocate', 'SDN.Audit',
  'SDN.Use', 'Sys.AccessNetwork', 'Sys.Audit', 'Sys.Console', 'Sys.Incoming', 'Sys.Modify',
  'Sys.PowerMgmt', 'Sys.Syslog', 'User.Modify', 'VM.Allocate', 'VM.Audit', 'VM.Backup', 'VM.Clone',
  'VM.Config.CDROM', 'VM.Config.CPU', 'VM.Config.Cloudinit', 'VM.Config.Disk', 'VM.Config.HWType',
  'VM.Config.Memory', 'VM.Config.Network', 'VM.Config.Options', 'VM.Console', 'VM.Migrate',
  'VM.Monitor', 'VM.PowerMgmt', 'VM.Snapshot', 'VM.Snapshot.Rollback',
]
// PVE 9.0 dropped VM.Monitor and split guest-agent access into VM.GuestAgent.* (pve-access-control 9).
export const PRIVILEGES_9 = [
  ...PRIVILEGES_8.filter((p) => p !== 'VM.Monitor'),
  'VM.GuestAgent.Audit', 'VM.GuestAgent.FileRead', 'VM.GuestAgent.FileSystemMgmt',
  'VM.GuestAgent.FileWrite', 'VM.GuestAgent.Unrestricted',
].sort()

export const CONTENT_TYPES = ['images', 'rootdir', 'vztmpl', 'iso', 'backup', 'snippets', 'import']

export function isIpv4(v) {
  return IPV4_RE.test(v)
}
function isIpv6(v) {
  return IPV6_RE.test(v) && (v.match(/::/g) ?? []).length <= 1
}
function cidr(v, family) {
  const m = /^(.+)\/(\d{1,3})$/.exec(v)
  if (!m) return false
  const bits = Number(m[2])
  if (family !== 6 && isIpv4(m[1])) return bits <= 32
  if (family !== 4 && isIpv6(m[1])) return bits <= 128
  return false
}
function volumeId(v) {
  return /^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$/i.test(v)
}

const ipconfigFormat = {
  ip: {type: 'string', format: 'pve-ipv4-config', optional: 1},
  gw: {type: 'string', format: 'ipv4', optional: 1},
  ip6: {type: 'string', format: 'pve-ipv6-config', optional: 1},
  gw6: {type: 'string', format: 'ipv6', optional: 1},
}
const pruneFormat = Object.fromEntries([
  ['keep-all', {type: 'boolean', optional: 1}],
  ...['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'].map((k) => [`keep-${k}`, {type: 'integer', minimum: 0, optional: 1}]),
])

/** @type {Record<string, (value: string, ctx: {privileges: string[]}) => string | undefined | {composite: object}>} */
export const FORMATS = {
  'pve-node': (v) => (/^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/.test(v) ? undefined : 'value does not look like a valid node name'),
  'pve-vmid': (v) => (/^[1-9][0-9]{2,8}$/.test(v) ? undefined : 'value does not look like a valid VM ID'),
  'pve-configid': (v) => (/^[a-z][a-z0-9_-]+$/i.test(v) ? undefined : `invalid configuration ID '${v}'`),
  'pve-storage-id': (v) => (STORAGE_ID_RE.test(v) ? undefined : `storage ID '${v}' contains illegal characters`),
  'pve-bridge-id': (v) => (/^[-_.\w\d]+$/.test(v) ? undefined : `invalid bridge ID '${v}'`),
  'pve-realm': (v) => (REALM_RE.test(v) ? undefined : `realm '${v}' contains invalid characters`),
  'pve-userid': (v) => {
    const m = /^(.+)@([^@]+)$/.exec(v)
    return m && USER_RE.test(m[1]) && REALM_RE.test(m[2]) && v.length <= 64 ? undefined : `value '${v}' does not look like a valid user name`
  },
  'pve-tokenid': (v) => {
    const m = /^(.+)@([^@!]+)!(.+)$/.exec(v)
    return m && USER_RE.test(m[1]) && REALM_RE.test(m[2]) && TOKEN_NAME_RE.test(m[3]) ? undefined : `value '${v}' does not look like a valid token ID`
  },
  'pve-roleid': (v) => (/^[A-Za-z0-9.\-_]+$/.test(v) ? undefined : `role name '${v}' contains invalid characters`),
  'pve-groupid': (v) => (/^[A-Za-z0-9.\-_]+$/.test(v) ? undefined : `group name '${v}' contains invalid characters`),
  'pve-poolid': (v) => (/^[A-Za-z0-9.\-_/]+$/.test(v) ? undefined : `pool name '${v}' contains invalid characters`),
  'pve-priv-list': (v, ctx) => {
    for (const p of v.split(/[\s,;]+/).filter(Boolean)) if (!ctx.privileges.includes(p)) return `invalid privilege '${p}'`
    return undefined
  },
  'pve-storage-content': (v) => (CONTENT_TYPES.includes(v) ? undefined : `invalid content type '${v}'`),
  'pve-calendar-event': (v) => (/^[\w\s:*,./~-]+$/.test(v) ? undefined : `unable to parse calendar event '${v}'`),
  'pve-day-of-week': (v) => (/^(mon|tue|wed|thu|fri|sat|sun)$/.test(v) ? undefined : `invalid day '${v}'`),
  ipv4: (v) => (isIpv4(v) ? undefined : `value does not look like a valid IPv4 address`),
  ipv6: (v) => (isIpv6(v) ? undefined : `value does not look like a valid IPv6 address`),
  ip: (v) => (isIpv4(v) || isIpv6(v) ? undefined : `value does not look like a valid IP address`),
  CIDR: (v) => (cidr(v) ? undefined : `value does not look like a valid CIDR network`),
  CIDRv4: (v) => (cidr(v, 4) ? undefined : `value does not look like a valid IPv4 CIDR network`),
  CIDRv6: (v) => (cidr(v, 6) ? undefined : `value does not look like a valid IPv6 CIDR network`),
  'pve-ipv4-config': (v) => (v === 'dhcp' || cidr(v, 4) ? undefined : `value does not look like a valid IPv4 network configuration`),
  'pve-ipv6-config': (v) => (v === 'dhcp' || v === 'auto' || cidr(v, 6) ? undefined : `value does not look like a valid IPv6 network configuration`),
  'mac-addr': (v) =>
    /^[a-f0-9]{2}(:[a-f0-9]{2}){5}$/i.test(v) && (Number.parseInt(v.slice(0, 2), 16) & 1) === 0 ? undefined : `value does not look like a valid unicast MAC address`,
  'disk-size': (v) => (/^(\d+(\.\d+)?)([KMGT])?$/.test(v) ? undefined : `unable to parse size '${v}'`),
  'pve-volume-id': (v) => (volumeId(v) ? undefined : `unable to parse volume ID '${v}'`),
  'pve-volume-id-or-qm-path': (v) =>
    v === 'none' || v === 'cdrom' || v.startsWith('/') || volumeId(v) ? undefined : `unable to parse volume ID '${v}'`,
  'pve-volume-id-or-absolute-path': (v) => (v.startsWith('/') || volumeId(v) ? undefined : `unable to parse volume ID '${v}'`),
  'pve-qm-ipconfig': () => ({composite: ipconfigFormat}),
  'prune-backups': () => ({composite: pruneFormat}),
  'pve-tag-list': (v) => (/^[a-z0-9_][a-z0-9_\-+.]*([;, ][a-z0-9_][a-z0-9_\-+.]*)*$/i.test(v) ? undefined : `invalid tag list '${v}'`),
  'dns-name': (v) => (/^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/.test(v) ? undefined : `value does not look like a valid DNS name`),
  address: (v) => (isIpv4(v) || isIpv6(v) || FORMATS['dns-name'](v) === undefined ? undefined : 'value does not look like a valid address'),
  urlencoded: (v) => (/^[-%a-zA-Z0-9_.!~*'()]*$/.test(v) ? undefined : `invalid urlencoded string '${v}'`),
}

/** Named formats the simulator does not check (their values pass as strings). */
export const UNCHECKED_FORMATS = [
  'pve-fw-*', 'pve-sdn-*', 'pve-qm-boot', 'pve-qm-bootdisk', 'pve-vm-cpu-conf', 'pve-qm-hostpci',
  'pve-qm-cicustom', 'pve-storage-*-path/portal/server/options', 'email-opt', 'email-or-username-list',
  'backup-fleecing', 'backup-performance', 'pem-*', 'ldap-*', '... every other named format',
]

/**
 * `<base>-list` formats split on PVE's list separators (`\0`, whitespace, `,`, `;`) and check each
 * element with the base format.
 */
export function lookupFormat(name) {
  if (FORMATS[name]) return FORMATS[name]
  const m = /^(.+)-list$/.exec(name)
  if (m && FORMATS[m[1]]) {
    const base = FORMATS[m[1]]
    return (v, ctx) => {
      for (const item of v.split(/[\0\s,;]+/).filter(Boolean)) {
        const err = base(item, ctx)
        if (err) return err
      }
      return undefined
    }
  }
  return undefined
}
