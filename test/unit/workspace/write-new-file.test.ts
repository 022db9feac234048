import {mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {UserError} from '../../../src/errors.js'
import {writeNewFile} from '../../../src/workspace/fs.js'

const dir = mkdtempSync(path.join(tmpdir(), 'autolabs-newfile-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))
const opts = {mode: 0o600, overwrite: false, flag: '--force'}
const refusal = (p: Promise<unknown>) => p.then(() => expect.unreachable('written'), (error: unknown) => (expect(error).toBeInstanceOf(UserError), error as UserError))

describe('writeNewFile (workspace export, workspace keygen): a file the user named', () => {
  it('is written with its mode, and replaced only with the flag', async () => {
    const f = path.join(dir, 'key.txt')
    await writeNewFile(f, 'one', opts)
    expect(statSync(f).mode & 0o777).toBe(0o600)
    const e = await refusal(writeNewFile(f, 'two', opts))
    expect(e).toMatchObject({exitCode: 2, message: `${f} already exists.`, suggestion: expect.stringContaining('--force')})
    await writeNewFile(f, 'two', {...opts, overwrite: true})
    expect(readFileSync(f, 'utf8')).toBe('two')
  })

  it('never writes through a symbolic link, even with the flag', async () => {
    const target = path.join(dir, 'elsewhere')
    writeFileSync(target, 'theirs')
    const link = path.join(dir, 'link.age')
    symlinkSync(target, link)
    const e = await refusal(writeNewFile(link, 'secret', {...opts, overwrite: true}))
    expect(e.message).toMatch(/is a symbolic link; autolabs does not follow links for a file it writes/)
    expect(readFileSync(target, 'utf8')).toBe('theirs')
  })

  it('makes missing folders; names a directory in the way, and a file where a folder should be, with what to do', async () => {
    const sub = path.join(dir, 'adir')
    mkdirSync(sub)
    expect(await refusal(writeNewFile(sub, 'x', {...opts, overwrite: true}))).toMatchObject({exitCode: 2, message: expect.stringContaining('is a directory, not a file')})
    await writeNewFile(path.join(dir, 'new/folder/key.txt'), 'x', opts)
    expect(readFileSync(path.join(dir, 'new/folder/key.txt'), 'utf8')).toBe('x')
    const underFile = path.join(dir, 'new/folder/key.txt/inner.txt')
    const e = await refusal(writeNewFile(underFile, 'x', opts))
    expect(e).toMatchObject({exitCode: 1, message: `${path.dirname(underFile)} already exists (mkdir).`, suggestion: 'Move it aside and run the command again.'})
  })
})
