import {mkdir, mkdtemp, readdir, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {pitrQuestion} from '../../../src/commands/backup/restore.js'
import {type BackupManifest, writeManifest} from '../../../src/backup/manifest.js'
import {parseHistory, parseTarget, planPitr, pruneLocalWal, segmentPosition} from '../../../src/backup/pitr.js'
import {pgBaseUnits} from '../../../src/backup/schedule.js'
import {parseWalArchive} from '../../../src/status/probes.js'

// A backup history file as PostgreSQL 15 writes it (src/backend/access/transam/xlog.c,
// do_pg_backup_stop, REL_15_STABLE): the backup_label lines plus STOP WAL LOCATION / STOP TIME.
const HISTORY = `START WAL LOCATION: 0/5000028 (file 000000010000000000000005)
STOP WAL LOCATION: 0/5000100 (file 000000010000000000000005)
CHECKPOINT LOCATION: 0/5000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-12-01 02:00:01 UTC
LABEL: autolabs-20261201-020000
START TIMELINE: 1
STOP TIME: 2026-12-01 02:00:03 UTC
STOP TIMELINE: 1
`

describe('point-in-time recovery: pure parts', () => {
  it('reads the backup history file: WAL range, when the backup becomes consistent, label, timeline', () => {
    expect(parseHistory('000000010000000000000005.00000028.backup', HISTORY)).toEqual({
      file: '000000010000000000000005.00000028.backup',
      startWal: '000000010000000000000005',
      stopWal: '000000010000000000000005',
      startTime: '2026-12-01T02:00:01.000Z',
      stopTime: '2026-12-01T02:00:03.000Z',
      label: 'autolabs-20261201-020000',
      timeline: 1,
    })
    // A server logging in another zone writes its offset; an unknown zone name is not guessed.
    expect(parseHistory('f', HISTORY.replaceAll(' UTC', ' +01'))?.stopTime).toBe('2026-12-01T01:00:03.000Z')
    expect(parseHistory('f', HISTORY.replaceAll(' UTC', ' CET'))).toBeUndefined()
    expect(parseHistory('f', 'garbage')).toBeUndefined()
  })

  it('--to: "latest", a local time, an explicit zone; a bad or future time is a usage error (exit 2) that shows the format', () => {
    const now = new Date('2026-12-01T15:00:00Z')
    expect(parseTarget('latest', now)).toEqual({latest: true})
    expect(parseTarget('2026-12-01 14:04 UTC', now)).toEqual({latest: false, time: new Date('2026-12-01T14:04:00Z')})
    expect(parseTarget('2026-12-01T14:04:30+0100', now)).toEqual({latest: false, time: new Date('2026-12-01T13:04:30Z')})
    const local = parseTarget('2026-12-01 14:04', now)
    expect(local).toEqual({latest: false, time: new Date(2026, 11, 1, 14, 4)})
    for (const bad of ['yesterday', '2026-12-01', '14:04', '2026-13-01 10:00']) {
      expect(() => parseTarget(bad, now), bad).toThrow(expect.objectContaining({exitCode: 2, message: expect.stringMatching(/YYYY-MM-DD HH:MM|not a valid/)}))
    }
    expect(() => parseTarget('2026-12-02 10:00 UTC', now)).toThrow(/in the future/)
  })

  it('the confirmation names the time, the databases and how much is lost', () => {
    const q = pitrQuestion({base: {id: '20261201-020000'}, target: {latest: false, time: new Date('2026-12-01T13:04:00Z')}}, 'database-vm', ['autolabs', 'zitadel', 'gitlab'], new Date('2026-12-01T15:30:00Z'))
    expect(q).toMatch(/to .* \(2026-12-01T13:04:00Z\) from base backup 20261201-020000/)
    expect(q).toMatch(/LOST: every change to every database \(autolabs, zitadel, gitlab\) and role made after that time, the last 2 h 26 min/)
    expect(pitrQuestion({base: {id: 'x'}, target: {latest: true}}, 'database-vm', [], new Date())).toMatch(/replay the whole WAL archive/)
  })

  it('the VM timer fires at backup.schedule and runs the script with the retention', () => {
    const u = pgBaseUnits({schedule: '2:30', keepDaily: 7, keepWeekly: 4})
    expect(u.onCalendar).toBe('*-*-* 02:30:00')
    expect(u.timer).toContain('OnCalendar=*-*-* 02:30:00\nPersistent=true')
    expect(u.service).toContain('ExecStart=/usr/local/sbin/autolabs-pg-base take --keep-daily 7 --keep-weekly 4')
  })

  it('segments compare by position, whatever their timeline (as pg_archivecleanup does)', () => {
    expect(segmentPosition('000000020000000000000006') > segmentPosition('000000010000000000000005')).toBe(true)
    expect(segmentPosition('000000010000000100000000') > segmentPosition('0000000200000000000000FF')).toBe(true)
  })
})

describe('status: the WAL archive check', () => {
  const now = new Date('2026-12-01T12:00:00Z')
  const t = (iso: string) => Math.floor(new Date(iso).getTime() / 1000)
  const out = (o: {archived?: number; failed?: number; free?: number; base?: string; mode?: string} = {}) =>
    [
      `archive 335544320 20 ${t('2026-12-01T11:58:00Z')}`,
      `df ${100 - (o.free ?? 50)} ${o.free ?? 50}`,
      `now ${t('2026-12-01T12:00:00Z')}`,
      `base ${o.base ?? '20261201-020000'}`,
      `archiver ${o.mode ?? 'on'} 120 ${o.failed ? 3 : 0} ${o.archived ?? t('2026-12-01T11:58:00Z')} ${o.failed ?? 0} ${o.failed ? '000000010000000000000015' : '-'}`,
    ].join('\n')

  it('ok: size, newest segment, base backups on the VM and here, free disk', () => {
    const v = parseWalArchive(0, out(), '', {freeDiskPct: 20, localBase: new Date('2026-11-30T12:00:00Z'), now})
    expect(v).toMatchObject({status: 'ok', detail: 'archive 320.0 MiB (20 segments), newest 2 min ago; base backup 10 h ago on the VM, 24 h ago here; disk 50 % free'})
    expect(v.facts).toMatchObject({bytes: 335_544_320, segments: 20, newestSegmentAgeSec: 120, vmBaseAgeSec: 36_000, localBaseAgeSec: 86_400, freeDiskPct: 50, failedCount: 0})
  })

  it('warns when the archiver fails (pg_stat_archiver), when the disk nears the 20 % threshold, when no recent base backup exists', () => {
    expect(parseWalArchive(0, out({failed: t('2026-12-01T11:59:00Z')}), '', {freeDiskPct: 20, now})).toMatchObject({status: 'warn', detail: expect.stringMatching(/^archiving FAILS: 000000010000000000000015 not archived since 2026-12-01T11:59:00.000Z \(3 failures/)})
    expect(parseWalArchive(0, out({free: 24}), '', {freeDiskPct: 20, now}).detail).toMatch(/^archive disk 24 % free, near the 20 % threshold/)
    expect(parseWalArchive(0, out({free: 26}), '', {freeDiskPct: 20, now}).status).toBe('ok')
    expect(parseWalArchive(0, out({base: '20261127-020000'}), '', {freeDiskPct: 20, now}).detail).toMatch(/newest base backup is 4 d old/)
    expect(parseWalArchive(0, out({base: ''}), '', {freeDiskPct: 20, now}).detail).toMatch(/^no base backup on the VM: the archive is not pruned/)
    expect(parseWalArchive(0, out({mode: 'off'}), '', {freeDiskPct: 20, now}).detail).toMatch(/^archive_mode is off/)
  })

  it('fails with the reason when the probe itself fails', () => {
    expect(parseWalArchive(1, '', 'sudo: a password is required\n', {freeDiskPct: 20, now})).toMatchObject({status: 'fail', detail: 'sudo: a password is required'})
  })
})

describe('backups/wal on the workstation', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-pitr-'))
  })
  afterEach(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  const base = async (id: string, startWal: string, consistentAt: string) => {
    await mkdir(path.join(dir, id), {recursive: true})
    await writeFile(path.join(dir, id, 'base.tar.zst'), 'x')
    const m: BackupManifest = {
      schemaVersion: 1,
      id,
      createdBy: 'test',
      startedAt: consistentAt,
      finishedAt: consistentAt,
      durationMs: 1,
      status: 'complete',
      requested: ['basebackup'],
      parts: [{part: 'basebackup', status: 'ok', startedAt: consistentAt, durationMs: 1, files: [{path: 'base.tar.zst', bytes: 1, sha256: 'x'}], details: {startWal, consistentAt}}],
    }
    await writeManifest(path.join(dir, id), m)
  }

  it('keeps what the oldest kept base backup needs; removes older segments of any timeline and their history files', async () => {
    await base('20261201-020000', '000000010000000000000010', '2026-12-01T02:00:05Z')
    await base('20261202-020000', '000000020000000000000020', '2026-12-02T02:00:05Z')
    const wal = path.join(dir, 'wal')
    await mkdir(wal)
    for (const f of ['00000001000000000000000E.zst', '00000001000000000000000F.zst', '000000010000000000000010.zst', '000000010000000000000010.00000028.backup', '00000001000000000000000A.00000028.backup', '000000020000000000000011.zst', '00000002.history', '00000001000000000000000F.zst.partial'])
      await writeFile(path.join(wal, f), 'x')
    expect(await pruneLocalWal(dir)).toEqual(['00000001000000000000000A.00000028.backup', '00000001000000000000000E', '00000001000000000000000F'])
    expect((await readdir(wal)).sort()).toEqual(['000000010000000000000010.00000028.backup', '000000010000000000000010.zst', '000000020000000000000011.zst', '00000001000000000000000F.zst.partial', '00000002.history'].sort())
  })

  it('picks the newest base backup consistent before the target, and says the earliest time when none is', async () => {
    await base('20261201-020000', '000000010000000000000010', '2026-12-01T02:00:05Z')
    await base('20261202-020000', '000000010000000000000020', '2026-12-02T02:00:05Z')
    expect((await planPitr(dir, {latest: false, time: new Date('2026-12-02T01:00:00Z')})).base.id).toBe('20261201-020000')
    expect((await planPitr(dir, {latest: false, time: new Date('2026-12-02T14:00:00Z')})).base.id).toBe('20261202-020000')
    expect((await planPitr(dir, {latest: true})).base.id).toBe('20261202-020000')
    await expect(planPitr(dir, {latest: false, time: new Date('2026-12-01T02:00:00Z')})).rejects.toThrow(/earliest time that can be restored is 2026-12-01T02:00:05.000Z/)
    await expect(planPitr(path.join(dir, 'none'), {latest: true})).rejects.toThrow(/No base backup/)
  })
})
