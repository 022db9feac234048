/**
 * One SSH connection per VM (node-ssh over ssh2), reused by all of its steps.
 *
 *   const s = await connectSsh(
 *     {name: 'database-vm', host: '10.0.0.5', user: 'debian', privateKeyPath: ws.sshKeyFile},
 *     {knownHostsFile: ws.knownHostsFile},
 *   )
 *   s.fingerprint, s.firstContact                     // host key pinned in known_hosts
 *   await s.upload(script, '/opt/autolabs/stages/database.sh', 0o755, {sudo: true})
 *   const r = await s.exec('bash /opt/autolabs/stages/database.sh postgres', {
 *     sudo: true,                                     // `sudo -n` for the cloud user; nothing for root
 *     env: {PG_PASSWORD: secret},                     // 0600 env file, sourced then deleted; never argv
 *     timeoutMs: 600_000,                             // remote `timeout` + local guard → SshTimeoutError
 *     logFile: ws.logFile('database-vm', 'postgres.log'), // every line redacted
 *     onStdout: (line) => task.output = line,         // redacted lines
 *     check: true,                                    // non-zero exit → ExternalError with the tail
 *   })                                                // → {code, stdout, stderr, durationMs}
 *   await s.exec('pg_dumpall', {sudo: true, stdout: fileStream})  // streamed with backpressure, not buffered
 *   await s.close()
 *
 * - `exec(script)` runs `script` with bash (`bash -c`); `stdin` may be a string, Buffer or Readable.
 *   Scripts over 64 KiB are uploaded and run from a temp file. Positional `args` are on argv: never
 *   put secrets there (use `env` or `stdin`).
 * - Register secret values with registerSecret() (src/util/redact.ts) before exec: log lines,
 *   onStdout/onStderr lines and error tails are redacted with it.
 * - Connection lost during a command → SshConnectionLostError (the command's fate is unknown:
 *   steps must be idempotent). The next exec/upload reconnects by itself (bounded: `reconnect.tries`),
 *   verifying the host key again; `reconnect()` does it explicitly.
 * - `auth` (src/ssh/auth.ts: ssh-agent first, then the key file, unlocked in memory) is resolved
 *   once per run; without it the key file is read here and must be unencrypted. With `jump`
 *   (src/ssh/jump.ts) the connection is tunnelled through the jump host, reconnects too.
 * - Connect failures are SshConnectError with `kind` ('refused' | 'timeout' | 'unreachable' | 'auth' |
 *   'closed' | 'other'); a changed host key is HostKeyChangedError (never retried). Only 'closed'
 *   (sshd dropped the connection before the login completed) is retried by connect itself (`handshake`).
 */
import {randomBytes} from 'node:crypto'
import {createWriteStream, mkdirSync, openSync, readFileSync, type WriteStream} from 'node:fs'
import path from 'node:path'
import {type Duplex, Readable, type Writable} from 'node:stream'
import {StringDecoder} from 'node:string_decoder'

import {NodeSSH} from 'node-ssh'
import ssh2, {type ClientChannel} from 'ssh2'

import {ExternalError, UserError} from '../errors.js'
import {redact} from '../util/redact.js'
import {authMethods, describeRefusedAuth, PASSPHRASE_ENV, type SshAuth} from './auth.js'
import {JumpHostError, type JumpHost} from './jump.js'
import {APPEND_NOFOLLOW, symlinkRefusal} from '../workspace/fs.js'
import {checkHostKey, hostPattern, knownKeyTypes, type HostKeyCheck} from './known-hosts.js'

// ssh2 is CommonJS: Node's ESM loader cannot see `utils` as a named export (the built CLI fails).
const sshUtils = ssh2.utils

export interface SshTarget {
  /** The VM's name (gitlab-vm, …): in messages, logs and known_hosts comments. */
  name: string
  host: string
  port?: number
  user: string
  privateKeyPath: string
}

