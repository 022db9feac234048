/**
 * Retention: which backups to keep, with Proxmox's own prune semantics (PVE::Storage
 * prune_mark_backup_group), so that local backups, autolabs' snapshots and the scheduled
 * vzdump job all age the same way. Pure: time in, decision out.
 *
 * Rules run in order (daily, then weekly) over the backups sorted newest first. A rule keeps
 * the newest backup of each period (UTC day, ISO week) not already covered by a backup an
 * earlier rule kept, until it has kept `keep` periods. Everything left unmarked is removed.
 */

export interface RetentionPolicy {
  keepDaily: number
  keepWeekly: number
}

export interface RetentionItem {
  id: string
  /** When the backup was taken. */
  time: Date
  /**
   * false for a backup with a failed part: it never counts as a kept period, and it is removed
   * once a newer complete backup exists (never while it is the newest data there is).
   */
  complete?: boolean
}

export interface RetentionDecision<T extends RetentionItem> {
  keep: Array<T & {reason: string}>
  remove: Array<T & {reason: string}>
}

export function dayKey(d: Date): string {
  return d.toISOString().slice(0, 10)
}

/** ISO 8601 week (e.g. 2026-W48), in UTC: weeks start on Monday, week 1 holds January 4. */
export function isoWeekKey(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()))
  const dow = t.getUTCDay() || 7
  t.setUTCDate(t.getUTCDate() + 4 - dow) // the Thursday of this week decides the year
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1)
  const week = Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7)
  return `${t.getUTCFullYear()}-W${String(week).padStart(2, '0')}`
}

export function validatePolicy(p: RetentionPolicy): string | undefined {
  for (const [k, v] of Object.entries(p)) {
    if (!Number.isInteger(v) || v < 0) return `${k} must be a whole number ≥ 0 (got ${v})`
  }
  return undefined
}

/**
 * Decide what to keep. With both counts 0, retention is off and everything is kept (as a
 * Proxmox storage without prune options keeps all).
 */
export function planRetention<T extends RetentionItem>(items: T[], policy: RetentionPolicy): RetentionDecision<T> {
  const bad = validatePolicy(policy)
  if (bad) throw new RangeError(bad)
  const sorted = [...items].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : -1))
  if (policy.keepDaily === 0 && policy.keepWeekly === 0) {
    return {keep: sorted.map((i) => ({...i, reason: 'retention off (keep-daily and keep-weekly are 0)'})), remove: []}
  }

  const mark = new Map<string, {keep: boolean; reason: string}>()
  const complete = sorted.filter((i) => i.complete !== false)

  const rule = (keepCount: number, key: (d: Date) => string, label: string) => {
    if (keepCount <= 0) return
    const already = new Set(complete.filter((i) => mark.get(i.id)?.keep).map((i) => key(i.time)))
    const newly = new Set<string>()
    for (const item of complete) {
      if (mark.has(item.id)) continue
      const k = key(item.time)
      if (already.has(k)) continue
      if (!newly.has(k)) {
        if (newly.size >= keepCount) break
        newly.add(k)
        mark.set(item.id, {keep: true, reason: `${label} ${k}`})
      } else {
        mark.set(item.id, {keep: false, reason: `older backup of ${label.replace('newest of ', '')} ${k}`})
      }
    }
  }
  rule(policy.keepDaily, dayKey, 'newest of day')
  rule(policy.keepWeekly, isoWeekKey, 'newest of week')

  const newestComplete = complete[0]
  const keep: RetentionDecision<T>['keep'] = []
  const remove: RetentionDecision<T>['remove'] = []
  for (const item of sorted) {
    const m = mark.get(item.id)
    if (item.complete === false) {
      if (newestComplete && newestComplete.time.getTime() >= item.time.getTime()) {
        remove.push({...item, reason: `incomplete, superseded by ${newestComplete.id}`})
      } else keep.push({...item, reason: 'incomplete, but no newer complete backup exists'})
    } else if (m?.keep) keep.push({...item, reason: m.reason})
    else remove.push({...item, reason: m?.reason ?? `outside keep-daily ${policy.keepDaily} / keep-weekly ${policy.keepWeekly}`})
  }
  return {keep, remove}
}
