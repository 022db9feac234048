// The simulator's world: one node with storages, bridges, VMs, tasks, users, roles, tokens,
// ACLs and backup jobs. Plain data so tests can read and seed it directly.
import {createHash, randomUUID} from 'node:crypto'

const GiB = 1024 ** 3

export function defaultState({node = 'pve', release = '9.1', cpus = 16, memoryGiB = 64} = {}) {
  const adminTokenSecret = randomUUID()
  return {
    node,
    nodeInfo: {cpus, maxmem: memoryGiB * GiB, mem: 4 * GiB, cpu: 0.03, uptime: 86_400},
    storages: new Map([
      [
        'local',
        {storage: 'local', type: 'dir', path: '/var/lib/vz', content: new Set(['iso', 'vztmpl', 'backup']), total: 100 * GiB, used: 10 * GiB, enabled: true, shared: false},
      ],
      ['local-lvm', {storage: 'local-lvm', type: 'lvmthin', content: new Set(['images', 'rootdir']), total: 800 * GiB, used: 20 * GiB, enabled: true, shared: false}],
    ]),
    /** volid → {volid, storage, content, format, size, vmid?, ctime} */
    volumes: new Map(),
    network: [
      {iface: 'eno1', type: 'eth', active: 1, autostart: 1, method: 'manual', families: ['inet'], exists: 1, priority: 3},
      {
        iface: 'vmbr0',
        type: 'bridge',
        active: 1,
        autostart: 1,
        method: 'static',
        families: ['inet'],
        cidr: '10.0.0.2/24',
        address: '10.0.0.2',
        netmask: '24',
        gateway: '10.0.0.1',
        bridge_ports: 'eno1',
        bridge_stp: 'off',
        bridge_fd: '0',
        priority: 4,
      },
    ],
    /** vmid → VM */
    vms: new Map(),
    /** upid → task */
    tasks: new Map(),
    users: new Map([
      [
        'root@pam',
        {
          userid: 'root@pam',
          enable: 1,
          expire: 0,
          comment: 'Built-in Superuser',
          password: 'simulator-root-password',
          tokens: new Map([['autolabs', {privsep: 0, expire: 0, comment: 'admin token for tests', secret: adminTokenSecret}]]),
        },
      ],
    ]),
    roles: new Map(builtinRoles(release)),
    /** [{path, type: 'user'|'token'|'group', ugid, roleid, propagate}] */
    acl: [],
    /** id → job */
    backupJobs: new Map(),
    /** ticket → {userid, csrf, expired} */
    tickets: new Map(),
    /** URL → {size, sha256} served to download-url */
    downloads: new Map(),
  }
}

function builtinRoles(release) {
  const vmUser = ['VM.Audit', 'VM.Console', 'VM.Backup', 'VM.PowerMgmt', 'VM.Config.CDROM', 'VM.Config.Cloudinit']
  return [
    ['Administrator', {privs: new Set(['*']), special: 1}],
    ['NoAccess', {privs: new Set(), special: 1}],
    ['PVEAuditor', {privs: new Set(['Datastore.Audit', 'Mapping.Audit', 'Pool.Audit', 'SDN.Audit', 'Sys.Audit', 'VM.Audit']), special: 1}],
    ['PVEVMUser', {privs: new Set(release === '8.4' ? vmUser : [...vmUser, 'VM.GuestAgent.Audit']), special: 1}],
  ]
}

export function newVm(vmid, {name, node, config = {}, status = 'stopped', template = false}) {
  const cfg = {name: name ?? `vm${vmid}`, memory: '2048', cores: '2', ...config}
  if (template) cfg.template = '1'
  return {
    vmid,
    node,
    status,
    lock: undefined,
    config: cfg,
    snapshots: [],
    parent: undefined,
    startedAt: status === 'running' ? Date.now() : undefined,
    agent: {running: true, files: new Map(), interfaces: undefined, exec: undefined},
  }
}

export function digestOf(value) {
  return createHash('sha1').update(JSON.stringify(value)).digest('hex')
}

export const GIB = GiB
