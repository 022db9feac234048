import {existsSync} from 'node:fs'
import {readdir} from 'node:fs/promises'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {backupId} from '../../src/backup/id.js'
import {localBaseBackups, planPitr, restorePitr, segmentPosition, WAL_DIR} from '../../src/backup/pitr.js'
import {PG_BASE_SCRIPT_PATH, VM_BASE_DIR, WAL_ARCHIVE_DIR} from '../../src/backup/pitr-remote.js'
import {planRetention} from '../../src/backup/retention.js'
import {runBackup} from '../../src/backup/run.js'
import {installPgBaseTimer, pgBaseUnits} from '../../src/backup/schedule.js'
import {verifyBackup} from '../../src/backup/verify.js'
import {collectStatus} from '../../src/status/collect.js'
import {type DayTwoContext, openDayTwo} from '../../src/status/context.js'
import {depsFromContext, planFromContext} from '../../src/status/run.js'
import type {Workspace} from '../../src/workspace/workspace.js'
import {type Lab, type LabMachine, labAvailable, startLab} from '../support/lab/lab.js'
import {enableWalArchiving, must, setupDatabase} from './backup-support.js'
import {labWorkspace, sh} from './deploy-support.js'

// Point-in-time recovery on a real Debian 12 machine over SSH: PostgreSQL 15 from Debian, WAL
// archiving switched on by the database stage's own step (assets/stages/database.sh), base
// backups streamed to the workstation, the archive copied next to them, a dropped table brought
// back by replaying the archive to a noted time, and database-vm's own daily base backup keeping
// the archive bounded over a simulated fortnight (backup ids moved a day at a time).
const avail = labAvailable()
const SUBNET = 140
const IP = `10.99.${SUBNET}.20`
const reason = !avail.ok ? avail.reason : !existsSync('/usr/bin/zstd') ? 'needs zstd on the host' : ''

const psql = async (m: LabMachine, db: string, sql: string) => must(await m.exec(`runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 -d ${db}`, {input: sql}), `psql ${db}: ${sql.slice(0, 60)}`).trim()

