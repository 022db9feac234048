import {describe, expect, it} from 'vitest'

import {backupId, isBackupId, parseBackupId, snapshotId, snapshotName} from '../../../src/backup/id.js'
import {dayKey, isoWeekKey, planRetention, type RetentionItem} from '../../../src/backup/retention.js'

const at = (iso: string, complete?: boolean): RetentionItem => {
  const time = new Date(iso)
  return {id: backupId(time), time, ...(complete === undefined ? {} : {complete})}
}
/** One backup per day at 02:00 UTC for `days` days ending on `last`. */
const daily = (last: string, days: number) =>
  Array.from({length: days}, (_, i) => at(new Date(new Date(last).getTime() - i * 86_400_000).toISOString()))
const ids = (xs: Array<{id: string}>) => xs.map((x) => x.id)

describe('backup ids', () => {
  it('are sortable UTC timestamps that round-trip', () => {
    const d = new Date('2026-11-25T19:18:29.987Z')
    expect(backupId(d)).toBe('20261125-191829')
    expect(parseBackupId('20261125-191829')?.toISOString()).toBe('2026-11-25T19:18:29.000Z')
  })

  it('reject impossible dates and other shapes', () => {
    for (const s of ['20261340-101010', '20261125-251000', '2026-11-25', '20261125191829', '../20261125-191829', '']) expect(isBackupId(s), s).toBe(false)
  })

  it('name snapshots autolabs-<id> and recognise only exactly that shape as autolabs-made', () => {
    expect(snapshotName('20261125-191829')).toBe('autolabs-20261125-191829')
    expect(snapshotId('autolabs-20261125-191829')).toBe('20261125-191829')
    for (const other of ['before-upgrade', 'autolabs-manual', 'autolabs-20261125-191829-x', 'xautolabs-20261125-191829', 'autolabs-20261399-000000', 'current'])
      expect(snapshotId(other), other).toBeUndefined()
  })
})

describe('period keys', () => {
  it('uses ISO weeks: Monday starts a week, and the year of its Thursday names it', () => {
    expect(isoWeekKey(new Date('2026-11-23T00:00:00Z'))).toBe('2026-W48') // Monday
    expect(isoWeekKey(new Date('2026-11-29T23:59:59Z'))).toBe('2026-W48') // Sunday
    expect(isoWeekKey(new Date('2026-11-30T00:00:00Z'))).toBe('2026-W49')
    expect(isoWeekKey(new Date('2021-01-03T12:00:00Z'))).toBe('2020-W53')
    expect(isoWeekKey(new Date('2024-12-30T12:00:00Z'))).toBe('2025-W01')
    expect(dayKey(new Date('2026-11-25T23:59:59Z'))).toBe('2026-11-25')
  })
})