export interface ConnectOptions {
  knownHostsFile: string
  /** Host key fingerprint learnt out of band (Proxmox guest agent); checked instead of trust on first use. */
  expectedFingerprint?: string
  /** Handshake bound (TCP + SSH + auth). Default 20 s. */
  readyTimeoutMs?: number
  /** Default 15 s; the connection is declared dead after 4 missed keep-alives. */
  keepaliveIntervalMs?: number
  /** Session log (connects, reconnects, commands run); redacted. */
  logFile?: string
  /** Automatic reconnects for a dropped connection. Default {tries: 3, delayMs: 2000}. */
  reconnect?: {tries: number; delayMs: number}
  /**
   * Connection attempts when sshd closes the TCP connection before the login completes (sshd
   * restarting, MaxStartups throttling, /run/nologin while booting): such a close is often
   * transient, so it is retried after `delayMs`, then twice that, … Default {tries: 3,
   * delayMs: 500}. Nothing else is retried here.
   */
  handshake?: {tries: number; delayMs: number}
  /** Resolved credentials (agent, unlocked key); default: target.privateKeyPath, unencrypted. */
  auth?: SshAuth
  /** Tunnel through this jump host instead of connecting from this machine. */
  jump?: JumpHost
}

export interface ExecOptions {
  stdin?: string | Buffer | Readable
  /** Values reach the remote command as environment variables through a 0600 file, never argv. */
  env?: Record<string, string>
  /** Positional parameters ($1…): visible in `ps` on the VM, so never secrets. */
  args?: string[]
  sudo?: boolean
  cwd?: string
  /** Per-command bound; default 10 min. */
  timeoutMs?: number
  /** Called with each redacted output line. */
  onStdout?: (line: string) => void
  onStderr?: (line: string) => void
  /** Raw stdout goes here (with backpressure) instead of being buffered; not ended by exec. */
  stdout?: Writable
  /** Step log: a header, every output line (redacted), the exit status. Appended, 0600. */
  logFile?: string
  /** Names the command in logs and errors (e.g. the step). Default: its first line. */
  label?: string
  /** Throw ExternalError on a non-zero exit. Default false. */
  check?: boolean
  /** Bound on buffered stdout/stderr (the tail is kept). Default 16 MiB each. */
  maxBuffer?: number
  /**
   * Aborted: the remote command is stopped and exec throws SshStoppedError once it has ended.
   * A second command on the connection sends SIGTERM to the command's `timeout`, which passes
   * it to every process of the command and sends SIGKILL 5 s later. (Not the SSH "signal"
   * request: OpenSSH 9.2 ignores it for a command under sudo or not — tried on Debian 12.)
   */
  stop?: AbortSignal
}

export interface ExecResult {
  code: number
  stdout: string
  stderr: string
  durationMs: number
  /** Bytes written to `stdout` when a Writable was given. */
  stdoutBytes: number
}

export interface SshSession {
  readonly target: SshTarget
  /** SHA256 fingerprint of the host key (verified against known_hosts). */
  readonly fingerprint: string
  /** True when this connection recorded the host key for the first time. */
  readonly firstContact: boolean
  exec(script: string, opts?: ExecOptions): Promise<ExecResult>
  /** Writes content (string or Buffer, via stdin) to remotePath atomically with `mode`. */
  upload(content: string | Buffer, remotePath: string, mode?: number, opts?: {sudo?: boolean; owner?: string}): Promise<void>
  reconnect(): Promise<void>
  isConnected(): boolean
  close(): Promise<void>
}

export type SshConnectFailure = 'refused' | 'timeout' | 'unreachable' | 'auth' | 'closed' | 'other'

export class SshConnectError extends ExternalError {
  readonly kind: SshConnectFailure
  readonly reason: string
  constructor(target: SshTarget, kind: SshConnectFailure, reason: string, cause?: unknown, via?: string) {
    const where = `${target.user}@${hostPattern(target.host, target.port ?? 22)}`
    super(`Cannot connect to ${target.name} (${where}) over SSH: ${reason}`, {
      command: `ssh ${where}`,
      cause,
      suggestion:
        kind === 'auth'
          ? `Check that ${target.name} has the public key of ${target.privateKeyPath} in ~${target.user}/.ssh/authorized_keys (cloud-init's ssh_authorized_keys).`
          : kind === 'closed'
            ? `sshd on ${target.name} accepted the connection and closed it: it may be restarting, or refusing this address (MaxStartups, /etc/hosts.deny, fail2ban). See \`journalctl -u ssh\` on ${target.name} (the Proxmox console works without SSH).`
            : via
              ? `Check that ${target.name} is running and that the jump host ${via} reaches ${target.host} (\`ssh -J ${via} ${where}\`).`
              : `Check that ${target.name} is running and that ${target.host} is reachable from this machine. If the VMs' network is private to the Proxmox host, set ssh.jumpHost in autolabs.yaml (auto uses the Proxmox node).`,
    })
    this.name = 'SshConnectError'
    this.kind = kind
    this.reason = reason
  }
}

