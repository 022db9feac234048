/**
 * Backup ids are UTC timestamps, `20261125-191829`: they sort by time, name the folder
 * `backups/<id>/` and the Proxmox snapshots `autolabs-<id>` (a valid pve-configid: letter first,
 * [A-Za-z0-9_-], ≤ 40 characters).
 */

export const SNAPSHOT_PREFIX = 'autolabs-'
const ID_RE = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})$/
/** Only snapshots named exactly like this are autolabs' own; retention touches nothing else. */
export const SNAPSHOT_RE = /^autolabs-(\d{8}-\d{6})$/

export function backupId(d: Date): string {
  const iso = d.toISOString() // 2026-11-25T19:18:29.123Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`
}

export function isBackupId(s: string): boolean {
  return parseBackupId(s) !== undefined
}

export function parseBackupId(s: string): Date | undefined {
  const m = ID_RE.exec(s)
  if (!m) return undefined
  const [, y, mo, d, h, mi, se] = m.map(Number)
  const date = new Date(Date.UTC(y, mo - 1, d, h, mi, se))
  return backupId(date) === s ? date : undefined // rejects 20261340-…
}

export function snapshotName(id: string): string {
  return `${SNAPSHOT_PREFIX}${id}`
}

/** The backup id of an autolabs snapshot name, or undefined for anybody else's snapshot. */
export function snapshotId(name: string): string | undefined {
  const m = SNAPSHOT_RE.exec(name)
  return m && isBackupId(m[1]) ? m[1] : undefined
}
