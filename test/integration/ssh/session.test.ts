import {execFileSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtempSync, readFileSync, readdirSync, rmSync, statSync} from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {Readable, Writable} from 'node:stream'

import {afterAll, afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {ExternalError} from '../../../src/errors.js'
import {forgetHost, HostKeyChangedError, HostKeyMismatchError} from '../../../src/ssh/known-hosts.js'
import {connectSsh, SshConnectError, type SshSession, SshConnectionLostError, SshStoppedError, SshTimeoutError, type SshTarget} from '../../../src/ssh/session.js'
import {registerSecret} from '../../../src/util/redact.js'
import {type Sshd, sshdAvailable, startSshd} from '../../support/sshd/sshd.js'

const avail = sshdAvailable()

describe.skipIf(!avail.ok)(`SSH session against a real sshd (${avail.reason})`, () => {
  let sshd: Sshd
  let dir: string
  let knownHostsFile: string
  let target: SshTarget
  const open: SshSession[] = []

  const connect = async (opts: Partial<Parameters<typeof connectSsh>[1]> = {}) => {
    const s = await connectSsh(target, {knownHostsFile, readyTimeoutMs: 10_000, reconnect: {tries: 3, delayMs: 200}, ...opts})
    open.push(s)
    return s
  }

  beforeAll(async () => {
    sshd = await startSshd()
  })
  afterAll(async () => {
    await sshd?.stop()
  })
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'autolabs-ssh-test-'))
    knownHostsFile = path.join(dir, '.autolabs', 'known_hosts')
    target = {name: 'database-vm', host: sshd.host, port: sshd.port, user: sshd.user, privateKeyPath: sshd.keyPath}
  })
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close()
    rmSync(dir, {recursive: true, force: true})
  })

  describe('exec', () => {
    it('returns the exit code, stdout and stderr of a bash script without throwing on failure', async () => {
      const s = await connect()
      const r = await s.exec('echo out; echo err >&2\nexit 3')
      expect(r).toMatchObject({code: 3, stdout: 'out\n', stderr: 'err\n'})
    })

    it('throws ExternalError with the stderr tail and log path when check is set', async () => {
      const s = await connect()
      const logFile = path.join(dir, 'logs', 'database-vm', 'step.log')
      const err = await s.exec('echo "disk full" >&2; exit 1', {check: true, label: 'install postgres', logFile}).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(ExternalError)
      expect((err as ExternalError).message).toContain('"install postgres" failed on database-vm (exit 1)')
      expect((err as ExternalError).stderrTail).toBe('disk full')
      expect((err as ExternalError).logPath).toBe(logFile)
    })

    it('passes positional args and cwd', async () => {
      const s = await connect()
      const r = await s.exec('printf "%s|%s|%s" "$1" "$2" "$PWD"', {args: ['a b', "it's"], cwd: '/tmp'})
      expect(r.stdout).toBe("a b|it's|/tmp")
    })

    it('streams a string or a Readable to the command on stdin', async () => {
      const s = await connect()
      expect((await s.exec('tr a-z A-Z', {stdin: 'hello\n'})).stdout).toBe('HELLO\n')
      // 8 MiB from a Readable, checked end to end by its hash.
      const data = randomBytes(8 * 1024 * 1024)
      const chunks = Array.from({length: 64}, (_, i) => data.subarray(i * 131072, (i + 1) * 131072))
      const r = await s.exec('sha256sum | cut -d" " -f1', {stdin: Readable.from(chunks)})
      const want = execFileSync('sha256sum', {input: data}).toString().split(' ')[0]
      expect(r.stdout.trim()).toBe(want)
    })

    it('gives a command stdin EOF when there is no stdin (never hangs on a read)', async () => {
      const s = await connect()
      const r = await s.exec('cat; echo done', {timeoutMs: 5000})
      expect(r.stdout).toBe('done\n')
    })

    it('runs scripts larger than a command line from a temp file', async () => {
      const s = await connect()
      const script = `${'# padding line to make the script big\n'.repeat(4000)}echo "big:$1"`
      const r = await s.exec(script, {args: ['ok']})
      expect(r).toMatchObject({code: 0, stdout: 'big:ok\n'})
    })
  })

  describe('secrets', () => {
    it('passes env values through a 0600 file: never on any argv, deleted after use', async () => {
      const s = await connect()
      const secret = `pw-${randomBytes(12).toString('hex')}`
      const run = s.exec('sleep 2; printf %s "$DB_PASSWORD" | sha256sum | cut -c1-16; ls /tmp/autolabs-env.* 2>/dev/null | wc -l', {
        env: {DB_PASSWORD: secret, OTHER: "quote ' and $dollar"},
      })
      // While the command sleeps, look at every process's command line on this machine.
      await new Promise((r) => setTimeout(r, 1000))
      const hits: string[] = []
      for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
        try {
          if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(secret)) hits.push(p)
        } catch {
          // exited
        }
      }
      const r = await run
      expect(hits).toEqual([])
      const want = execFileSync('sha256sum', {input: secret}).toString().slice(0, 16)
      expect(r.stdout.split('\n')[0]).toBe(want)
      expect(r.code).toBe(0)
      expect(readdirSync('/tmp').filter((f) => f.startsWith('autolabs-env.'))).toEqual([])
    })

    it('keeps quotes and dollars in env values literal', async () => {
      const s = await connect()
      const r = await s.exec('printf %s "$V"', {env: {V: `a'b"c $HOME \`x\` \\n`}})
      expect(r.stdout).toBe(`a'b"c $HOME \`x\` \\n`)
    })

    it('redacts registered secrets in the step log and in the line callbacks', async () => {
      const s = await connect()
      const secret = `redis-${randomBytes(10).toString('hex')}`
      registerSecret(secret)
      const logFile = path.join(dir, 'logs', 'database-vm', 'redis.log')
      const lines: string[] = []
      await s.exec('echo "requirepass $P"; echo "auth $P failed" >&2', {env: {P: secret}, logFile, label: 'configure redis', onStdout: (l) => lines.push(l), onStderr: (l) => lines.push(l)})
      const log = readFileSync(logFile, 'utf8')
      expect(log).not.toContain(secret)
      expect(log).toContain('requirepass ********')
      expect(log).toContain('auth ******** failed')
      expect(log).toMatch(/configure redis/)
      expect(log).toMatch(/# exit 0 after/)
      expect(statSync(logFile).mode & 0o777).toBe(0o600)
      expect(lines.sort()).toEqual(['auth ******** failed', 'requirepass ********'])
    })
  })

  it('streams a large stdout into a Writable without buffering it', async () => {
    const s = await connect()
    const total = 128 * 1024 * 1024
    let got = 0
    let slowUntil = 32 * 1024 * 1024
    const sink = new Writable({
      highWaterMark: 256 * 1024,
      write(chunk: Buffer, _enc, cb) {
        got += chunk.length
        // A slow consumer for the first 32 MiB: backpressure must hold the remote back.
        if (got < slowUntil) setTimeout(cb, 1)
        else cb()
      },
    })
    global.gc?.()
    const before = process.memoryUsage()
    let peak = 0
    const sampler = setInterval(() => {
      const m = process.memoryUsage()
      peak = Math.max(peak, m.rss - before.rss, m.arrayBuffers - before.arrayBuffers)
    }, 20)
    const r = await s.exec(`head -c ${total} /dev/zero`, {stdout: sink, timeoutMs: 120_000})
    clearInterval(sampler)
    slowUntil = 0
    expect(r.code).toBe(0)
    expect(got).toBe(total)
    expect(r.stdoutBytes).toBe(total)
    expect(r.stdout).toBe('')
    expect(peak).toBeLessThan(64 * 1024 * 1024)
  })

  it('stops the command when the local stream it writes to fails', async () => {
    const s = await connect()
    let got = 0
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        got += chunk.length
        cb(got > 1024 * 1024 ? new Error('ENOSPC: no space left on device') : null)
      },
    })
    sink.on('error', () => undefined)
    const err = await s.exec('head -c 1000000000 /dev/zero', {stdout: sink, label: 'pg_dumpall'}).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ExternalError)
    expect((err as Error).message).toBe('"pg_dumpall" on database-vm was stopped: ENOSPC: no space left on device')
    // Stopped, not drained: far fewer bytes arrived than the command would have sent.
    expect(got).toBeLessThan(100 * 1024 * 1024)
    expect((await s.exec('echo still-usable')).stdout).toBe('still-usable\n')
  })

  it('uploads content atomically with the requested mode', async () => {
    const s = await connect()
    const remote = path.join(dir, 'remote', 'nested', 'stage.env')
    await s.upload('KEY=value\n', remote, 0o600)
    expect(readFileSync(remote, 'utf8')).toBe('KEY=value\n')
    expect(statSync(remote).mode & 0o777).toBe(0o600)
    await s.upload(Buffer.from('#!/bin/sh\n'), remote, 0o755)
    expect(statSync(remote).mode & 0o777).toBe(0o755)
    expect(readdirSync(path.dirname(remote))).toEqual(['stage.env'])
  })

  describe('host keys', () => {
    it('records the host key on first contact in OpenSSH format and verifies it afterwards', async () => {
      const first = await connect()
      expect(first.firstContact).toBe(true)
      expect(first.fingerprint).toBe(sshd.hostFingerprint)
      const text = readFileSync(knownHostsFile, 'utf8')
      expect(text).toBe(`[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey.split(' ').slice(0, 2).join(' ')} autolabs:database-vm\n`)
      // OpenSSH itself finds the entry (the file works with `ssh -o UserKnownHostsFile=`).
      const found = execFileSync('ssh-keygen', ['-F', `[127.0.0.1]:${sshd.port}`, '-f', knownHostsFile]).toString()
      expect(found).toContain('ssh-ed25519')
      const second = await connect()
      expect(second.firstContact).toBe(false)
      expect(second.fingerprint).toBe(sshd.hostFingerprint)
      expect(readFileSync(knownHostsFile, 'utf8')).toBe(text)
    })

    it('accepts hashed known_hosts lines as written by ssh-keygen -H', async () => {
      await (await connect()).close()
      execFileSync('ssh-keygen', ['-H', '-f', knownHostsFile], {stdio: 'ignore'})
      expect(readFileSync(knownHostsFile, 'utf8')).toMatch(/^\|1\|/)
      const s = await connect()
      expect(s.firstContact).toBe(false)
    })

    it('checks an expected fingerprint (from the guest agent) instead of trusting on first use', async () => {
      const err = await connect({expectedFingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'}).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(HostKeyMismatchError)
      expect((err as Error).message).toContain("is not database-vm's")
      expect(() => readFileSync(knownHostsFile)).toThrow()
      const s = await connect({expectedFingerprint: `256 ${sshd.hostFingerprint} root@host (ED25519)`})
      expect(s.firstContact).toBe(true)
    })

    it('refuses a changed host key, explains why and names the command that forgets it', async () => {
      await (await connect()).close()
      const before = readFileSync(knownHostsFile, 'utf8')
      const oldFp = sshd.hostFingerprint
      await sshd.restart({newHostKey: true})
      try {
        const err = await connect().catch((e: unknown) => e)
        expect(err).toBeInstanceOf(HostKeyChangedError)
        const e = err as HostKeyChangedError
        expect(e.message).toContain(`The SSH host key of database-vm ([127.0.0.1]:${sshd.port}) has changed`)
        expect(e.message).toContain(oldFp)
        expect(e.message).toContain(sshd.hostFingerprint)
        expect(e.message).toMatch(/re-created.*man-in-the-middle/s)
        expect(e.suggestion).toContain('autolabs hosts forget database-vm')
        expect(readFileSync(knownHostsFile, 'utf8')).toBe(before)
        // Forgetting the VM (by name) lets the next connection record the new key.
        expect(await forgetHost(knownHostsFile, 'database-vm')).toBe(1)
        const s = await connect()
        expect(s.firstContact).toBe(true)
        expect(s.fingerprint).toBe(sshd.hostFingerprint)
      } finally {
        expect(oldFp).not.toBe(sshd.hostFingerprint)
      }
    })
  })

  it('stops a command at its timeout, on the remote side too', async () => {
    const s = await connect()
    const marker = `autolabs-timeout-${randomBytes(4).toString('hex')}`
    const err = await s.exec(`exec -a ${marker} sleep 60`, {timeoutMs: 1500, label: 'wait for gitlab'}).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SshTimeoutError)
    expect((err as Error).message).toBe('"wait for gitlab" on database-vm did not finish within 1.5 s and was stopped.')
    const left = execFileSync('bash', ['-c', `pgrep -f "^${marker}" || true`]).toString().trim()
    expect(left).toBe('')
    // The session is still usable.
    expect((await s.exec('echo alive')).stdout).toBe('alive\n')
  })

  it('stops a running command and the processes it started on request: SIGTERM to its process group, then SshStoppedError', async () => {
    const s = await connect()
    const marker = `autolabs-stop-${randomBytes(4).toString('hex')}`
    const logFile = path.join(dir, 'logs', 'database-vm', 'step.log')
    const stop = new AbortController()
    // A step's shape: a script that started a long child and waits for it.
    const err = await s
      .exec(`(exec -a ${marker} sleep 60) & echo started; wait`, {
        label: 'install postgres',
        logFile,
        stop: stop.signal,
        onStdout: (l) => {
          if (l === 'started') stop.abort()
        },
      })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SshStoppedError)
    expect((err as Error).message).toBe('"install postgres" on database-vm was stopped (SIGTERM sent to it on the VM).')
    expect(execFileSync('bash', ['-c', `pgrep -f "^${marker}" || true`]).toString().trim()).toBe('')
    expect(readFileSync(logFile, 'utf8')).toMatch(/# \S+ stopped: SIGTERM sent to the command\n# ended after [\d.]+ s \(SIGTERM\): stopped\n$/)
    // A command that ends on its own is not affected by a stop that came after it.
    expect((await s.exec('echo alive', {stop: stop.signal})).stdout).toBe('alive\n')
  })

  it('a stop that comes before the command has started still ends it (the stop is sent until it has ended)', async () => {
    const s = await connect()
    const marker = `autolabs-stop-${randomBytes(4).toString('hex')}`
    const stop = new AbortController()
    stop.abort()
    const err = await s.exec(`exec -a ${marker} sleep 60`, {label: 'install redis', stop: stop.signal}).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SshStoppedError)
    expect(execFileSync('bash', ['-c', `pgrep -f "^${marker}" || true`]).toString().trim()).toBe('')
  })

  describe('dropped connections', () => {
    it('reports a connection lost in the middle of a command, then reconnects on the next exec', async () => {
      const s = await connect()
      const running = s.exec('sleep 30', {label: 'install redis'}).catch((e: unknown) => e)
      await new Promise((r) => setTimeout(r, 500))
      expect(await sshd.killConnections()).toBeGreaterThan(0)
      const err = await running
      expect(err).toBeInstanceOf(SshConnectionLostError)
      expect((err as Error).message).toContain('lost during "install redis"')
      expect(s.isConnected()).toBe(false)
      const r = await s.exec('echo back')
      expect(r.stdout).toBe('back\n')
      expect(s.isConnected()).toBe(true)
    })

    it('reconnects after sshd drops an idle connection, verifying the host key again', async () => {
      const s = await connect()
      await sshd.killConnections()
      await new Promise((r) => setTimeout(r, 200))
      expect((await s.exec('echo again')).stdout).toBe('again\n')
      // A reconnect to a host whose key changed meanwhile is refused like a first connect.
      await sshd.killConnections()
      await sshd.restart({newHostKey: true})
      const err = await s.exec('echo never').catch((e: unknown) => e)
      expect(err).toBeInstanceOf(HostKeyChangedError)
    })
  })

  describe('connect', () => {
    /**
     * A TCP front for sshd that closes its first `drops` connections at once, as an sshd that is
     * restarting or throttling (MaxStartups) does: odd ones before the banner, even ones after it.
     */
    const dropping = async (drops: number) => {
      let seen = 0
      const sockets = new Set<net.Socket>()
      const server = net.createServer((client) => {
        sockets.add(client)
        client.on('close', () => sockets.delete(client))
        client.on('error', () => undefined)
        const n = ++seen
        if (n <= drops) return client.end(n % 2 === 0 ? 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n' : '')
        const up = net.connect(sshd.port, sshd.host)
        client.pipe(up).pipe(client)
        up.on('error', () => client.destroy())
      })
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
      const close = () =>
        new Promise<void>((r) => {
          for (const c of sockets) c.destroy()
          server.close(() => r())
        })
      return {port: (server.address() as net.AddressInfo).port, seen: () => seen, close}
    }

    it('tries again when sshd closes the connection before the login completes (before or after its banner), and logs why', async () => {
      const front = await dropping(2)
      try {
        const logFile = path.join(dir, 'ssh.log')
        const s = await connectSsh({...target, port: front.port}, {knownHostsFile, logFile, handshake: {tries: 3, delayMs: 50}})
        open.push(s)
        expect(front.seen()).toBe(3)
        expect((await s.exec('echo in')).stdout).toBe('in\n')
        const log = readFileSync(logFile, 'utf8')
        for (const n of [2, 3]) expect(log).toContain(`the server closed the connection before the login completed; trying again (${n} of 3)`)
      } finally {
        await front.close()
      }
    })

    it('says that the server closed the connection (not a timeout) when it keeps doing so', async () => {
      const front = await dropping(5)
      try {
        const err = await connectSsh({...target, port: front.port}, {knownHostsFile, handshake: {tries: 3, delayMs: 50}}).catch((e: unknown) => e)
        expect(err).toBeInstanceOf(SshConnectError)
        expect(err).toMatchObject({kind: 'closed'})
        expect(front.seen()).toBe(3)
        expect((err as Error).message).toBe(`Cannot connect to database-vm (${sshd.user}@[127.0.0.1]:${front.port}) over SSH: the server closed the connection before the login completed`)
        expect((err as SshConnectError).suggestion).toContain('journalctl -u ssh')
      } finally {
        await front.close()
      }
    })

    it('does not retry a refused key', async () => {
      const front = await dropping(0)
      try {
        const other = path.join(dir, 'other_key')
        execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', other])
        const err = await connectSsh({...target, port: front.port, privateKeyPath: other}, {knownHostsFile, handshake: {tries: 3, delayMs: 50}}).catch((e: unknown) => e)
        expect(err).toMatchObject({kind: 'auth'})
        expect(front.seen()).toBe(1)
      } finally {
        await front.close()
      }
    })
  })

  it('runs several commands at once on one session, sharing one reconnect after a drop', async () => {
    const s = await connect()
    await sshd.killConnections()
    await new Promise((r) => setTimeout(r, 200))
    const rs = await Promise.all([1, 2, 3].map((i) => s.exec(`sleep 0.3; echo ${i}`)))
    expect(rs.map((r) => r.stdout)).toEqual(['1\n', '2\n', '3\n'])
  })

  it('refuses only the commands over sshd\'s session limit, without dropping the others', async () => {
    const small = await startSshd({maxSessions: 3})
    try {
      const s = await connectSsh({...target, port: small.port, privateKeyPath: small.keyPath}, {knownHostsFile: path.join(dir, 'kh-small')})
      open.push(s)
      const results = await Promise.allSettled(Array.from({length: 6}, (_, i) => s.exec(`sleep 1; echo ${i}`)))
      const ok = results.filter((r) => r.status === 'fulfilled')
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      expect(ok.length).toBe(3)
      expect(refused.length).toBe(3)
      for (const r of refused) expect((r.reason as Error).message).toMatch(/cannot open a channel/)
      expect(s.isConnected()).toBe(true)
      expect((await s.exec('echo after')).stdout).toBe('after\n')
    } finally {
      await small.stop()
    }
  })

  it('keeps working for the other users of one known_hosts file when three sessions connect at once', async () => {
    const sessions = await Promise.all(['gitlab-vm', 'database-vm', 'k8s-vm'].map((name) => connectSsh({...target, name}, {knownHostsFile})))
    open.push(...sessions)
    // Same address and port: the first records it, the others verify (or record the same key).
    const lines = readFileSync(knownHostsFile, 'utf8').trim().split('\n')
    expect(new Set(lines.map((l) => l.split(' ').slice(0, 3).join(' '))).size).toBe(1)
    for (const s of sessions) expect(s.fingerprint).toBe(sshd.hostFingerprint)
  })
})