/** Exit statuses seen before runRaw's own listener was attached (see openChannel). */
const earlyExit = new WeakMap<ClientChannel, {code: number | null; signal?: string}>()

export class SshConnectionLostError extends ExternalError {
  constructor(target: SshTarget, label: string, logPath?: string) {
    super(`The SSH connection to ${target.name} was lost during "${label}"; it may or may not have finished.`, {
      command: label,
      logPath,
      suggestion: 'Run the command again: finished steps are skipped and the interrupted one is re-run.',
    })
    this.name = 'SshConnectionLostError'
  }
}

export class SshStoppedError extends ExternalError {
  constructor(target: SshTarget, label: string, logPath?: string) {
    super(`"${label}" on ${target.name} was stopped (SIGTERM sent to it on the VM).`, {
      command: label,
      logPath,
      suggestion: 'Run the command again: finished steps are skipped and the stopped one is re-run.',
    })
    this.name = 'SshStoppedError'
  }
}

/** How long a stopped command may take to end (`timeout -k 5` kills it after 5 s) before its channel is closed from here. */
const STOP_GRACE_MS = 10_000

export class SshTimeoutError extends ExternalError {
  readonly timeoutMs: number
  constructor(target: SshTarget, label: string, timeoutMs: number, stderrTail: string, logPath?: string) {
    super(`"${label}" on ${target.name} did not finish within ${formatDuration(timeoutMs)} and was stopped.`, {
      command: label,
      stderrTail,
      logPath,
      suggestion: logPath ? `See ${logPath} for what it was doing.` : undefined,
    })
    this.name = 'SshTimeoutError'
    this.timeoutMs = timeoutMs
  }
}

export function formatDuration(ms: number): string {
  if (ms >= 120_000 && ms % 60_000 === 0) return `${ms / 60_000} min`
  if (ms >= 10_000) return `${Math.round(ms / 1000)} s`
  return `${Math.round(ms / 100) / 10} s`
}

/** Single-quotes a word for a POSIX shell. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const BIG_SCRIPT = 64 * 1024
// Prefer the kinds of key the hypervisor can report (ed25519) and the pinned one.
const HOST_KEY_ORDER = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256']

function classify(err: unknown): {kind: SshConnectFailure; reason: string} {
  const e = err as {code?: string; level?: string; message?: string}
  const msg = e?.message ?? String(err)
  if (e?.code === 'ECONNREFUSED') return {kind: 'refused', reason: 'connection refused'}
  if (e?.code === 'EHOSTUNREACH' || e?.code === 'ENETUNREACH') return {kind: 'unreachable', reason: 'host unreachable'}
  // The server accepted the TCP connection and closed it before the login finished: before its
  // banner (ssh2's message), or after it (node-ssh's, with code ETIMEDOUT: no timeout at all).
  if (msg === 'Connection lost before handshake' || msg === 'No response from server') {
    return {kind: 'closed', reason: 'the server closed the connection before the login completed'}
  }
  if (e?.code === 'ETIMEDOUT' || /timed out/i.test(msg)) return {kind: 'timeout', reason: 'no answer (timed out)'}
  if (e?.level === 'client-authentication' || /authentication methods failed/i.test(msg)) {
    return {kind: 'auth', reason: 'the key was not accepted'}
  }
  if (e?.code === 'ECONNRESET' || /closed|ended|reset/i.test(msg)) return {kind: 'closed', reason: `connection closed (${msg})`}
  return {kind: 'other', reason: msg}
}

class LineSplitter {
  private decoder = new StringDecoder('utf8')
  private partial = ''
  constructor(private emit: (line: string) => void) {}
  push(chunk: Buffer) {
    const text = this.partial + this.decoder.write(chunk)
    const lines = text.split('\n')
    this.partial = lines.pop() ?? ''
    for (const l of lines) this.emit(l.replace(/\r$/, ''))
    // A line without an end must not grow without bound (e.g. a progress bar using \r).
    if (this.partial.length > 64 * 1024) {
      this.emit(this.partial)
      this.partial = ''
    }
  }
  end() {
    const rest = this.partial + this.decoder.end()
    this.partial = ''
    if (rest) this.emit(rest)
  }
}

/** Keeps the last `max` characters. */
class TailBuffer {
  private parts: string[] = []
  private size = 0
  truncated = false
  constructor(private max: number) {}
  add(s: string) {
    this.parts.push(s)
    this.size += s.length
    while (this.size > this.max && this.parts.length > 1) {
      this.size -= this.parts.shift()!.length
      this.truncated = true
    }
  }
  toString() {
    const s = this.parts.join('')
    return s.length > this.max ? s.slice(-this.max) : s
  }
}

