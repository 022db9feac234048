import {execFileSync} from 'node:child_process'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type {Writable} from 'node:stream'
import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {streamToFile} from '../../../src/backup/parts.js'
import type {BackupShell} from '../../../src/backup/remote.js'
import {type BackupEvent, runBackup} from '../../../src/backup/run.js'
import {hasZstd, readDecompressed} from '../../../src/backup/streams.js'
import {missing} from '../../support/tools.js'

let dir: string
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-run-'))
})
afterEach(async () => {
  await rm(dir, {recursive: true, force: true})
})

/** A fake VM: answers scripts by their first distinctive words; writes "stdout" data in chunks. */
function fakeShell(answer: (script: string, args: string[]) => {code: number; out?: string | Buffer; stderr?: string}): BackupShell {
  return {
    exec: async (script, opts = {}) => {
      const a = answer(script, opts.args ?? [])
      const sink = opts.stdout as Writable | undefined
      if (sink && a.out !== undefined) {
        const buf = Buffer.isBuffer(a.out) ? a.out : Buffer.from(a.out)
        for (let i = 0; i < buf.length; i += 65_536) {
          if (!sink.write(buf.subarray(i, i + 65_536))) await new Promise((r) => sink.once('drain', r))
        }
        return {code: a.code, stdout: '', stderr: a.stderr ?? ''}
      }
      return {code: a.code, stdout: typeof a.out === 'string' ? a.out : '', stderr: a.stderr ?? ''}
    },
    close: async () => undefined,
  }
}

const DUMP = Array.from({length: 30_000}, (_, i) => `INSERT INTO t VALUES (${i}, 'row ${i}');`).join('\n') + '\n'