describe('planRetention (Proxmox prune semantics)', () => {
  it('keeps 7 daily and 4 more weekly backups out of 60 days of nightly backups', () => {
    // Given nightly backups from 2026-09-27 to 2026-11-25 (a Wednesday)
    const items = daily('2026-11-25T02:00:00Z', 60)
    // When keep-daily 7, keep-weekly 4
    const {keep, remove} = planRetention(items, {keepDaily: 7, keepWeekly: 4})
    // Then the last 7 days are kept, then the newest backup of each of the 4 weeks before them
    expect(keep.map((k) => dayKey(k.time))).toEqual([
      '2026-11-25', '2026-11-24', '2026-11-23', '2026-11-22', '2026-11-21', '2026-11-20', '2026-11-19',
      // 11-19 (Thu) is in W47 whose newest day 11-22 is already kept, so weekly starts at W46
      '2026-11-15', '2026-11-08', '2026-11-01', '2026-10-25',
    ])
    expect(keep).toHaveLength(11)
    expect(remove).toHaveLength(49)
    expect(keep[7].reason).toBe('newest of week 2026-W46')
    expect(new Set([...ids(keep), ...ids(remove)]).size).toBe(60)
  })

  it('keeps only the newest backup of a day when several were taken that day', () => {
    const items = [at('2026-11-25T02:00:00Z'), at('2026-11-25T14:00:00Z'), at('2026-11-24T02:00:00Z')]
    const {keep, remove} = planRetention(items, {keepDaily: 7, keepWeekly: 0})
    expect(ids(keep)).toEqual(['20261125-140000', '20261124-020000'])
    expect(ids(remove)).toEqual(['20261125-020000'])
    expect(remove[0].reason).toMatch(/older backup of day 2026-11-25/)
  })

  it('counts days that have backups, not calendar days: gaps do not expire old backups early', () => {
    const items = [at('2026-11-25T02:00:00Z'), at('2026-10-01T02:00:00Z'), at('2026-06-01T02:00:00Z')]
    const {keep, remove} = planRetention(items, {keepDaily: 2, keepWeekly: 0})
    expect(ids(keep)).toEqual(['20261125-020000', '20261001-020000'])
    expect(ids(remove)).toEqual(['20260601-020000'])
  })

  it('never keeps more than keepDaily + keepWeekly backups', () => {
    for (const [d, w] of [[1, 1], [3, 2], [7, 4], [0, 3], [5, 0]]) {
      const {keep} = planRetention(daily('2026-11-25T02:00:00Z', 120), {keepDaily: d, keepWeekly: w})
      expect(keep.length, `${d}/${w}`).toBe(d + w)
    }
  })

  it('with keep-daily 0 keeps the newest backup of each of the last keep-weekly weeks', () => {
    const {keep} = planRetention(daily('2026-11-25T02:00:00Z', 30), {keepDaily: 0, keepWeekly: 2})
    expect(keep.map((k) => dayKey(k.time))).toEqual(['2026-11-25', '2026-11-22'])
  })

  it('turns retention off when both counts are 0 (keeps everything, as Proxmox keep-all)', () => {
    const items = daily('2026-11-25T02:00:00Z', 10)
    const {keep, remove} = planRetention(items, {keepDaily: 0, keepWeekly: 0})
    expect(keep).toHaveLength(10)
    expect(remove).toHaveLength(0)
  })

  it('does not let an incomplete backup take a day, and removes it once a newer complete one exists', () => {
    const items = [at('2026-11-25T02:00:00Z', false), at('2026-11-24T02:00:00Z'), at('2026-11-23T02:00:00Z', false)]
    const {keep, remove} = planRetention(items, {keepDaily: 1, keepWeekly: 0})
    // the failed newest one is kept (it is the newest data there is); the complete 11-24 takes the one daily slot
    expect(ids(keep)).toEqual(['20261125-020000', '20261124-020000'])
    expect(keep[0].reason).toMatch(/incomplete, but no newer complete backup/)
    expect(ids(remove)).toEqual(['20261123-020000'])
    expect(remove[0].reason).toMatch(/superseded by 20261124-020000/)
  })

  it('never removes the only backup even if it is incomplete', () => {
    const {keep, remove} = planRetention([at('2026-11-25T02:00:00Z', false)], {keepDaily: 7, keepWeekly: 4})
    expect(keep).toHaveLength(1)
    expect(remove).toHaveLength(0)
  })

  it('is independent of input order', () => {
    const items = daily('2026-11-25T02:00:00Z', 40)
    const shuffled = [...items].reverse()
    expect(ids(planRetention(shuffled, {keepDaily: 7, keepWeekly: 4}).keep)).toEqual(ids(planRetention(items, {keepDaily: 7, keepWeekly: 4}).keep))
  })

  it('rejects negative or fractional counts naming the field', () => {
    expect(() => planRetention([], {keepDaily: -1, keepWeekly: 4})).toThrow(/keepDaily must be a whole number/)
    expect(() => planRetention([], {keepDaily: 7, keepWeekly: 1.5})).toThrow(/keepWeekly/)
  })
})