class Log {
  private stream?: WriteStream
  constructor(file?: string) {
    if (!file) return
    mkdirSync(path.dirname(file), {recursive: true, mode: 0o700})
    // O_NOFOLLOW: a log replaced by a link to another file is not appended to.
    let fd: number
    try {
      fd = openSync(file, APPEND_NOFOLLOW, 0o600)
    } catch (error) {
      throw (error as NodeJS.ErrnoException).code === 'ELOOP' ? symlinkRefusal(file, 'log files') : error
    }
    this.stream = createWriteStream('', {fd})
    this.stream.on('error', () => undefined) // a log that cannot be written must not kill a deploy
  }
  line(text: string) {
    this.stream?.write(`${redact(text)}\n`)
  }
  close(): Promise<void> {
    const s = this.stream
    if (!s) return Promise.resolve()
    return new Promise((resolve) => s.end(() => resolve()))
  }
}

class Session implements SshSession {
  fingerprint = ''
  firstContact = false
  private ssh?: NodeSSH
  private connected = false
  private closedByUs = false
  private sessionLog: Log

  constructor(
    readonly target: SshTarget,
    private opts: ConnectOptions,
  ) {
    this.sessionLog = new Log(opts.logFile)
  }

  isConnected() {
    return this.connected && Boolean(this.ssh?.isConnected())
  }

  async connect(): Promise<void> {
    const {tries, delayMs} = this.opts.handshake ?? {tries: 3, delayMs: 500}
    for (let i = 1; ; i++) {
      try {
        await this.connectOnce()
        return
      } catch (error) {
        if (!(error instanceof SshConnectError && error.kind === 'closed') || i >= tries) throw error
        this.sessionLog.line(`# ${new Date().toISOString()} ${error.reason}; trying again (${i + 1} of ${tries})`)
        await new Promise((r) => setTimeout(r, delayMs * i))
      }
    }
  }

  private async connectOnce(): Promise<void> {
    const t = this.target
    const port = t.port ?? 22
    const ref = {name: t.name, host: t.host, port}
    let hostKeyError: unknown
    let check: HostKeyCheck | undefined
    const pinned = knownKeyTypes(this.opts.knownHostsFile, t.host, port)
    const serverHostKey =
      pinned.length === 0 ? HOST_KEY_ORDER : pinned.flatMap((k) => (k === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [k]))
    const auth = this.opts.auth
    const credentials = auth ? {agent: auth.agent, authHandler: authMethods(auth, t.user) as never} : {privateKey: readPrivateKey(t)}
    const via = this.opts.jump?.label
    let sock: Duplex | undefined
    if (this.opts.jump) {
      try {
        sock = await this.opts.jump.forward(t.host, port, this.opts.readyTimeoutMs ?? 20_000)
      } catch (error) {
        if (error instanceof UserError || error instanceof JumpHostError) throw error
        const f = (error as {forward?: {kind: SshConnectFailure; reason: string}}).forward ?? {kind: 'other' as const, reason: (error as Error).message}
        throw new SshConnectError(t, f.kind, `${f.reason} (through the jump host ${via})`, error, via)
      }
    }
    const ssh = new NodeSSH()
    try {
      await ssh.connect({
        host: t.host,
        port,
        sock,
        username: t.user,
        ...credentials,
        readyTimeout: this.opts.readyTimeoutMs ?? 20_000,
        keepaliveInterval: this.opts.keepaliveIntervalMs ?? 15_000,
        keepaliveCountMax: 4,
        algorithms: {serverHostKey: serverHostKey as never},
        hostVerifier: (key: Buffer) => {
          try {
            check = checkHostKey(this.opts.knownHostsFile, ref, key, {expectedFingerprint: this.opts.expectedFingerprint})
            return true
          } catch (error) {
            hostKeyError = error
            return false
          }
        },
      })
    } catch (error) {
      ssh.dispose()
      if (hostKeyError) throw hostKeyError
      if (error instanceof UserError) throw error
      const {kind, reason} = classify(error)
      const refused = auth ? describeRefusedAuth(auth, t.user) : `the key ${t.privateKeyPath} was not accepted for ${t.user}`
      throw new SshConnectError(t, kind, kind === 'auth' ? refused : via ? `${reason} (through the jump host ${via})` : reason, error, via)
    }
    if (!check) {
      ssh.dispose()
      throw new SshConnectError(t, 'other', 'the server offered no host key to verify')
    }
    this.ssh = ssh
    this.connected = true
    this.closedByUs = false
    this.fingerprint = check.fingerprint
    this.firstContact ||= check.firstContact
    const conn = ssh.connection!
    const lost = () => {
      if (this.ssh === ssh) this.connected = false
    }
    conn.on('close', lost)
    conn.on('end', lost)
    conn.on('error', (err: Error) => {
      lost()
      this.sessionLog.line(`# connection error: ${err.message}`)
    })
    this.sessionLog.line(
      `# ${new Date().toISOString()} connected to ${t.user}@${hostPattern(t.host, port)}${via ? ` through ${via}` : ''} host key ${check.fingerprint}${check.firstContact ? ' (recorded now)' : ''}`,
    )
  }