describe('runBackup', () => {
  it('runs the parts at once; one failing part is recorded and the others complete', async () => {
    const events: BackupEvent[] = []
    const db = fakeShell((s) => (s.includes('pg_dumpall --version') ? {code: 0, out: 'zstd=no\n15.14\n15.14\nautolabs\ngitlab\nzitadel\n'} : s.includes('exec runuser -u postgres -- pg_dumpall') ? {code: 0, out: DUMP} : {code: 99}))
    const gitlab = fakeShell(() => ({code: 1, stderr: 'Error response from daemon: No such container: gitlab'}))
    const k8s = fakeShell((s) => (s.includes('snapshot save') ? {code: 0, out: '3.5.21\n'} : s.includes('cat -- "$1"') ? {code: 0, out: Buffer.alloc(100_000, 7)} : {code: 99}))
    const r = await runBackup(
      {backupsDir: dir, node: 'pve', vms: [{role: 'gitlab', name: 'gitlab-vm', vmid: 110}, {role: 'database', name: 'database-vm', vmid: 120}, {role: 'k8s', name: 'k8s-vm', vmid: 130}], parts: ['postgres', 'gitlab', 'etcd'], compression: 'gzip', onEvent: (e) => events.push(e)},
      {connect: async (role) => ({database: db, gitlab, k8s})[role], now: () => new Date('2026-11-25T02:00:00Z')},
    )
    expect(r.manifest.status).toBe('partial')
    const byPart = Object.fromEntries(r.manifest.parts.map((p) => [p.part, p]))
    expect(byPart.postgres).toMatchObject({status: 'ok', versions: {postgres: '15.14', pg_dumpall: '15.14'}, details: {databases: ['autolabs', 'gitlab', 'zitadel'], uncompressedBytes: DUMP.length, compression: 'gzip'}})
    expect(byPart.gitlab).toMatchObject({status: 'failed', error: expect.stringMatching(/gitlab-backup create failed \(exit 1\)\.\nError response from daemon: No such container: gitlab/)})
    expect(byPart.etcd).toMatchObject({status: 'ok', versions: {etcd: '3.5.21'}, files: [{path: 'etcd-snapshot.db.gz'}]})
    // The dump on disk is the stream, compressed, intact.
    const {stream, done} = readDecompressed(path.join(r.dir, 'postgres.sql.gz'))
    let text = ''
    for await (const c of stream) text += c
    await done
    expect(text).toBe(DUMP)
    expect(JSON.parse(await readFile(path.join(r.dir, 'manifest.json'), 'utf8')).status).toBe('partial')
    const bytes = events.filter((e) => e.type === 'bytes' && e.part === 'postgres').map((e) => (e as {bytes: number}).bytes)
    expect(bytes.length).toBeGreaterThan(1)
    expect(bytes.at(-1)).toBe(DUMP.length)
  })

  it.skipIf(missing('zstd', hasZstd()))('compresses on the VM when both ends have zstd: only the compressed stream crosses, dd reports the raw size', async () => {
    const compressed = execFileSync('zstd', ['-q', '-3', '-c'], {input: DUMP})
    const seen: string[] = []
    const db = fakeShell((s) => {
      seen.push(s)
      if (s.includes('pg_dumpall --version')) return {code: 0, out: 'zstd=yes\n15.14\n15.14\nautolabs\n'}
      if (s.includes('| dd bs=256k | zstd')) return {code: 0, out: compressed, stderr: `1+1 records in\n${DUMP.length} bytes (${DUMP.length} B) copied, 0.1 s, 1 MB/s\n`}
      return {code: 99}
    })
    const bytes: number[] = []
    const r = await runBackup(
      {backupsDir: dir, node: 'pve', vms: [{role: 'database', name: 'database-vm', vmid: 120}], parts: ['postgres'], compression: 'zstd', onEvent: (e) => e.type === 'bytes' && bytes.push(e.bytes)},
      {connect: async () => db},
    )
    expect(r.manifest.parts[0]).toMatchObject({status: 'ok', files: [{path: 'postgres.sql.zst', bytes: compressed.length}], details: {uncompressedBytes: DUMP.length, compressedOn: 'vm'}})
    expect(bytes.at(-1)).toBe(compressed.length)
    const {stream, done} = readDecompressed(path.join(r.dir, 'postgres.sql.zst'))
    let text = ''
    for await (const c of stream) text += c
    await done
    expect(text).toBe(DUMP)
  })

  it('fails the postgres part (and removes the partial file) when pg_dumpall exits non-zero mid-stream', async () => {
    const db = fakeShell((s) => (s.includes('pg_dumpall --version') ? {code: 0, out: 'zstd=no\n15\n15\nautolabs\n'} : {code: 1, out: 'partial dump', stderr: 'pg_dumpall: error: query failed: server closed the connection'}))
    const r = await runBackup({backupsDir: dir, node: 'pve', vms: [{role: 'database', name: 'database-vm', vmid: 120}], parts: ['postgres'], compression: 'gzip'}, {connect: async () => db})
    expect(r.manifest.status).toBe('failed')
    expect(r.manifest.parts[0].error).toMatch(/pg_dumpall failed \(exit 1\)\.\npg_dumpall: error: query failed/)
    await expect(readFile(path.join(r.dir, 'postgres.sql.gz'))).rejects.toThrow(/ENOENT/)
  })

  it('does not hang when the local side fails while the remote command still streams', async () => {
    // Like an SSH channel piped into the local stream: once the local stream is gone nobody
    // reads, the remote command blocks on a full pipe, and exec would wait for its timeout.
    let destroyed = false
    const endless: BackupShell = {
      exec: async (_s, opts = {}) => {
        const sink = opts.stdout as Writable
        sink.once('close', () => (destroyed = true))
        for (;;) {
          if (sink.destroyed || !sink.write(Buffer.alloc(65_536))) await new Promise((r) => sink.once('drain', r))
        }
      },
      close: async () => undefined,
    }
    await expect(streamToFile(endless, 'x', path.join(dir, 'no-such-dir', 'f.gz'), {compression: 'gzip', label: 'endless'})).rejects.toThrow(/ENOENT/)
    // The event that frees the remote side: the stream it writes into was destroyed.
    expect(destroyed).toBe(true)
  })
})
