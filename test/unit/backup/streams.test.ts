import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {compressor, DevNull, DumpDigest, fromString, hasZstd, Hasher, readDecompressed, restoreFilter} from '../../../src/backup/streams.js'
import {missing} from '../../support/tools.js'

let dir: string
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-streams-'))
})
afterAll(async () => {
  await rm(dir, {recursive: true, force: true})
})

async function collect(s: NodeJS.ReadableStream): Promise<string> {
  let out = ''
  for await (const c of s) out += Buffer.from(c as Buffer).toString('latin1')
  return out
}

describe('compression round trip', () => {
  for (const c of ['gzip', 'zstd'] as const) {
    it.skipIf(c === 'zstd' && missing('zstd', hasZstd()))(`${c}: what is compressed decompresses identically, even when read long after it was opened`, async () => {
      const text = Array.from({length: 20_000}, (_, i) => `line ${i} ${'x'.repeat(i % 50)}`).join('\n')
      const file = path.join(dir, `t.sql${c === 'zstd' ? '.zst' : '.gz'}`)
      const comp = compressor(c)
      const h = new Hasher()
      const written = Promise.all([pipeline(comp.output, h, (await import('node:fs')).createWriteStream(file)), comp.done])
      await pipeline(fromString(text), comp.input)
      await written
      expect(h.bytes).toBeLessThan(text.length / 3)
      const {stream, done} = readDecompressed(file)
      // A consumer that connects late (after an SSH channel opens) must still get every byte.
      await new Promise((r) => setTimeout(r, 300))
      expect(await collect(stream)).toBe(text)
      await done
    })
  }
})

describe('restoreFilter', () => {
  it('drops only the superuser\'s own DROP/CREATE ROLE and forces DROP DATABASE past connected clients', async () => {
    const dump = [
      'DROP DATABASE IF EXISTS autolabs;',
      'DROP DATABASE template1;',
      'DROP DATABASE IF EXISTS "My DB";',
      'DROP ROLE IF EXISTS autolabs;',
      'DROP ROLE IF EXISTS postgres;',
      'CREATE ROLE postgres;',
      'CREATE ROLE autolabs;',
      "ALTER ROLE postgres WITH SUPERUSER;",
      "INSERT INTO t VALUES ('DROP ROLE IF EXISTS postgres;');",
      'COPY public.t (a) FROM stdin;',
      'DROP ROLE IF EXISTS postgres;x',
      '\\.',
    ].join('\n')
    const out = await collect(fromString(dump).pipe(restoreFilter()))
    expect(out.split('\n')).toEqual([
      'DROP DATABASE IF EXISTS autolabs WITH (FORCE);',
      'DROP DATABASE template1 WITH (FORCE);',
      'DROP DATABASE IF EXISTS "My DB" WITH (FORCE);',
      'DROP ROLE IF EXISTS autolabs;',
      'CREATE ROLE autolabs;',
      'ALTER ROLE postgres WITH SUPERUSER;',
      "INSERT INTO t VALUES ('DROP ROLE IF EXISTS postgres;');",
      'COPY public.t (a) FROM stdin;',
      'DROP ROLE IF EXISTS postgres;x',
      '\\.',
    ])
  })

  it('passes arbitrary bytes through unchanged, across chunk boundaries', async () => {
    const bytes = Buffer.from(Array.from({length: 70_000}, (_, i) => (i * 7) % 256))
    const chunks = [bytes.subarray(0, 12_345), bytes.subarray(12_345)]
    const {Readable} = await import('node:stream')
    let out = Buffer.alloc(0)
    for await (const c of Readable.from(chunks).pipe(restoreFilter())) out = Buffer.concat([out, c as Buffer])
    expect(out.equals(bytes)).toBe(true)
  })
})

describe('DumpDigest', () => {
  const digest = async (text: string) => {
    const d = new DumpDigest()
    await pipeline(fromString(text), d, new DevNull())
    return d.result()
  }
  it('ignores comments, blank lines and the per-run \\restrict keys, and hashes per database', async () => {
    const a = await digest('\\restrict AAA\n-- dumped at 1\nCREATE ROLE x;\n\\unrestrict AAA\n\\connect autolabs\n\nCOPY t FROM stdin;\n1\n\\.\n\\connect gitlab\nCREATE TABLE g();\n')
    const b = await digest('\\restrict BBB\n-- dumped at 2\nCREATE ROLE x;\n\\unrestrict BBB\n\\connect autolabs\nCOPY t FROM stdin;\n1\n\\.\n\\connect gitlab\nCREATE TABLE g();\n')
    expect(a).toEqual(b)
    expect(Object.keys(a)).toEqual(['(globals)', 'autolabs', 'gitlab'])
    const c = await digest('CREATE ROLE x;\n\\connect autolabs\nCOPY t FROM stdin;\n2\n\\.\n\\connect gitlab\nCREATE TABLE g();\n')
    expect(c.autolabs.sha256).not.toBe(a.autolabs.sha256)
    expect(c.gitlab).toEqual(a.gitlab)
  })
})

describe('files', () => {
  it('Hasher hashes what passes through', async () => {
    const h = new Hasher()
    await pipeline(fromString('abc'), h, new DevNull())
    expect(h.digest()).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    expect(h.bytes).toBe(3)
  })
})
