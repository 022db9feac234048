/**
 * A jump host (OpenSSH's ProxyJump): one SSH connection to a machine that can reach the VMs'
 * network — by default the Proxmox node — through which every VM connection is tunnelled
 * (`direct-tcpip` channels), so the workstation needs no route to the VMs.
 *
 *   const jump = new JumpHost({user: 'root', host: 'pve.lan', port: 22}, {auth, knownHostsFile})
 *   const sock = await jump.forward('192.168.100.20', 22, 10_000)   // a stream to the VM's sshd
 *   await jump.probe('192.168.100.20', 22, 5000)                   // undefined, or why not
 *   await jump.close()
 *
 * The jump host's own key is pinned in the same known_hosts (as "jump-host"; checked against
 * ssh.jumpHostFingerprint on first contact when set). The connection is opened on first use,
 * shared by every VM session of the run, and opened again if it drops.
 */
import type {Duplex} from 'node:stream'

import ssh2 from 'ssh2'

import {ExternalError, UserError} from '../errors.js'
import {authMethods, describeRefusedAuth, type SshAuth} from './auth.js'
import {formatJump, JUMP_HOST_NAME, type JumpSpec} from './jump-spec.js'
import {checkHostKey, hostPattern} from './known-hosts.js'

export interface JumpOptions {
  auth: SshAuth
  knownHostsFile: string
  /** SHA256:… the jump host's key must have on first contact (ssh.jumpHostFingerprint). */
  expectedFingerprint?: string
  /** Handshake bound. Default 20 s. */
  readyTimeoutMs?: number
  /** Called with one line per connect (for session logs). */
  log?: (line: string) => void
}

/** Why a tunnel could not be opened, in the words of readiness and SshConnectError. */
export function classifyForwardError(err: Error): {kind: 'refused' | 'unreachable' | 'timeout' | 'other'; reason: string} {
  const m = err.message
  if (/refused/i.test(m)) return {kind: 'refused', reason: 'connection refused'}
  if (/no route|unreachable/i.test(m)) return {kind: 'unreachable', reason: 'host unreachable'}
  if (/timed out/i.test(m)) return {kind: 'timeout', reason: 'no answer (timed out)'}
  return {kind: 'other', reason: m.replace(/^\(SSH\) /, '')}
}

export class JumpHostError extends ExternalError {
  constructor(spec: JumpSpec, reason: string, cause?: unknown) {
    super(`Cannot connect to the jump host ${formatJump(spec)}: ${reason}`, {
      command: `ssh ${formatJump(spec)}`,
      cause,
      suggestion: `The VMs are reached through ${formatJump(spec)} (ssh.jumpHost in autolabs.yaml; by default the Proxmox node as root). Check that it is up and accepts your key (\`ssh ${formatJump(spec)}\`), or set ssh.jumpHost.`,
      exitCode: 3,
    })
    this.name = 'JumpHostError'
  }
}

export class JumpHost {
  private client?: ssh2.Client
  private connecting?: Promise<ssh2.Client>
  fingerprint = ''

  constructor(
    readonly spec: JumpSpec,
    private opts: JumpOptions,
  ) {}

  get label(): string {
    return formatJump(this.spec)
  }

  private connect(): Promise<ssh2.Client> {
    if (this.client) return Promise.resolve(this.client)
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined
    })
    return this.connecting
  }

  private open(): Promise<ssh2.Client> {
    const {spec, opts} = this
    return new Promise((resolve, reject) => {
      const c = new ssh2.Client()
      let hostKeyError: unknown
      let ready = false
      c.on('ready', () => {
        ready = true
        this.client = c
        opts.log?.(`# ${new Date().toISOString()} connected to the jump host ${this.label} host key ${this.fingerprint}`)
        resolve(c)
      })
      c.on('error', (err: Error & {level?: string}) => {
        if (ready) return // a dropped connection: 'close' forgets it
        c.end()
        if (hostKeyError) return reject(hostKeyError)
        if (err.level === 'client-authentication') return reject(new JumpHostError(spec, describeRefusedAuth(opts.auth, spec.user), err))
        const code = (err as NodeJS.ErrnoException).code
        const reason =
          code === 'ECONNREFUSED' ? 'connection refused' : code === 'EHOSTUNREACH' || code === 'ENETUNREACH' ? 'host unreachable' : /timed out/i.test(err.message) ? 'no answer (timed out)' : err.message
        reject(new JumpHostError(spec, reason, err))
      })
      c.on('close', () => {
        if (this.client === c) this.client = undefined
        if (!ready) reject(hostKeyError ?? new JumpHostError(spec, 'the connection was closed before the login completed'))
      })
      c.connect({
        host: spec.host,
        port: spec.port,
        username: spec.user,
        readyTimeout: opts.readyTimeoutMs ?? 20_000,
        keepaliveInterval: 15_000,
        keepaliveCountMax: 4,
        agent: opts.auth.agent,
        authHandler: authMethods(opts.auth, spec.user) as never,
        hostVerifier: (key: Buffer) => {
          try {
            const check = checkHostKey(opts.knownHostsFile, {name: JUMP_HOST_NAME, host: spec.host, port: spec.port}, key, {expectedFingerprint: opts.expectedFingerprint})
            this.fingerprint = check.fingerprint
            return true
          } catch (error) {
            hostKeyError = error
            return false
          }
        },
      })
    })
  }

  /**
   * A stream to host:port opened by the jump host. Rejects with the jump host's reason
   * ("connection refused", "host unreachable", "no answer (timed out)") as an Error whose
   * `forward` field classifies it; a jump host that cannot be reached is JumpHostError.
   */
  async forward(host: string, port: number, timeoutMs: number): Promise<Duplex> {
    const c = await this.connect()
    return new Promise((resolve, reject) => {
      let done = false
      const t = setTimeout(() => {
        done = true
        reject(Object.assign(new Error(`no answer from ${hostPattern(host, port)} through ${this.label} (timed out)`), {forward: {kind: 'timeout', reason: 'no answer (timed out)'}}))
      }, timeoutMs)
      c.forwardOut('127.0.0.1', 0, host, port, (err, stream) => {
        clearTimeout(t)
        if (done) {
          stream?.close()
          return
        }
        if (err) reject(Object.assign(err, {forward: classifyForwardError(err)}))
        else resolve(stream)
      })
    })
  }

  /** Like a TCP probe from the jump host: undefined when host:port accepts, else why not. */
  async probe(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
    try {
      const s = await this.forward(host, port, timeoutMs)
      s.destroy()
      return undefined
    } catch (error) {
      if (error instanceof UserError || error instanceof JumpHostError) throw error
      return ((error as {forward?: {reason: string}}).forward?.reason ?? (error as Error).message) + ` (from ${this.label})`
    }
  }

  async close(): Promise<void> {
    const c = this.client
    this.client = undefined
    c?.end()
  }
}
