/**
 * A real OpenSSH sshd on 127.0.0.1 for integration tests, with its own temp host key, config and
 * client key. As root it accepts root; as another user it runs unprivileged (UsePAM no) and
 * accepts only that user.
 *
 *   const avail = sshdAvailable()                 // {ok, reason} for describe.skipIf
 *   const sshd = await startSshd({maxSessions?})  // {host, port, user, keyPath, hostFingerprint, hostPublicKey}
 *   await sshd.killConnections()                  // drops every client connection (listener stays)
 *   await sshd.restart({newHostKey: true})        // same port, new host key ("VM re-created")
 *   await sshd.stop()
 */
import {execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

import {fingerprintOfPublicKey} from '../../../src/ssh/known-hosts.js'
import {freePort} from '../net.js'

const SSHD = '/usr/sbin/sshd'

export interface Sshd {
  host: string
  port: number
  user: string
  /** Client private key accepted for `user`. */
  keyPath: string
  dir: string
  hostFingerprint: string
  /** The server's ed25519 public key line. */
  hostPublicKey: string
  pid: number
  killConnections(): Promise<number>
  restart(opts?: {newHostKey?: boolean}): Promise<void>
  stop(): Promise<void>
}

export function sshdAvailable(): {ok: boolean; reason: string} {
  const problem = !existsSync(SSHD) ? `${SSHD} missing (apt-get install openssh-server)` : !existsSync('/usr/bin/ssh-keygen') ? 'ssh-keygen missing (apt-get install openssh-client)' : undefined
  // In CI a missing tool fails the test file instead of skipping it.
  if (problem && process.env.CI) throw new Error(`CI: ${problem}`)
  return problem ? {ok: false, reason: problem} : {ok: true, reason: `${SSHD} on loopback`}
}

function banner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({host: '127.0.0.1', port})
    const t = setTimeout(() => {
      s.destroy()
      resolve(false)
    }, 1000)
    s.on('data', (d) => {
      clearTimeout(t)
      s.destroy()
      resolve(d.toString().startsWith('SSH-'))
    })
    s.on('error', () => {
      clearTimeout(t)
      resolve(false)
    })
  })
}

const running = new Set<ChildProcess>()
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL')
})

export async function startSshd(opts: {maxSessions?: number} = {}): Promise<Sshd> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'autolabs-sshd-'))
  const user = os.userInfo().username
  const root = process.getuid?.() === 0
  const hostKey = path.join(dir, 'ssh_host_ed25519_key')
  const keyPath = path.join(dir, 'client_ed25519')
  const newHostKey = () => {
    rmSync(hostKey, {force: true})
    rmSync(`${hostKey}.pub`, {force: true})
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey])
  }
  newHostKey()
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'autolabs-test', '-f', keyPath])
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(`${keyPath}.pub`), {mode: 0o600})
  const port = await freePort()
  writeFileSync(
    path.join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'LogLevel ERROR',
      `MaxSessions ${opts.maxSessions ?? 50}`,
      // bash sources ~/.bashrc for a command from sshd only as a top-level shell (SHLVL < 2):
      // this machine's own shell setup (e.g. a pyenv rehash waiting on its lock) stays out of the tests.
      'SetEnv SHLVL=1',
      'MaxStartups 50',
      '',
    ].join('\n'),
  )
  if (root) mkdirSync('/run/sshd', {recursive: true, mode: 0o755}) // privilege separation dir

  let child: ChildProcess
  const start = async () => {
    child = spawn(SSHD, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], {stdio: ['ignore', 'ignore', 'pipe']})
    running.add(child)
    let stderr = ''
    child.stderr?.on('data', (d) => {
      stderr += d
    })
    let exited = false
    child.on('exit', () => {
      exited = true
      running.delete(child)
    })
    const until = Date.now() + 10_000
    while (!(await banner(port))) {
      if (exited || Date.now() > until) throw new Error(`sshd did not start on 127.0.0.1:${port}: ${stderr.trim()}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  const stopChild = async () => {
    const c = child
    if (c.exitCode !== null || c.signalCode !== null) return
    const gone = new Promise((r) => c.once('exit', r))
    await killConnections()
    c.kill('SIGTERM')
    await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))])
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
  }
  /** Per-connection sshd processes are the listener's descendants. */
  const killConnections = async (): Promise<number> => {
    const parent = new Map<number, number>()
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8')
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
        parent.set(Number(p), ppid)
      } catch {
        // exited meanwhile
      }
    }
    const isBelow = (pid: number) => {
      for (let p = parent.get(pid), i = 0; p && i < 10; p = parent.get(p), i++) if (p === child.pid) return true
      return false
    }
    let n = 0
    for (const pid of parent.keys()) {
      if (pid !== child.pid && isBelow(pid)) {
        try {
          process.kill(pid, 'SIGKILL')
          n++
        } catch {
          // gone
        }
      }
    }
    return n
  }

  await start()
  const sshd: Sshd = {
    host: '127.0.0.1',
    port,
    user,
    keyPath,
    dir,
    hostPublicKey: readFileSync(`${hostKey}.pub`, 'utf8').trim(),
    hostFingerprint: fingerprintOfPublicKey(readFileSync(`${hostKey}.pub`, 'utf8')),
    get pid() {
      return child.pid ?? 0
    },
    killConnections,
    async restart(opts = {}) {
      await stopChild()
      if (opts.newHostKey) {
        newHostKey()
        sshd.hostPublicKey = readFileSync(`${hostKey}.pub`, 'utf8').trim()
        sshd.hostFingerprint = fingerprintOfPublicKey(sshd.hostPublicKey)
      }
      await start()
    },
    async stop() {
      await stopChild()
      rmSync(dir, {recursive: true, force: true})
    },
  }
  return sshd
}
