import {afterEach, describe, expect, it} from 'vitest'

import {discover} from '../../../src/proxmox/discover.js'
import {clientFor} from '../../support/pve-sim/connect.js'
import {type PveSim, type PveSimOptions, startPveSim} from '../../support/pve-sim/index.mjs'

const GiB = 1024 ** 3
const open: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of open.splice(0)) await f()
})
async function run(seed: (sim: PveSim) => void = () => {}, opts: PveSimOptions = {}, node?: string) {
  const sim = await startPveSim(opts)
  seed(sim)
  const c = await clientFor(sim)
  open.push(async () => {
    expect(sim.invalidRequests).toEqual([])
    await c.close()
    await sim.stop()
  })
  return discover(c, {node})
}

describe("the wizard's discovery", () => {
  it('offers the node, storages with content and free space, and bridges, with sensible defaults', async () => {
    const d = await run((sim) => sim.setStorage('local', {content: ['iso', 'vztmpl', 'backup', 'import']}))
    expect(d.version).toBe('9.1.3')
    expect(d.node).toBe('pve')
    expect(d.storages.map((s) => [s.storage, s.content, s.avail])).toEqual([
      ['local', ['backup', 'import', 'iso', 'vztmpl'], 90 * GiB],
      ['local-lvm', ['images', 'rootdir'], 780 * GiB],
    ])
    expect(d.bridges.map((b) => b.iface)).toEqual(['vmbr0'])
    expect(d.defaults).toEqual({node: 'pve', vmStorage: 'local-lvm', imageStorage: 'local', bridge: 'vmbr0'})
    expect(d.imageStorageNeedsImport).toBe(false)
    expect(d.notes).toEqual([])
  })

  it('picks the storage with the most free space when there is no local-lvm', async () => {
    const d = await run((sim) => {
      sim.state.storages.delete('local-lvm')
      sim.setStorage('ssd', {type: 'lvmthin', content: ['images'], total: 200 * GiB, used: 0})
      sim.setStorage('hdd', {type: 'lvmthin', content: ['images'], total: 2000 * GiB, used: 0})
    })
    expect(d.defaults.vmStorage).toBe('hdd')
  })

  it('proposes a file storage for the image and says it needs "import" enabled', async () => {
    const d = await run()
    expect(d.defaults.imageStorage).toBe('local')
    expect(d.imageStorageNeedsImport).toBe(true)
    expect(d.notes).toContain('Storage "local" can hold the cloud image once the "import" content type is enabled on it.')
  })

  it('rejects an unknown node, naming the real ones', async () => {
    await expect(run(undefined, {}, 'pve9')).rejects.toThrow('Proxmox has no node "pve9" (it has: pve).')
  })

  it('notes a PVE too old for the import content type', async () => {
    const d = await run(undefined, {version: '8.4', reportVersion: '8.3.2'})
    expect(d.pveMajor).toBe(8)
    expect(d.notes.some((n) => n.includes('too old'))).toBe(true)
  })
})
