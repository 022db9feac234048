/** `autolabs backup list`: local backups (with their manifests) and autolabs' VM snapshots. */
import type {BackupManifest} from './manifest.js'
import {listLocalBackups} from './manifest.js'
import {snapshotId} from './id.js'
import type {SnapshotApi} from './parts.js'

export interface BackupListing {
  local: Array<{
    id: string
    status: BackupManifest['status'] | 'unfinished'
    parts: Array<{part: string; status: string; bytes: number}>
    bytes: number
    durationMs?: number
    problem?: string
  }>
  snapshots: Array<{vm: string; vmid: number; name: string; id?: string; autolabs: boolean; snaptime?: number; description?: string}>
  snapshotErrors: string[]
}

export async function listBackups(backupsDir: string, opts: {api?: SnapshotApi; node: string; vms: Array<{name: string; vmid: number}>}): Promise<BackupListing> {
  const local = (await listLocalBackups(backupsDir)).map((b) => {
    const parts = (b.manifest?.parts ?? []).map((p) => ({part: p.part, status: p.status, bytes: p.files.reduce((n, f) => n + f.bytes, 0)}))
    return {
      id: b.id,
      status: b.manifest?.status ?? ('unfinished' as const),
      parts,
      bytes: parts.reduce((n, p) => n + p.bytes, 0),
      ...(b.manifest ? {durationMs: b.manifest.durationMs} : {}),
      ...(b.problem ? {problem: b.problem} : {}),
    }
  })
  const snapshots: BackupListing['snapshots'] = []
  const snapshotErrors: string[] = []
  if (opts.api) {
    const api = opts.api
    await Promise.all(
      opts.vms.map(async (vm) => {
        try {
          for (const s of await api.listSnapshots(opts.node, vm.vmid)) {
            const id = snapshotId(s.name)
            snapshots.push({vm: vm.name, vmid: vm.vmid, name: s.name, ...(id ? {id} : {}), autolabs: Boolean(id), snaptime: s.snaptime, description: s.description})
          }
        } catch (error) {
          snapshotErrors.push(`${vm.name}: ${(error as Error).message}`)
        }
      }),
    )
  }
  snapshots.sort((a, b) => (a.vm === b.vm ? (b.snaptime ?? 0) - (a.snaptime ?? 0) : a.vm < b.vm ? -1 : 1))
  return {local, snapshots, snapshotErrors}
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = n
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`
}