  private reconnecting?: Promise<void>

  /** Concurrent callers (several commands on one session) share one reconnect. */
  reconnect(): Promise<void> {
    this.reconnecting ??= this.doReconnect().finally(() => {
      this.reconnecting = undefined
    })
    return this.reconnecting
  }

  private async doReconnect(): Promise<void> {
    this.dropConnection()
    const {tries, delayMs} = this.opts.reconnect ?? {tries: 3, delayMs: 2000}
    let last: unknown
    for (let i = 0; i < Math.max(1, tries); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, delayMs * i))
      try {
        this.sessionLog.line(`# ${new Date().toISOString()} reconnecting (try ${i + 1} of ${tries})`)
        await this.connect()
        return
      } catch (error) {
        last = error
        if (error instanceof UserError) throw error // host key problems are not transient
        if (error instanceof SshConnectError && error.kind === 'auth') throw error
      }
    }
    throw last
  }

  private dropConnection() {
    if (this.ssh) {
      const s = this.ssh
      this.ssh = undefined
      this.connected = false
      s.dispose()
    }
  }

  private async ensureConnected() {
    if (this.closedByUs) throw new UserError(`The SSH session to ${this.target.name} is closed.`)
    if (!this.isConnected()) await this.reconnect()
  }

  private openChannel(command: string): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      const conn = this.ssh?.connection
      if (!conn) {
        reject(new Error('not connected'))
        return
      }
      conn.exec(command, {}, (err, channel) => {
        if (err) return reject(err)
        // A fast command's exit status can arrive in the same packet as the channel's
        // confirmation, i.e. before the caller (after an await) attaches its listener: record it now.
        channel.once('exit', (code: number | null, signal?: string) => {
          earlyExit.set(channel, {code, signal})
        })
        resolve(channel)
      })
    })
  }

  /** Runs `command` on a fresh channel; the building block of exec and upload. */
  private async runRaw(
    command: string,
    label: string,
    /** stopCommand: how `stop` ends this command, run on a channel of its own. */
    opts: ExecOptions & {timeoutMs: number; stopCommand?: string},
    log: Log,
  ): Promise<ExecResult & {lost: boolean; timedOut: boolean; stopped: boolean}> {
    const stopCommand = opts.stopCommand
    await this.ensureConnected()
    const started = Date.now()
    let channel: ClientChannel
    try {
      channel = await this.openChannel(command)
    } catch (error) {
      // A refused channel on a live connection (e.g. sshd's MaxSessions) must not tear down the
      // connection under the other running commands; a dead connection is reconnected once.
      if (this.isConnected()) {
        throw new SshConnectError(this.target, 'other', `cannot open a channel: ${(error as Error).message}`, error)
      }
      await this.reconnect()
      channel = await this.openChannel(command).catch((e: unknown) => {
        throw new SshConnectError(this.target, 'other', `cannot open a channel: ${(e as Error).message}`, error)
      })
    }
    const max = opts.maxBuffer ?? 16 * 1024 * 1024
    const out = new TailBuffer(max)
    const err = new TailBuffer(max)
    let stdoutBytes = 0
    const outLines = new LineSplitter((l) => {
      const r = redact(l)
      log.line(r)
      opts.onStdout?.(r)
    })
    const errLines = new LineSplitter((l) => {
      const r = redact(l)
      log.line(r)
      opts.onStderr?.(r)
    })
    const sink = opts.stdout
    let streamError: Error | undefined
    const abort = (e: Error) => {
      // A failing local stream (disk full, closed pipe) must not leave the remote side blocked.
      streamError ??= e
      if (sink) channel.unpipe(sink)
      channel.resume() // drain what is buffered so that the channel can end and close
      channel.close()
    }
    if (sink) {
      channel.on('data', (d: Buffer) => {
        stdoutBytes += d.length
      })
      channel.pipe(sink, {end: false})
      sink.once('error', abort)
    } else {
      channel.on('data', (d: Buffer) => {
        out.add(d.toString('utf8'))
        outLines.push(d)
      })
    }
    channel.stderr.on('data', (d: Buffer) => {
      err.add(d.toString('utf8'))
      errLines.push(d)
    })

    let exitCode: number | undefined
    let exitSignal: string | undefined
    const early = earlyExit.get(channel)
    if (early && typeof early.code === 'number') exitCode = early.code
    else if (early?.signal) exitSignal = early.signal
    channel.on('exit', (code: number | null, signal?: string) => {
      if (typeof code === 'number') exitCode = code
      else if (signal) exitSignal = signal
    })

    let timedOut = false
    let lost = false
    const conn = this.ssh!.connection!
    const finished = new Promise<void>((resolve) => {
      const onLost = () => {
        lost = true
        resolve()
      }
      conn.once('close', onLost)
      channel.on('close', () => {
        conn.removeListener('close', onLost)
        resolve()
      })
    })
    // The remote `timeout` normally ends the command; this guard covers a hung connection.
    const guard = setTimeout(() => {
      timedOut = true
      try {
        channel.signal('KILL')
      } catch {
        // not supported by every server
      }
      if (sink) channel.unpipe(sink)
      channel.resume()
      channel.close()
    }, opts.timeoutMs + 10_000)

    let stopped = false
    let ended = false
    let stopGuard: NodeJS.Timeout | undefined
    const sendStop = async () => {
      // Sent again each second until the command has ended: a stop that came just as the
      // channel opened can precede the command's `timeout` process.
      for (let i = 0; stopCommand && !ended && i < STOP_GRACE_MS / 1000; i++) {
        await this.runRaw(stopCommand, 'stop', {timeoutMs: 15_000}, new Log()).catch(() => undefined)
        if (!ended) await new Promise((r) => setTimeout(r, 1000))
      }
    }
    const onStop = () => {
      stopped = true
      log.line(`# ${new Date().toISOString()} stopped: SIGTERM sent to the command`)
      void sendStop()
      // Not ended by then (the stop could not be sent): stop reading and close the channel.
      stopGuard = setTimeout(() => {
        channel.resume()
        channel.close()
      }, STOP_GRACE_MS)
    }
    if (opts.stop?.aborted) onStop()
    else opts.stop?.addEventListener('abort', onStop, {once: true})

    if (opts.stdin === undefined) channel.end()
    else if (opts.stdin instanceof Readable) {
      opts.stdin.once('error', abort)
      opts.stdin.pipe(channel)
    }
    else channel.end(opts.stdin)

    await finished
    ended = true
    clearTimeout(guard)
    clearTimeout(stopGuard)
    opts.stop?.removeEventListener('abort', onStop)
    outLines.end()
    errLines.end()
    if (sink) {
      channel.unpipe(sink)
      sink.removeListener('error', abort)
    }
    if (streamError) {
      log.line(`# stopped: ${streamError.message}`)
      throw new ExternalError(`"${label}" on ${this.target.name} was stopped: ${streamError.message}`, {command: label, cause: streamError})
    }
    const durationMs = Date.now() - started
    // GNU timeout exits 124 (TERM) or 137 (KILL after -k) when it had to stop the command.
    if ((exitCode === 124 || exitCode === 137) && durationMs >= opts.timeoutMs - 1000) timedOut = true
    // ssh2 names the signal "SIGTERM" (lib/client.js, 1.17.0: `SIG${data.signal}`); the protocol (RFC 4254 6.10) says "TERM".
    const signalName = exitSignal?.replace(/^SIG/, '')
    const code = exitCode ?? (signalName ? 128 + (SIGNALS[signalName] ?? 0) : 255)
    if (out.truncated) log.line(`# (stdout longer than ${max} bytes: only its tail was kept in memory)`)
    return {
      code,
      stdout: out.toString(),
      stderr: err.toString(),
      durationMs,
      stdoutBytes,
      lost: (lost || exitSignal === undefined) && exitCode === undefined && !timedOut && !stopped,
      timedOut,
      stopped,
    }
  }

  async exec(script: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const label = opts.label ?? (script.split('\n').find((l) => l.trim()) ?? script).trim().slice(0, 80)
    const timeoutMs = opts.timeoutMs ?? 600_000
    const log = new Log(opts.logFile)
    const cleanup: string[] = []
    try {
      log.line(`# ${new Date().toISOString()} ${this.target.name}: ${label}${opts.sudo ? ' (sudo)' : ''}`)
      let envFile: string | undefined
      if (opts.env && Object.keys(opts.env).length > 0) {
        envFile = await this.uploadTemp(envFileContent(opts.env), 'env')
        cleanup.push(envFile)
      }
      let body = script
      if (Buffer.byteLength(script) > BIG_SCRIPT) {
        const file = await this.uploadTemp(script, 'script')
        cleanup.push(file)
        body = `. ${shellQuote(file)}`
      }
      const prelude = [
        envFile ? 'set -a; . "$1"; set +a; rm -f -- "$1"; shift' : '',
        opts.cwd ? `cd ${shellQuote(opts.cwd)}` : '',
      ].filter(Boolean)
      const wrapped = prelude.length > 0 ? `${prelude.join('\n')}\n${body}` : body
      const sudo = opts.sudo && this.target.user !== 'root' ? ['sudo', '-n', '--'] : []
      // A stoppable command is named uniquely ($0), so that the stop finds its `timeout` alone.
      const name = opts.stop ? `autolabs-${randomBytes(8).toString('hex')}` : 'autolabs'
      const argv = [
        ...sudo,
        'timeout', '-k', '5', `${Math.max(1, Math.ceil(timeoutMs / 1000))}`,
        'bash', '-c', wrapped, name, ...(envFile ? [envFile] : []), ...(opts.args ?? []),
      ]
      const command = argv.map(shellQuote).join(' ')
      // "[a]utolabs-…" matches the command's name but not the text of the stop command itself.
      const stopCommand = opts.stop ? [...sudo, 'pkill', '-TERM', '-f', '--', `^timeout -k 5 [0-9]+ bash -c .*[a]${name.slice(1)}`].map(shellQuote).join(' ') : undefined
      const r = await this.runRaw(command, label, {...opts, timeoutMs, stopCommand}, log)
      // Stopped, unless it finished on its own before the signal reached it.
      if (r.stopped && r.code !== 0) {
        log.line(`# ended after ${formatDuration(r.durationMs)} (${r.code === 143 ? 'SIGTERM' : `exit ${r.code}`}): stopped`)
        throw new SshStoppedError(this.target, label, opts.logFile)
      }
      if (r.lost) {
        log.line(`# connection lost after ${formatDuration(r.durationMs)}`)
        throw new SshConnectionLostError(this.target, label, opts.logFile)
      }
      if (r.timedOut) {
        log.line(`# stopped: timeout of ${formatDuration(timeoutMs)} reached`)
        throw new SshTimeoutError(this.target, label, timeoutMs, tail(redact(r.stderr || r.stdout)), opts.logFile)
      }
      log.line(`# exit ${r.code} after ${formatDuration(r.durationMs)}`)
      if (r.code !== 0 && opts.stdout) log.line(`# stdout went to a stream (${r.stdoutBytes} bytes)`)
      if (opts.check && r.code !== 0) {
        if (r.code === 1 && opts.sudo && /sudo: a password is required/.test(r.stderr)) {
          throw new UserError(`${this.target.user} on ${this.target.name} cannot use sudo without a password.`, {
            suggestion: `Give ${this.target.user} passwordless sudo (cloud-init's default user has it), or connect as root.`,
          })
        }
        throw new ExternalError(`"${label}" failed on ${this.target.name} (exit ${r.code}).`, {
          command: label,
          stderrTail: tail(redact(r.stderr || r.stdout)),
          logPath: opts.logFile,
          exitCode: 1,
        })
      }
      const {lost: _l, timedOut: _t, stopped: _s, ...result} = r
      return result
    } finally {
      if (cleanup.length > 0 && this.isConnected()) {
        // The env file is normally deleted by the command itself; this covers an early failure.
        await this.runRaw(`rm -f -- ${cleanup.map(shellQuote).join(' ')}`, 'cleanup', {timeoutMs: 15_000}, new Log()).catch(() => undefined)
      }
      await log.close()
    }
  }

  /** A 0600 file owned by the SSH user in /tmp; content goes through stdin. */
  private async uploadTemp(content: string, kind: string): Promise<string> {
    const r = await this.runRaw(
      `umask 077; f=$(mktemp /tmp/autolabs-${kind}.XXXXXXXX) && cat > "$f" && printf %s "$f"`,
      `upload ${kind}`,
      {stdin: content, timeoutMs: 60_000},
      new Log(),
    )
    if (r.lost) throw new SshConnectionLostError(this.target, `upload ${kind}`)
    if (r.code !== 0 || !r.stdout.startsWith('/tmp/')) {
      throw new ExternalError(`Cannot write a temporary file on ${this.target.name}.`, {command: 'mktemp', stderrTail: tail(r.stderr)})
    }
    return r.stdout.trim()
  }

  async upload(content: string | Buffer, remotePath: string, mode = 0o644, opts: {sudo?: boolean; owner?: string} = {}): Promise<void> {
    const script = [
      'set -euo pipefail',
      'umask 077',
      'd=$(dirname -- "$1")',
      'mkdir -p -- "$d"',
      'tmp=$(mktemp "$d/.autolabs-upload.XXXXXX")',
      'trap \'rm -f -- "$tmp"\' EXIT',
      'cat > "$tmp"',
      'chmod "$2" "$tmp"',
      'if [ -n "${3:-}" ]; then chown "$3" "$tmp"; fi',
      'mv -f -- "$tmp" "$1"',
      'trap - EXIT',
    ].join('\n')
    await this.exec(script, {
      stdin: content,
      args: [remotePath, mode.toString(8).padStart(4, '0'), opts.owner ?? ''],
      sudo: opts.sudo,
      label: `upload ${remotePath}`,
      timeoutMs: 120_000,
      check: true,
    })
  }

  async close(): Promise<void> {
    this.closedByUs = true
    this.dropConnection()
    await this.sessionLog.close()
  }
}

