import {mkdir, mkdtemp, readdir, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {backupId} from '../../../src/backup/id.js'
import {type BackupManifest, listLocalBackups, type PartName, writeManifest} from '../../../src/backup/manifest.js'
import {pruneLocal} from '../../../src/backup/run.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-prune-'))
})
afterEach(async () => {
  await rm(dir, {recursive: true, force: true})
})

async function backup(iso: string, parts: PartName[], status: 'ok' | 'failed' = 'ok', withManifest = true) {
  const id = backupId(new Date(iso))
  const d = path.join(dir, id)
  await mkdir(d, {recursive: true})
  if (!withManifest) return id
  const m: BackupManifest = {
    schemaVersion: 1,
    id,
    createdBy: 'autolabs test',
    startedAt: iso,
    finishedAt: iso,
    durationMs: 1,
    status: status === 'ok' ? 'complete' : 'failed',
    requested: parts,
    parts: parts.map((part) => ({part, status, startedAt: iso, durationMs: 1, files: []})),
  }
  await writeManifest(d, m)
  return id
}

const FULL: PartName[] = ['snapshots', 'postgres', 'gitlab', 'etcd']

describe('local retention (pruneLocal)', () => {
  it('keeps the newest per day per kind: a --only postgres backup never pushes out the full backup of that day', async () => {
    const full1 = await backup('2026-11-24T02:00:00Z', FULL)
    const full2 = await backup('2026-11-25T02:00:00Z', FULL)
    const pg1 = await backup('2026-11-25T09:00:00Z', ['postgres'])
    const pg2 = await backup('2026-11-25T14:00:00Z', ['postgres'])
    const removed = await pruneLocal(dir, {keepDaily: 1, keepWeekly: 0})
    expect(removed).toEqual([full1, pg1].sort())
    expect((await readdir(dir)).sort()).toEqual([full2, pg2].sort())
  })

  it('removes a failed backup once a newer complete one of its kind exists, and keeps it otherwise', async () => {
    const failedOld = await backup('2026-11-23T02:00:00Z', FULL, 'failed')
    const good = await backup('2026-11-24T02:00:00Z', FULL)
    const failedNew = await backup('2026-11-25T02:00:00Z', FULL, 'failed')
    const removed = await pruneLocal(dir, {keepDaily: 7, keepWeekly: 4})
    expect(removed).toEqual([failedOld])
    expect((await readdir(dir)).sort()).toEqual([good, failedNew].sort())
  })

  it('removes an unfinished folder (no manifest: interrupted) only when a newer complete backup exists, and ignores folders not named like an id', async () => {
    const unfinished = await backup('2026-11-24T02:00:00Z', FULL, 'ok', false)
    await mkdir(path.join(dir, 'keep-me'))
    expect(await pruneLocal(dir, {keepDaily: 7, keepWeekly: 4})).toEqual([])
    const good = await backup('2026-11-25T02:00:00Z', FULL)
    expect(await pruneLocal(dir, {keepDaily: 7, keepWeekly: 4})).toEqual([unfinished])
    expect((await readdir(dir)).sort()).toEqual([good, 'keep-me'].sort())
    const listed = await listLocalBackups(dir)
    expect(listed.map((b) => b.id)).toEqual([good])
  })
})
