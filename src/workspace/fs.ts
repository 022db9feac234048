import {randomBytes} from 'node:crypto'
import {chmod, mkdir, open, rename, rm} from 'node:fs/promises'
import path from 'node:path'

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