const SIGNALS: Record<string, number> = {HUP: 1, INT: 2, QUIT: 3, KILL: 9, PIPE: 13, TERM: 15}

function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n')
}

function envFileContent(env: Record<string, string>): string {
  return Object.entries(env)
    .map(([k, v]) => {
      if (!ENV_NAME.test(k)) throw new UserError(`Environment variable name "${k}" is not valid (letters, digits and _).`)
      return `${k}=${shellQuote(v)}\n`
    })
    .join('')
}

function readPrivateKey(t: SshTarget): string {
  let text: string
  try {
    text = readFileSync(t.privateKeyPath, 'utf8')
  } catch (error) {
    throw new UserError(`Cannot read the SSH key for ${t.name}: ${t.privateKeyPath} (${(error as NodeJS.ErrnoException).code ?? error}).`, {
      suggestion: 'Check the ssh key path in autolabs.yaml; `autolabs init` creates the workspace key.',
    })
  }
  const parsed = sshUtils.parseKey(text)
  if (parsed instanceof Error) {
    throw new UserError(`The SSH key ${t.privateKeyPath} cannot be used: ${parsed.message}.`, {
      suggestion: /encrypted|passphrase/i.test(parsed.message)
        ? `Load it into ssh-agent (\`ssh-add ${t.privateKeyPath}\`), or give its passphrase in ${PASSPHRASE_ENV} or --ssh-passphrase-file.`
        : 'Use an OpenSSH private key (ed25519 recommended): `ssh-keygen -t ed25519 -f <file>`.',
    })
  }
  return text
}

/** Opens a verified SSH session; see the header for the API. */
export async function connectSsh(target: SshTarget, opts: ConnectOptions): Promise<SshSession> {
  const s = new Session(target, opts)
  await s.connect()
  return s
}
