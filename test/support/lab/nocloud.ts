/**
 * The NoCloud seed a Proxmox VM made by autolabs boots from, for lab machines that are cloud
 * images (lab.ts `image: 'debian-cloud' | 'ubuntu-like'`).
 *
 * Proxmox writes a "cidata" drive with user-data, network-config, meta-data and vendor-data from
 * the VM's cloud-init options (ciuser, sshkeys, ipconfig0, nameserver, searchdomain, cicustom,
 * ciupgrade). Proxmox cannot run here, so this is a port of the code that writes it —
 * proxmox/qemu-server src/PVE/QemuServer/Cloudinit.pm (qemu-server 9.2.6, commit
 * e6352be67f70042a7433a3a3c712b36d02f9f7cb): `cloudinit_userdata`, `nocloud_network` (the v1
 * format `generate_nocloud` uses), `nocloud_gen_metadata` (instance-id = sha1(user . network))
 * and `get_hostname_fqdn` — byte for byte, including the indentation and the quotes.
 *
 * The options come from the project's own rendering: `terraformVariables()` (src/render/
 * terraform.ts) gives what the `initialization` block of assets/terraform/<role>-vm.tf sends —
 * `user_account` (ciuser + sshkeys) in builtin mode, the rendered snippet as cicustom user= in
 * snippet mode (src/render/cloud-init.ts), and in both modes `ip_config` (ipconfig0) and `dns`
 * (nameserver, searchdomain). `upgrade` is not set there, so Proxmox's default ciupgrade=1 holds.
 */
import {createHash} from 'node:crypto'

import type {Role} from '../../../src/config/schema.js'
import type {TerraformVariables} from '../../../src/render/terraform.js'
import type {NoCloudSeed} from './lab.js'

/** The VM options Cloudinit.pm reads (names as in `qm config`). */
export interface ProxmoxCloudInitOptions {
  name: string
  ciuser?: string
  sshkeys?: string[]
  /** `ip=<addr>/<prefix>[,gw=<gateway>]` */
  ipconfig0: string
  /** Space-separated, as Proxmox stores it. */
  nameserver?: string
  searchdomain?: string
  /** net0's MAC address. */
  macaddr: string
  ciupgrade?: boolean
  /** cicustom user=<snippet>: its text replaces the generated user-data. */
  cicustomUser?: string
}

function netmaskOf(prefix: number): string {
  const bits = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0
  return [24, 16, 8, 0].map((s) => (bits >>> s) & 255).join('.')
}

function hostnameFqdn(o: ProxmoxCloudInitOptions): [string, string] {
  if (o.name.includes('.')) return [o.name.replace(/\..*$/, ''), o.name]
  return [o.name, o.searchdomain ? `${o.name}.${o.searchdomain}` : o.name]
}

/** Cloudinit.pm `cloudinit_userdata`. */
export function proxmoxUserData(o: ProxmoxCloudInitOptions): string {
  const [hostname, fqdn] = hostnameFqdn(o)
  let c = '#cloud-config\n'
  c += `hostname: ${hostname}\n`
  c += 'manage_etc_hosts: true\n'
  c += `fqdn: ${fqdn}\n`
  if (o.ciuser !== undefined) c += `user: ${o.ciuser}\n`
  if (o.ciuser === 'root') c += 'disable_root: False\n'
  const keys = (o.sshkeys ?? []).map((k) => k.trim()).filter((k) => /\S/.test(k))
  if (o.sshkeys !== undefined) {
    c += 'ssh_authorized_keys:\n'
    for (const k of keys) c += `  - ${k}\n`
  }
  c += 'chpasswd:\n'
  c += '  expire: False\n'
  if (o.ciuser !== 'root') c += 'users:\n  - default\n'
  if (o.ciupgrade ?? true) c += 'package_upgrade: true\n'
  return c
}

/** Cloudinit.pm `nocloud_network` (network config version 1), for net0 only. */
export function proxmoxNetworkConfig(o: ProxmoxCloudInitOptions): string {
  let c = 'version: 1\nconfig:\n'
  const i = '    '
  c += `${i}- type: physical\n${i}  name: eth0\n${i}  mac_address: '${o.macaddr.toLowerCase()}'\n${i}  subnets:\n`
  const ii = `${i}  `
  const ip = /(?:^|,)ip=([^,]+)/.exec(o.ipconfig0)?.[1]
  const gw = /(?:^|,)gw=([^,]+)/.exec(o.ipconfig0)?.[1]
  if (ip === 'dhcp') c += `${ii}- type: dhcp4\n`
  else if (ip) {
    const [addr, prefix] = ip.split('/')
    if (prefix === undefined) throw new Error(`not a CIDR: ${ip}`)
    c += `${ii}- type: static\n${ii}  address: '${addr}'\n${ii}  netmask: '${netmaskOf(Number(prefix))}'\n`
    if (gw) c += `${ii}  gateway: '${gw}'\n`
  }
  // get_dns_conf: the VM's values (the host's resolv.conf only when unset; autolabs always sets both).
  const search = (o.searchdomain ?? '').split(/\s+/).filter(Boolean)
  const servers = (o.nameserver ?? '').split(/\s+/).filter(Boolean)
  c += `${i}- type: nameserver\n`
  if (servers.length > 0) {
    c += `${i}  address:\n`
    for (const s of servers) c += `${i}  - '${s}'\n`
  }
  if (search.length > 0) {
    c += `${i}  search:\n`
    for (const s of search) c += `${i}  - '${s}'\n`
  }
  return c
}

/** Cloudinit.pm `generate_nocloud`: the four files of the cidata drive. */
export function proxmoxNoCloudSeed(o: ProxmoxCloudInitOptions): NoCloudSeed {
  const userData = o.cicustomUser ?? proxmoxUserData(o)
  const networkConfig = proxmoxNetworkConfig(o)
  const metaData = `instance-id: ${createHash('sha1').update(userData + networkConfig).digest('hex')}\n`
  return {userData, networkConfig, metaData, vendorData: ''}
}

/**
 * What the bpg provider sets on a VM from the rendered terraform.tfvars.json (the
 * `initialization` block of assets/terraform/<role>-vm.tf), then the seed Proxmox makes of it.
 * `snippet` is the role's rendered user-data in snippet mode.
 */
export function seedFromTerraform(vars: TerraformVariables, role: Role, macaddr: string, snippet?: string): NoCloudSeed {
  const vm = vars.vms[role]
  const builtin = vars.cloud_init_mode === 'builtin'
  if (!builtin && snippet === undefined) throw new Error(`snippet mode: give ${role}'s rendered user-data`)
  return proxmoxNoCloudSeed({
    name: vm.name,
    ciuser: builtin ? vars.vm_user : undefined,
    sshkeys: builtin ? vars.ssh_public_keys : undefined,
    ipconfig0: `ip=${vm.ip}/${vars.network.prefix_length},gw=${vars.network.gateway}`,
    nameserver: vars.network.dns_servers.join(' '),
    searchdomain: vars.network.search_domain ?? undefined,
    macaddr,
    cicustomUser: builtin ? undefined : snippet,
  })
}
