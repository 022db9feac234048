import {randomBytes} from 'node:crypto'
import {chmod, lstat, mkdir, open, rename, rm} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors.js'

/**
 * Write a file atomically (temp file in the same directory, fsync, rename), created with
 * `mode` from the start so a secret is never readable by others, not even briefly.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await mkdir(path.dirname(file), {recursive: true})
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'wx', mode)
  try {
    await fh.writeFile(data)
    await fh.sync()
  } catch (error) {
    await fh.close()
    await rm(tmp, {force: true})
    throw error
  }
  await fh.close()
  await chmod(tmp, mode) // umask may have narrowed or (for 0644) kept it; be exact.
  await rename(tmp, file)
}

export async function ensureDir(dir: string, mode = 0o755): Promise<void> {
  await mkdir(dir, {recursive: true, mode})
  await chmod(dir, mode)
}

/**
 * Writes a file the user named (an export, a key): atomically with `mode`, never over an existing
 * file unless `overwrite`, never through a symbolic link.
 */
export async function writeNewFile(file: string, data: string | Uint8Array, opts: {mode: number; overwrite: boolean; flag: string}): Promise<void> {
  const st = await lstat(file).catch(() => undefined)
  if (st?.isSymbolicLink()) throw new UserError(`${file} is a symbolic link: autolabs does not write through links.`, {suggestion: 'Name a plain file.'})
  if (st && !opts.overwrite) throw new UserError(`${file} already exists.`, {suggestion: `Name another file, or pass ${opts.flag} to replace it.`, exitCode: 2})
  if (st && !st.isFile()) throw new UserError(`${file} exists and is not a regular file.`, {exitCode: 2})
  try {
    await writeFileAtomic(file, data, opts.mode)
  } catch (error) {
    throw new UserError(`Cannot write ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, {suggestion: 'Check that its folder exists and is writable.'})
  }
}
