import {type ChildProcess, spawn} from 'node:child_process'
import {copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {sourceAndRun} from '../../support/bash.js'

// base.sh's "is apt busy?" (wait_boot) as it runs on a cloud VM, with real processes and real
// locks on this machine: the lock files decide, never a process name.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const BASE_SH = path.join(ROOT, 'assets/stages/base.sh')

/** Polls (bounded) until `cond` holds. */
async function until(cond: () => boolean, what: string) {
  const deadline = Date.now() + 10_000
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 10 s`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe('base.sh apt_busy: dpkg/apt lock files, not process names', () => {
  let dir: string
  let locks: string[]
  const kids: ChildProcess[] = []
  const env = (extra: Record<string, string> = {}) => ({PATH: process.env.PATH ?? '/usr/bin:/bin', APT_LOCK_FILES: locks.join(' '), ...extra})
  const busy = (extra?: Record<string, string>) => sourceAndRun(BASE_SH, 'if apt_busy; then echo busy; apt_lock_holders; else echo free; fi', {env: env(extra), timeoutMs: 15_000})

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'al-aptbusy-'))
    locks = ['lock-frontend', 'lock', 'lists-lock', 'archives-lock'].map((f) => path.join(dir, f))
    for (const f of locks) writeFileSync(f, '', {mode: 0o640})
    // What every Debian/Ubuntu cloud image runs for as long as it is up: unattended-upgrades'
    // shutdown helper, whose process name the kernel cuts to 15 characters: "unattended-upgr".
    const helper = path.join(dir, 'unattended-upgrade-shutdown')
    copyFileSync('/bin/sleep', helper)
    const uu = spawn(helper, ['300'], {stdio: 'ignore'})
    kids.push(uu)
    await until(() => {
      try {
        return readFileSync(`/proc/${uu.pid}/comm`, 'utf8').trim() === 'unattended-upgr'
      } catch {
        return false
      }
    }, 'unattended-upgr running')
  })
  afterAll(() => {
    for (const k of kids) k.kill('SIGKILL')
    rmSync(dir, {recursive: true, force: true})
  })

  it('regression: unattended-upgr running and no lock held is not busy (the old pgrep check waited 10 minutes, then failed the deploy)', () => {
    const r = busy()
    expect(r.stdout.trim(), r.stderr).toBe('free')
  })

  it('a held dpkg lock (fcntl, as apt and dpkg take it) is busy, naming the holder', async () => {
    const holder = spawn('python3', ['-c', 'import fcntl,sys,time; f=open(sys.argv[1],"r+"); fcntl.lockf(f, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(300)', locks[1]], {stdio: ['ignore', 'pipe', 'ignore']})
    kids.push(holder)
    let out = ''
    holder.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    await until(() => out.includes('locked'), 'lock taken')
    try {
      const r = busy()
      expect(r.stdout.split('\n')[0]).toBe('busy')
      expect(r.stdout).toMatch(new RegExp(`^held ${locks[1].replaceAll('/', '\\/')} ${holder.pid} python3$`, 'm'))
      // Without psmisc's fuser (a minimal image), the flock + fcntl probe still sees it.
      const bin = path.join(dir, 'bin-no-fuser')
      mkdirSync(bin, {recursive: true})
      for (const tool of ['bash', 'dirname', 'tr', 'cat', 'flock', 'python3', 'true']) {
        const real = ['/usr/bin', '/bin'].map((d) => path.join(d, tool)).find((p) => {
          try {
            readFileSync(p)
            return true
          } catch {
            return false
          }
        })!
        rmSync(path.join(bin, tool), {force: true})
        symlinkSync(real, path.join(bin, tool))
      }
      const noFuser = busy({PATH: bin})
      expect(noFuser.stdout.split('\n').slice(0, 2)).toEqual(['busy', `held ${locks[1]} ? ?`])
    } finally {
      holder.kill('SIGKILL')
    }
  })
})
