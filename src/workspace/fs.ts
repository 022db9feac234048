import {randomBytes} from 'node:crypto'
import {constants, lstatSync, readdirSync, renameSync, rmSync, unlinkSync} from 'node:fs'
import {chmod, lstat, mkdir, open, rename, rm} from 'node:fs/promises'
import path from 'node:path'

import {UserError} from '../errors.js'

/**
 * Temp files end in this suffix, which the workspace .gitignore covers (`*.autolabs-tmp`), and
 * carry the writer's pid, so a later run can tell a dead run's leftovers from a live writer's.
 */
export const TEMP_SUFFIX = '.autolabs-tmp'
const TEMP_RE = /^\..+\.(\d+)\.[0-9a-f]{12}\.autolabs-tmp$/
/** What autolabs before this version named its temp files (".<name>.<12 hex>.tmp"). */
const LEGACY_TEMP_RE = /^\..+\.[0-9a-f]{12}\.tmp$/

/** Temp files this process has open right now: removed on exit and on a signal. */
const liveTemps = new Set<string>()

export function tempPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`)
}

/** Remove this process's temp files (synchronous: runs from an exit or signal handler). */
export function removeLiveTemps(): void {
  for (const t of liveTemps) rmSync(t, {force: true})
  liveTemps.clear()
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Remove temp files a killed run left in `dirs` (a dead writer's, and the old unsuffixed
 * names, which .gitignore did not cover). Returns the removed paths.
 */
export function removeStaleTemps(dirs: string[]): string[] {
  const removed: string[] = []
  for (const dir of dirs) {
    let names: string[]
    try {
      names = readdirSync(dir)
    } catch {
      continue
    }
    for (const name of names) {
      const m = TEMP_RE.exec(name)
      if ((m && !pidAlive(Number(m[1]))) || (!m && LEGACY_TEMP_RE.test(name))) {
        try {
          unlinkSync(path.join(dir, name))
          removed.push(path.join(dir, name))
        } catch {
          // Gone already, or not ours to remove: leave it.
        }
      }
    }
  }
  return removed
}

/** A private path that is a symbolic link is refused: writing through it would put secrets elsewhere. */
export function symlinkRefusal(p: string, what = 'a private workspace path'): UserError {
  return new UserError(`${p} is a symbolic link; autolabs does not follow links for ${what}.`, {
    suggestion: `Replace the link with a real ${path.extname(p) ? 'file' : 'directory'} (move the target's content there), then run the command again.`,
  })
}

/** Throws when `p` exists and is a symbolic link. */
export function refuseSymlinkSync(p: string, what?: string): void {
  let st
  try {
    st = lstatSync(p)
  } catch {
    return
  }
  if (st.isSymbolicLink()) throw symlinkRefusal(p, what)
}

async function refuseSymlink(p: string): Promise<void> {
  const st = await lstat(p).catch(() => undefined)
  if (st?.isSymbolicLink()) throw symlinkRefusal(p)
}

/**
 * Write a file atomically (temp file in the same directory, fsync, rename), created with
 * `mode` from the start so a secret is never readable by others, not even briefly. A target
 * that is a symbolic link is refused, not replaced.
 */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = await writeTemp(file, data, mode)
  try {
    await rename(tmp, file)
  } finally {
    liveTemps.delete(tmp)
    await rm(tmp, {force: true})
  }
}

/** Write `data` to a fresh temp file next to `file` (fsync-ed, exact mode); returns its path. */
export async function writeTemp(file: string, data: string | Uint8Array, mode: number): Promise<string> {
  await mkdir(path.dirname(file), {recursive: true})
  await refuseSymlink(file)
  const tmp = tempPathFor(file)
  liveTemps.add(tmp)
  try {
    const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode)
    try {
      await fh.writeFile(data)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await chmod(tmp, mode) // umask may have narrowed or (for 0644) kept it; be exact.
  } catch (error) {
    liveTemps.delete(tmp)
    await rm(tmp, {force: true})
    throw error
  }
  return tmp
}

/** A write prepared as a temp file; commit renames it into place. */
export interface StagedFile {
  file: string
  tmp: string
}

/**
 * Write several files so that they change together: every file is first written to a temp
 * file (any failure removes them all and leaves every target as it was), then all are renamed
 * into place in one synchronous run, which no signal handler or other task can interleave.
 */
export async function writeFilesTogether(files: Array<{path: string; content: string | Uint8Array; mode: number}>): Promise<void> {
  const staged: StagedFile[] = []
  try {
    for (const f of files) staged.push({file: f.path, tmp: await writeTemp(f.path, f.content, f.mode)})
  } catch (error) {
    for (const s of staged) {
      liveTemps.delete(s.tmp)
      rmSync(s.tmp, {force: true})
    }
    throw error
  }
  commitStaged(staged)
}

function commitStaged(staged: StagedFile[]): void {
  // renameSync: the renames run back to back; nothing else runs in between.
  for (const s of staged) {
    renameSync(s.tmp, s.file)
    liveTemps.delete(s.tmp)
  }
}

export async function ensureDir(dir: string, mode = 0o755): Promise<void> {
  await refuseSymlink(dir)
  await mkdir(dir, {recursive: true, mode})
  await chmod(dir, mode)
}

/**
 * Writes a file the user named (an export, a key): atomically with `mode`, never over an existing
 * file unless `overwrite`, never through a symbolic link.
 */