describe.skipIf(Boolean(reason))(`point-in-time recovery on a lab machine${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let lab: Lab
  let ws: Workspace
  let ctx: DayTwoContext
  let m: LabMachine

  beforeAll(async () => {
    lab = await startLab({name: 'backup-pitr', subnet: SUBNET, machines: [{name: 'database-vm', ip: IP}]})
    let secrets
    ;({ws, secrets} = await labWorkspace(lab, {database: IP}))
    m = lab.machine('database-vm')
    await setupDatabase(m, secrets, {subnet: SUBNET})
    await enableWalArchiving(m)
    ctx = await openDayTwo(ws, {withProxmox: false})
  })

  afterAll(async () => {
    await ctx?.close()
    await lab?.stop()
    if (ws) await sh('rm', ['-rf', ws.root])
  })

  let baseId: string

  it('backup now --only basebackup,wal: pg_basebackup streamed into base.tar.zst with its WAL range; the archive copied to backups/wal', async () => {
    const r = await runBackup({backupsDir: ws.backupsDir, node: 'pve', vms: ctx.vms, parts: ['basebackup', 'wal']}, {connect: (role) => ctx.connect(role)})
    const base = r.manifest.parts.find((p) => p.part === 'basebackup')!
    const wal = r.manifest.parts.find((p) => p.part === 'wal')!
    expect(base, base.error).toMatchObject({status: 'ok', files: [{path: 'base.tar.zst'}], versions: {postgres: expect.stringMatching(/^15\./)}})
    expect(base.details).toMatchObject({label: `autolabs-${r.manifest.id}`, startWal: expect.stringMatching(/^[0-9A-F]{24}$/), consistentAt: expect.any(String), compressedOn: 'workstation'})
    expect(wal, wal.error).toMatchObject({status: 'ok', details: {folder: 'wal'}})
    // The workstation now holds every archived file, the base backup's start segment included.
    const local = await readdir(path.join(ws.backupsDir, WAL_DIR))
    expect(local).toContain(`${base.details!.startWal}.zst`)
    expect(local).toContain(base.details!.historyFile)
    expect((wal.details as {copied: number}).copied).toBeGreaterThan(0)
    baseId = r.manifest.id
    // Nothing left on the VM but the archive.
    expect(must(await m.exec(`ls -A /var/tmp /tmp | grep -c autolabs || true`), 'ls').trim()).toBe('0')
  })

  it('a dropped table comes back with its rows: restore to the time noted before the DROP; what came after is gone', async () => {
    await psql(m, 'autolabs', `CREATE TABLE grades (student text PRIMARY KEY, grade int NOT NULL);
INSERT INTO grades SELECT 'student-' || g, g % 5 + 1 FROM generate_series(1, 250) g;`)
    await new Promise((r) => setTimeout(r, 1500))
    const noted = new Date(await psql(m, 'postgres', "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"))
    await new Promise((r) => setTimeout(r, 1500))
    await psql(m, 'autolabs', `DROP TABLE grades; INSERT INTO items (name) VALUES ('after-the-drop');`)
    expect(await psql(m, 'autolabs', "SELECT count(*) FROM pg_tables WHERE tablename = 'grades'")).toBe('0')

    const plan = await planPitr(ws.backupsDir, {latest: false, time: noted})
    expect(plan.base.id).toBe(baseId)
    const progress: string[] = []
    const r = await restorePitr(ws.backupsDir, plan, () => ctx.connect('database'), {compression: 'zstd', pgVersion: 15, onProgress: (p) => progress.push(p)})
    console.log(`PITR: ${JSON.stringify(r)}`)
    expect(progress[0]).toMatch(/^archived the WAL in progress/)
    expect(await psql(m, 'autolabs', 'SELECT count(*), sum(grade) FROM grades')).toBe('250|750')
    expect(await psql(m, 'autolabs', "SELECT count(*) FROM items WHERE name = 'after-the-drop'")).toBe('0')
    // The data as it was is kept; the server runs read-write on a new timeline.
    expect(r.previousDataDir).toMatch(/^\/var\/lib\/postgresql\/15\/main\.autolabs-before-\d{8}-\d{6}$/)
    expect(must(await m.exec(`test -f ${r.previousDataDir}/PG_VERSION && echo kept`), 'old data')).toContain('kept')
    await psql(m, 'autolabs', "INSERT INTO items (name) VALUES ('after-the-restore')")
    expect(must(await m.exec('ls /etc/postgresql/15/main/conf.d'), 'conf.d')).not.toContain('recovery')
  })

  it('backup verify replays the base backup with the archive into a scratch cluster, which reaches a consistent state', async () => {
    const v = await verifyBackup(ws.backupsDir, baseId, {connectDatabase: () => ctx.connect('database')})
    expect(v.basebackup, JSON.stringify(v)).toMatchObject({ok: true, databases: expect.arrayContaining(['autolabs', 'gitlab', 'zitadel', 'postgres'])})
    expect(v.ok).toBe(true)
    expect(must(await m.exec('ls -d /var/tmp/autolabs-verify-base.* 2>/dev/null | wc -l'), 'ls').trim()).toBe('0')
  })

  it('a restore that cannot reach its target (WAL missing from the archive) puts the previous data back: nothing is lost', async () => {
    const r = await runBackup({backupsDir: ws.backupsDir, node: 'pve', vms: ctx.vms, parts: ['basebackup']}, {connect: (role) => ctx.connect(role), now: () => new Date(Date.now() + 1000)})
    expect(r.manifest.status).toBe('complete')
    const stopWal = r.manifest.parts[0].details!.stopWal as string
    await psql(m, 'autolabs', "INSERT INTO items (name) SELECT 'lost-segment-' || g FROM generate_series(1, 500) g; SELECT pg_switch_wal();")
    await new Promise((res) => setTimeout(res, 2000))
    const noted = new Date(await psql(m, 'postgres', "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"))
    const before = await psql(m, 'autolabs', 'SELECT count(*) FROM items')
    // The segments written after the base backup vanish from the archive (a disk error, a careless rm).
    must(await m.exec(`cd ${WAL_ARCHIVE_DIR} && for f in $(ls | grep -E '^[0-9A-F]{24}$'); do [[ \${f:8:16} > ${stopWal.slice(8, 24)} ]] && rm -f $f; done; true`), 'lose segments')
    const plan = await planPitr(ws.backupsDir, {latest: false, time: noted})
    expect(plan.base.id).toBe(r.manifest.id)
    await expect(restorePitr(ws.backupsDir, plan, () => ctx.connect('database'), {compression: 'zstd', pgVersion: 15})).rejects.toThrow(/previous data directory was put back/)
    expect(await psql(m, 'autolabs', 'SELECT count(*) FROM items')).toBe(before)
    expect(must(await m.exec('ls -d /var/lib/postgresql/15/main.autolabs-failed-* | wc -l'), 'failed copy kept').trim()).toBe('1')
  })

  it("database-vm's daily base backup keeps the archive bounded over a simulated fortnight (7 daily / 4 weekly)", async () => {
    const units = pgBaseUnits({schedule: '02:00', keepDaily: 7, keepWeekly: 4})
    const first = await installPgBaseTimer(await ctx.connect('database'), units)
    expect(first.action).toBe('changed')
    const again = await installPgBaseTimer(await ctx.connect('database'), units)
    expect(again.action).toBe('unchanged')
    expect(must(await m.exec('systemctl is-enabled autolabs-pg-base.timer; systemctl is-active autolabs-pg-base.timer'), 'timer').split('\n').slice(0, 2)).toEqual(['enabled', 'active'])

    const segments = async () => must(await m.exec(`ls ${WAL_ARCHIVE_DIR} | grep -E '^[0-9A-F]{24}$' | sort`), 'ls archive').trim().split('\n').filter(Boolean)
    const days: string[] = []
    const counts: number[] = []
    for (let day = 1; day <= 14; day++) {
      // A day of work: three segments' worth of WAL, switched so they reach the archive.
      await psql(m, 'autolabs', `INSERT INTO items (name) SELECT 'day-${day}-' || g FROM generate_series(1, 2000) g; SELECT pg_switch_wal(); INSERT INTO items (name) VALUES ('x'); SELECT pg_switch_wal(); INSERT INTO items (name) VALUES ('y'); SELECT pg_switch_wal();`)
      const id = backupId(new Date(Date.UTC(2026, 11, day, 2)))
      days.push(id)
      // The timer's own service, with the day moved: the same command systemd runs.
      must(await m.exec(`${PG_BASE_SCRIPT_PATH} take --id ${id} --keep-daily 7 --keep-weekly 4`, {timeoutMs: 300_000}), `take ${id}`)
      counts.push((await segments()).length)
    }
    const kept = must(await m.exec(`ls ${VM_BASE_DIR} | sed -n 's/\\.tar\\.gz$//p' | sort`), 'ls base').trim().split('\n')
    const expected = planRetention(days.map((id) => ({id, time: new Date(Date.UTC(2026, 11, Number(id.slice(6, 8)), 2))})), {keepDaily: 7, keepWeekly: 4}).keep.map((k) => k.id).sort()
    expect(kept).toEqual(expected)
    // 1..14 December 2026: the last 7 days, plus the newest of ISO week 49 (Sunday the 6th).
    expect(kept).toEqual(['20261206-020000', ...days.slice(7)])
    // Nothing older than the oldest kept base backup's start is left in the archive.
    const hist = must(await m.exec(`grep -lx 'LABEL: autolabs-20261206-020000' ${WAL_ARCHIVE_DIR}/*.backup`), 'history').trim()
    const oldestKept = path.basename(hist).slice(0, 24)
    const segs = await segments()
    expect(segmentPosition(segs[0])).toBe(segmentPosition(oldestKept))
    // Bounded: each day adds its segments and retention removes the oldest day's, so the count
    // stays flat while the kept span does (days 7-12) and never exceeds the span kept
    console.log(`archive segments after each simulated day: ${counts.join(' ')}`)
    const perDay = counts[1] - counts[0]
    // (± 2: a checkpoint or a base backup may close an extra segment on some days)
    expect(Math.max(...counts.slice(6, 12)) - Math.min(...counts.slice(6, 12))).toBeLessThanOrEqual(2)
    const keptSpanDays = 14 - 6 + 1
    expect(counts.at(-1)).toBeLessThanOrEqual(perDay * keptSpanDays + 1)
    expect(counts.at(-1)).toBeLessThan(counts[0] + 13 * perDay)
    expect(must(await m.exec(`ls ${WAL_ARCHIVE_DIR}/*.backup | wc -l`), 'history files').trim()).toBe(String(kept.length))
    // And the workstation's copy is pruned the same way by `backup now`'s retention.
    const r = await runBackup({backupsDir: ws.backupsDir, node: 'pve', vms: ctx.vms, parts: ['basebackup', 'wal'], retention: {keepDaily: 1, keepWeekly: 0}}, {connect: (role) => ctx.connect(role), now: () => new Date(Date.now() + 2000)})
    expect(r.manifest.status).toBe('complete')
    const newest = (await localBaseBackups(ws.backupsDir))[0]
    expect(newest.id).toBe(r.manifest.id)
    expect(r.retention.removedWal.length).toBeGreaterThan(0)
    // The copy now starts where the oldest base backup kept here (of any kind) starts.
    const oldestStart = (await localBaseBackups(ws.backupsDir)).map((b) => segmentPosition(b.startWal!)).sort()[0]
    const left = (await readdir(path.join(ws.backupsDir, WAL_DIR))).filter((n) => /^[0-9A-F]{24}\.zst$/.test(n)).sort((a, b) => (segmentPosition(a) < segmentPosition(b) ? -1 : 1))
    expect(segmentPosition(left[0])).toBe(oldestStart)
    expect(r.retention.removedWal.every((n) => segmentPosition(n) < oldestStart)).toBe(true)
  })

  it('status: the archive size, the newest segment and base backups; a failing archiver warns', async () => {
    const plan = planFromContext(ctx, {connectTimeoutMs: 3000, checkTimeoutMs: 15_000, roles: ['database']})
    plan.walArchive!.localBase = (await localBaseBackups(ws.backupsDir))[0].consistentAt
    const check = async () => (await collectStatus(plan, depsFromContext(ctx, {connectTimeoutMs: 3000}))).checks.find((c) => c.id === 'database/wal-archive')!
    const ok = await check()
    expect(ok, ok.detail).toMatchObject({status: 'ok', detail: expect.stringMatching(/^archive [\d.]+ MiB \(\d+ segments\), newest \d+ (s|min) ago; base backup \d+ (s|min|h|d) ago on the VM, \d+ (s|min) ago here; disk [\d.]+ % free$/)})
    expect(ok.walArchive).toMatchObject({segments: expect.any(Number), failedCount: 0, archiveMode: 'on'})
    // The archive folder stops accepting files: archive_command fails, pg_stat_archiver counts it.
    must(await m.exec(`chmod 0000 ${WAL_ARCHIVE_DIR}`), 'break the archive')
    try {
      await psql(m, 'autolabs', "INSERT INTO items (name) VALUES ('unarchivable'); SELECT pg_switch_wal();")
      let bad = await check()
      for (let i = 0; i < 20 && !/FAILS/.test(bad.detail); i++) {
        await new Promise((r) => setTimeout(r, 1000))
        bad = await check()
      }
      expect(bad).toMatchObject({status: 'warn', detail: expect.stringMatching(/^archiving FAILS: [0-9A-F]{24} not archived since /)})
    } finally {
      must(await m.exec(`chmod 0700 ${WAL_ARCHIVE_DIR}`), 'repair the archive')
    }
  })
})
