import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {describe, expect, it} from 'vitest'

import {backupId} from '../../../src/backup/id.js'
import {PG_BASE_SCRIPT_FILE} from '../../../src/backup/pitr-remote.js'
import {planRetention} from '../../../src/backup/retention.js'

// database-vm runs its own base backups and prunes the WAL archive while the workstation is
// off, so the retention rule exists twice: src/backup/retention.ts and the script's bash.
// Both must decide alike; the bash runs here for real.
const keepBash = (ids: string[], daily: number, weekly: number): string[] =>
  execFileSync('bash', [PG_BASE_SCRIPT_FILE, 'keep', String(daily), String(weekly)], {input: ids.join('\n') + '\n', encoding: 'utf8'})
    .split('\n')
    .filter(Boolean)

const keepTs = (ids: string[], daily: number, weekly: number): string[] =>
  planRetention(
    ids.map((id) => ({id, time: new Date(`${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T${id.slice(9, 11)}:${id.slice(11, 13)}:${id.slice(13, 15)}Z`)})),
    {keepDaily: daily, keepWeekly: weekly},
  ).keep.map((k) => k.id)

/** Deterministic pseudo-random numbers (mulberry32), so a failure reproduces. */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d_2b_79_f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
}

describe('autolabs-pg-base (the script database-vm runs)', () => {
  it.skipIf(!existsSync('/usr/bin/shellcheck') && !process.env.CI)('is shellcheck-clean', () => {
    expect(execFileSync('shellcheck', ['-S', 'warning', PG_BASE_SCRIPT_FILE], {encoding: 'utf8'})).toBe('')
  })

  it('keeps the same base backups as planRetention: a simulated month of daily backups, 7 daily / 4 weekly', () => {
    const ids = Array.from({length: 35}, (_, i) => backupId(new Date(Date.UTC(2026, 10, 1 + i, 2))))
    const kept = keepBash(ids, 7, 4)
    expect(kept).toEqual(keepTs(ids, 7, 4))
    expect(kept).toHaveLength(11)
  })

  it('keeps the same base backups as planRetention on random histories (several a day, gaps, year ends)', () => {
    const next = rng(14)
    for (let round = 0; round < 25; round++) {
      const start = Date.UTC(2026, 11, 1) - Math.floor(next() * 60) * 86_400_000
      const ids = [...new Set(Array.from({length: 1 + Math.floor(next() * 30)}, () => backupId(new Date(start + Math.floor(next() * 50 * 86_400_000)))))]
      const daily = Math.floor(next() * 9)
      const weekly = Math.floor(next() * 6)
      expect(keepBash(ids, daily, weekly), `${daily}/${weekly} of ${ids.join(' ')}`).toEqual(keepTs(ids, daily, weekly))
    }
  })

  it('keeps everything with retention off, nothing from no input, and refuses a bad count', () => {
    const ids = ['20261201-020000', '20261201-030000']
    expect(keepBash(ids, 0, 0)).toEqual(['20261201-030000', '20261201-020000'])
    expect(keepBash([], 7, 4)).toEqual([])
    expect(() => execFileSync('bash', [PG_BASE_SCRIPT_FILE, 'take', '--keep-daily', 'x'], {stdio: 'pipe'})).toThrow(/whole numbers/)
  })
})
