import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {hasZstd} from '../../../src/backup/streams.js'
import {verifyEtcdSnapshot} from '../../../src/backup/verify.js'

/** A file shaped like `etcdctl snapshot save` output: bbolt pages, then their SHA-256. */
function fakeSnapshot(pages = 6): Buffer {
  const db = Buffer.alloc(4096 * pages)
  for (let i = 0; i < db.length; i += 7) db[i] = (i * 31) & 0xff
  db.writeUInt32LE(0xed_0c_da_ed, 16) // bbolt meta page magic
  return Buffer.concat([db, createHash('sha256').update(db).digest()])
}

describe('verifyEtcdSnapshot (the hash etcd appends, checked locally)', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-etcd-'))
  })
  afterAll(async () => {
    await rm(dir, {recursive: true, force: true})
  })
  const write = async (name: string, data: Buffer) => {
    const f = path.join(dir, name)
    await writeFile(f, data)
    return f
  }

  it('accepts a whole snapshot, plain or zstd-compressed', async () => {
    const snap = fakeSnapshot()
    expect(await verifyEtcdSnapshot(await write('ok.db', snap))).toMatchObject({ok: true, bytes: snap.length})
    if (hasZstd()) {
      const f = await write('ok2.db', snap)
      execFileSync('zstd', ['-q', '-f', '--rm', f, '-o', `${f}.zst`])
      const r = await verifyEtcdSnapshot(`${f}.zst`)
      expect(r, r.detail).toMatchObject({ok: true, bytes: snap.length})
    }
  })

  it('finds one flipped byte in the database', async () => {
    const snap = fakeSnapshot()
    snap[9000] ^= 0x01
    const r = await verifyEtcdSnapshot(await write('flipped.db', snap))
    expect(r.ok).toBe(false)
    expect(r.detail).toMatch(/^damaged: the database's SHA-256 [0-9a-f]{64} ≠ the [0-9a-f]{64} etcd appended$/)
  })

  it('finds a truncated snapshot and a database saved without its hash', async () => {
    const snap = fakeSnapshot()
    expect((await verifyEtcdSnapshot(await write('short.db', snap.subarray(0, 4096 * 3)))).detail).toMatch(/no SHA-256 appended, or truncated/)
    expect((await verifyEtcdSnapshot(await write('cut.db', snap.subarray(0, snap.length - 1)))).ok).toBe(false)
  })

  it('refuses what is not a bbolt database at all', async () => {
    const r = await verifyEtcdSnapshot(await write('text.db', Buffer.from('-- PostgreSQL database dump\n'.repeat(400))))
    expect(r).toMatchObject({ok: false, detail: 'not an etcd snapshot (no bbolt database header)'})
  })
})