export async function writeNewFile(file: string, data: string | Uint8Array, opts: {mode: number; overwrite: boolean; flag: string}): Promise<void> {
  const st = await lstat(file).catch(() => undefined)
  if (st?.isSymbolicLink()) throw symlinkRefusal(file, 'a file it writes')
  if (st && !st.isFile()) throw fileError(Object.assign(new Error(file), {code: st.isDirectory() ? 'EISDIR' : 'EEXIST'}), file, undefined, 2)
  if (st && !opts.overwrite) throw new UserError(`${file} already exists.`, {suggestion: `Name another file, or pass ${opts.flag} to replace it.`, exitCode: 2})
  try {
    await writeFileAtomic(file, data, opts.mode)
  } catch (error) {
    // The folder when it is the folder that is in the way (mkdir); the file itself, never its temp name.
    const failed = (error as NodeJS.ErrnoException).path
    throw fileError(error, failed && !failed.endsWith(TEMP_SUFFIX) ? failed : file)
  }
}
/** open() flags for appending to a log file without following a link planted in its place. */
export const APPEND_NOFOLLOW = constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW

const ERRNO_TEXT: Record<string, [string, string]> = {
  ENOENT: ['does not exist', 'Check the path.'],
  EACCES: ['is not accessible (permission denied)', 'Check the permissions of the file and its directories, or run as the user who owns the workspace.'],
  EPERM: ['is not accessible (operation not permitted)', 'Check the permissions and attributes (chattr) of the file and its directories.'],
  EISDIR: ['is a directory, not a file', 'Move the directory aside or point the setting at a file.'],
  ENOTDIR: ['has a parent that is not a directory', 'Check each part of the path: a file stands where a directory is expected.'],
  EROFS: ['is on a read-only file system', 'Run from a writable directory (--dir) or remount the file system read-write.'],
  ENOSPC: ['cannot be written: the disk is full', 'Free some space and run the command again.'],
  EDQUOT: ['cannot be written: the disk quota is exhausted', 'Free some space and run the command again.'],
  ELOOP: ['is a symbolic link (or a loop of them)', 'Replace the link with a real file or directory.'],
  ENAMETOOLONG: ['has a name that is too long', 'Use a shorter path.'],
  EEXIST: ['already exists', 'Move it aside and run the command again.'],
  EMFILE: ['cannot be opened: too many open files', 'Raise the limit (ulimit -n) and run the command again.'],
  EIO: ['cannot be read or written: input/output error', 'Check the disk (dmesg).'],
}

/** The errno codes a user can cause with paths and permissions (BaseCommand reports these as user errors). */
export function isFileSystemError(error: unknown): error is NodeJS.ErrnoException & {code: string} {
  const code = (error as NodeJS.ErrnoException)?.code
  return typeof code === 'string' && code in ERRNO_TEXT && (error as NodeJS.ErrnoException).syscall !== 'connect'
}

/** A file-system error as a user error: which path, what is wrong, what to do (exit 1). */
export function fileError(error: unknown, file?: string, what?: string, exitCode = 1): UserError {
  const e = error as NodeJS.ErrnoException
  const [text, fix] = ERRNO_TEXT[e.code ?? ''] ?? [`cannot be used: ${e.message}`, 'Check the path and run the command again.']
  const where = file ?? e.path ?? '(unknown path)'
  return new UserError(`${what ? `${what} ` : ''}${where} ${text}${e.syscall ? ` (${e.syscall})` : ''}.`, {suggestion: fix, cause: error, exitCode})
}

/**
 * Read a text file that must be a regular file of at most `maxBytes` (a FIFO would hang, a
 * device like /dev/zero never ends, a directory is not a file). Opened non-blocking so that
 * a FIFO is refused instead of waited on. `noFollow`: refuse a symbolic link (private files).
 * Returns undefined when the file does not exist and `optional` is set.
 */
export async function readTextFile(
  file: string,
  opts: {what: string; maxBytes: number; optional?: boolean; noFollow?: boolean; /** Named by a flag: exit 2. */ usage?: boolean},
): Promise<string | undefined> {
  const exitCode = opts.usage ? 2 : 1
  let fh
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK | (opts.noFollow ? constants.O_NOFOLLOW : 0))
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' && opts.optional) return undefined
    if (code === 'ELOOP' && opts.noFollow) throw symlinkRefusal(file, opts.what)
    throw fileError(error, file, opts.what, exitCode)
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) {
      const kind = st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a named pipe (FIFO)' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : st.isSocket() ? 'a socket' : 'not a regular file'
      throw new UserError(`${opts.what} ${file} is ${kind}, not a regular file.`, {suggestion: 'Point it at a regular file.', exitCode: 2})
    }
    if (st.size > opts.maxBytes) {
      throw new UserError(`${opts.what} ${file} is ${st.size} bytes, more than the ${opts.maxBytes} bytes such a file can be.`, {
        suggestion: 'Check that the path names the right file.',
        exitCode: 2,
      })
    }
    // Read at most maxBytes + 1: a file that grows while being read is still bounded.
    const buf = Buffer.alloc(opts.maxBytes + 1)
    let n = 0
    for (;;) {
      const {bytesRead} = await fh.read(buf, n, buf.length - n, n)
      if (bytesRead === 0) break
      n += bytesRead
      if (n > opts.maxBytes) throw new UserError(`${opts.what} ${file} grew beyond ${opts.maxBytes} bytes while being read.`, {exitCode: 2})
    }
    return buf.subarray(0, n).toString('utf8')
  } catch (error) {
    if (error instanceof UserError) throw error
    throw fileError(error, file, opts.what, exitCode)
  } finally {
    await fh.close()
  }
}

/** Size limits of the files autolabs reads (far above any real one). */
export const READ_LIMITS = {
  config: 1024 * 1024,
  secrets: 1024 * 1024,
  state: 16 * 1024 * 1024,
  publicKey: 64 * 1024,
  secretFile: 64 * 1024,
  manifest: 4 * 1024 * 1024,
} as const
