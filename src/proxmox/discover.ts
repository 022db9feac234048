import {UserError} from '../errors.js'
import type {ProxmoxClient} from './client.js'
import type {Bridge, NodeInfo, StorageInfo} from './types.js'

/** Storage types that keep files (and so can hold `import` content). */
const FILE_STORAGE_TYPES = new Set(['dir', 'nfs', 'cifs', 'cephfs', 'glusterfs', 'btrfs', 'zfs'])

export interface Discovery {
  version: string
  pveMajor: number
  nodes: NodeInfo[]
  node: string
  storages: StorageInfo[]
  bridges: Bridge[]
  defaults: {node: string; vmStorage?: string; imageStorage?: string; bridge?: string}
  /** The default image storage lacks `import`; the wizard offers to enable it. */
  imageStorageNeedsImport: boolean
  notes: string[]
}

/** What the wizard offers: nodes, storages (content, free space), bridges, with default picks. */
export async function discover(client: ProxmoxClient, opts: {node?: string} = {}): Promise<Discovery> {
  const version = await client.version()
  const nodes = await client.nodes()
  if (nodes.length === 0) throw new UserError('Proxmox lists no nodes for these credentials.', {suggestion: 'Give the token Sys.Audit on / (or use an administrator token for init).'})
  const online = nodes.filter((n) => n.status === 'online')
  const node = opts.node ?? (online[0] ?? nodes[0]).node
  if (!nodes.some((n) => n.node === node))
    throw new UserError(`Proxmox has no node "${node}" (it has: ${nodes.map((n) => n.node).join(', ')}).`, {suggestion: 'Pass --proxmox-node with one of those names.'})
  const storages = (await client.storages(node)).filter((s) => s.enabled && s.active)
  const bridges = await client.bridges(node)
  const notes: string[] = []

  const byFree = (a: StorageInfo, b: StorageInfo) => b.avail - a.avail
  const images = storages.filter((s) => s.content.includes('images')).sort(byFree)
  const vmStorage = (images.find((s) => s.storage === 'local-lvm') ?? images[0])?.storage
  if (!vmStorage) notes.push('No storage on this node holds VM disks (content "images"); add one in Datacenter → Storage.')

  const withImport = storages.filter((s) => s.content.includes('import')).sort(byFree)
  let imageStorage = (withImport.find((s) => s.storage === 'local') ?? withImport[0])?.storage
  let imageStorageNeedsImport = false
  if (!imageStorage) {
    const fileBased = storages.filter((s) => FILE_STORAGE_TYPES.has(s.type)).sort(byFree)
    imageStorage = (fileBased.find((s) => s.storage === 'local') ?? fileBased[0])?.storage
    imageStorageNeedsImport = Boolean(imageStorage)
    if (imageStorage) notes.push(`Storage "${imageStorage}" can hold the cloud image once the "import" content type is enabled on it.`)
    else notes.push('No file-based storage can hold the cloud image (content "import").')
  }
  const active = bridges.filter((b) => b.active)
  const bridge = (active.find((b) => b.iface === 'vmbr0') ?? active[0] ?? bridges[0])?.iface
  if (!bridge) notes.push('No Linux bridge on this node; create vmbr0 (System → Network) first.')
  if (version.major < 8 || (version.major === 8 && version.minor < 4)) notes.push(`PVE ${version.version} is too old: autolabs needs 8.4 or newer (9.x recommended).`)

  return {
    version: version.version,
    pveMajor: version.major,
    nodes,
    node,
    storages,
    bridges,
    defaults: {node, vmStorage, imageStorage, bridge},
    imageStorageNeedsImport,
    notes,
  }
}
