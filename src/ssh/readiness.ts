/**
 * Waits until freshly created VMs are really ready for the deployment stages, each VM
 * concurrently, every wait bounded and reported:
 *   1. TCP port 22 answers (backoff; probed from the jump host when there is one), 2. SSH login with the workspace key (host key recorded or
 *   verified), 3. `cloud-init status --wait` (skipped with a note where cloud-init is not
 *   installed), 4. the dpkg/apt locks are free (first-boot unattended-upgrades).
 *
 *   const ready = await waitForReady(targets, {
 *     knownHostsFile: ws.knownHostsFile,
 *     onStatus: (vm, text) => { tasks[vm].output = text },   // "waiting for cloud-init to finish"
 *   })                                                       // → [{name, fingerprint, firstContact, cloudInit, notes, waitedMs}]
 *
 * Failures are ReadinessError (a UserError) with `vm` and `phase`, e.g.
 *   "SSH not up after 5 min at 10.0.0.5:22: connection refused". With several VMs failing, the
 * error lists each. `waitForVmReady(target, opts)` does one VM (for one listr2 task per VM).
 */
import {readFileSync} from 'node:fs'

import {ExitCode, UserError} from '../errors.js'
import type {SshAuth} from './auth.js'
import type {JumpHost} from './jump.js'
import {HostKeyChangedError, HostKeyMismatchError, hostPattern} from './known-hosts.js'
import {tcpProbe} from './route.js'
import {connectSsh, formatDuration, SshConnectError, SshConnectionLostError, type SshSession, type SshTarget, SshTimeoutError} from './session.js'

export type ReadinessPhase = 'tcp' | 'login' | 'cloud-init' | 'apt-lock'

export interface ReadinessTarget extends SshTarget {
  /** Host key fingerprint from the Proxmox guest agent, when available. */
  expectedFingerprint?: string
}

export interface ReadinessOptions {
  knownHostsFile: string
  /** Bound on TCP 22 + SSH login. Default 5 min. */
  sshTimeoutMs?: number
  /** Bound on `cloud-init status --wait`. Default 15 min. */
  cloudInitTimeoutMs?: number
  /** Bound on waiting for the dpkg/apt locks. Default 10 min. */
  aptLockTimeoutMs?: number
  /** Backoff between attempts: starts at initialMs, ×1.5, up to maxMs. Default 1 s → 10 s. */
  backoff?: {initialMs: number; maxMs: number}
  /** What each VM is waiting for, as it changes. */
  onStatus?: (vm: string, status: string) => void
  /** Return the open sessions (in results) instead of closing them. */
  keepSessions?: boolean
  signal?: AbortSignal
  /** Credentials resolved once for the run (src/ssh/auth.ts). */
  auth?: SshAuth
  /** Probe and connect through this jump host (src/ssh/jump.ts). */
  jump?: JumpHost
}

export interface ReadyResult {
  name: string
  host: string
  fingerprint: string
  firstContact: boolean
  cloudInit: 'done' | 'done-with-warnings' | 'not-installed'
  notes: string[]
  waitedMs: number
  session?: SshSession
}

export class ReadinessError extends UserError {
  readonly vm: string
  readonly phase: ReadinessPhase
  constructor(vm: string, phase: ReadinessPhase, message: string, suggestion: string, cause?: unknown) {
    super(message, {suggestion, exitCode: phase === 'tcp' || phase === 'login' ? ExitCode.unreachable : ExitCode.failure, cause})
    this.name = 'ReadinessError'
    this.vm = vm
    this.phase = phase
  }
}

/** Several VMs not ready: one line per VM. */
export class VmsNotReadyError extends UserError {
  readonly failures: Array<{vm: string; error: unknown}>
  constructor(failures: Array<{vm: string; error: unknown}>) {
    super(`${failures.length} VMs are not ready:\n${failures.map((f) => `  - ${f.vm}: ${(f.error as Error).message}`).join('\n')}`, {
      suggestion: [...new Set(failures.map((f) => (f.error as UserError).suggestion).filter(Boolean))].join('\n'),
    })
    this.name = 'VmsNotReadyError'
    this.failures = failures
  }
}

/**
 * Prints "held <file> <pid> <command>" lines and exits 10 when a lock is held: the same
 * function base.sh's wait_boot uses (assets/stages/lib/apt-locks.sh), so readiness and the
 * stage agree on "apt is busy".
 */
export const APT_LOCK_CHECK = `${readFileSync(new URL('../../assets/stages/lib/apt-locks.sh', import.meta.url), 'utf8')}
apt_lock_holders || exit 10
`

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason)
      return
    }
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(t)
      reject(signal?.reason)
    }
    signal?.addEventListener('abort', onAbort, {once: true})
  })
}

/** Waits for one VM; see the header. */
export async function waitForVmReady(target: ReadinessTarget, opts: ReadinessOptions): Promise<ReadyResult> {
  const started = Date.now()
  const port = target.port ?? 22
  const where = `${target.host}:${port}`
  const status = (s: string) => opts.onStatus?.(target.name, s)
  const backoff = opts.backoff ?? {initialMs: 1000, maxMs: 10_000}
  const sshTimeoutMs = opts.sshTimeoutMs ?? 300_000
  const sshDeadline = started + sshTimeoutMs
  const notes: string[] = []

  // 1 + 2: TCP, then login; a login that fails for a transient reason goes back to waiting.
  let session: SshSession | undefined
  let delay = backoff.initialMs
  let lastReason = ''
  let phase: ReadinessPhase = 'tcp'
  while (!session) {
    const left = sshDeadline - Date.now()
    if (left <= 0) {
      if (phase === 'tcp') {
        throw new ReadinessError(
          target.name,
          'tcp',
          `SSH not up after ${formatDuration(sshTimeoutMs)} at ${where}: ${lastReason}`,
          `Check in the Proxmox console that ${target.name} booted and has the address ${target.host}, and that ${opts.jump ? `the jump host ${opts.jump.label}` : 'this machine'} can reach it${opts.jump ? '' : ' (if the VMs\' network is private to the Proxmox host, set ssh.jumpHost)'}.`,
        )
      }
      throw new ReadinessError(
        target.name,
        'login',
        `SSH login to ${target.user}@${hostPattern(target.host, port)} not possible after ${formatDuration(sshTimeoutMs)}: ${lastReason}`,
        `Check that cloud-init gave ${target.user} the public key of ${target.privateKeyPath} (the VM's cloud-init log: /var/log/cloud-init.log).`,
      )
    }
    phase = 'tcp'
    const refused = opts.jump ? await opts.jump.probe(target.host, port, Math.min(5000, left)) : await tcpProbe(target.host, port, Math.min(5000, left))
    if (refused) {
      lastReason = refused
      status(`waiting for SSH at ${where} (${refused})`)
    } else {
      phase = 'login'
      status(`logging in as ${target.user}`)
      try {
        session = await connectSsh(target, {
          knownHostsFile: opts.knownHostsFile,
          expectedFingerprint: target.expectedFingerprint,
          readyTimeoutMs: Math.max(2000, Math.min(20_000, sshDeadline - Date.now())),
          reconnect: {tries: 3, delayMs: 2000},
          auth: opts.auth,
          jump: opts.jump,
        })
        break
      } catch (error) {
        if (error instanceof HostKeyChangedError || error instanceof HostKeyMismatchError) throw error
        if (!(error instanceof SshConnectError)) throw error
        // sshd answers before cloud-init has installed the key or finished its host keys.
        lastReason = error.reason
        phase = error.kind === 'auth' ? 'login' : 'tcp'
        status(`waiting for SSH login as ${target.user} (${error.reason})`)
      }
    }
    await sleep(Math.min(delay, Math.max(0, sshDeadline - Date.now())), opts.signal)
    delay = Math.min(backoff.maxMs, Math.round(delay * 1.5))
  }
  if (session.firstContact) notes.push(`host key recorded: ${session.fingerprint}`)

  try {
    // 3: cloud-init.
    const cloudInit = await waitForCloudInit(target, session, opts, status)
    if (cloudInit === 'not-installed') notes.push('cloud-init is not installed: not waited for')
    if (cloudInit === 'done-with-warnings') notes.push('cloud-init finished with recoverable errors (see /var/log/cloud-init.log)')

    // 4: dpkg/apt locks.
    await waitForAptLocks(target, session, opts, status)
    status('ready')
    const result: ReadyResult = {
      name: target.name,
      host: target.host,
      fingerprint: session.fingerprint,
      firstContact: session.firstContact,
      cloudInit,
      notes,
      waitedMs: Date.now() - started,
    }
    if (opts.keepSessions) result.session = session
    else await session.close()
    return result
  } catch (error) {
    await session.close()
    throw error
  }
}

async function waitForCloudInit(
  target: ReadinessTarget,
  session: SshSession,
  opts: ReadinessOptions,
  status: (s: string) => void,
): Promise<ReadyResult['cloudInit']> {
  const has = await session.exec('command -v cloud-init >/dev/null 2>&1', {timeoutMs: 30_000, label: 'look for cloud-init'})
  if (has.code !== 0) {
    status('cloud-init not installed: skipped')
    return 'not-installed'
  }
  const total = opts.cloudInitTimeoutMs ?? 900_000
  const deadline = Date.now() + total
  status('waiting for cloud-init to finish')
  for (let attempt = 0; ; attempt++) {
    const left = deadline - Date.now()
    try {
      if (left <= 0) throw new SshTimeoutError(target, 'cloud-init status --wait', total, '')
      const r = await session.exec('cloud-init status --wait', {timeoutMs: left, label: 'cloud-init status --wait'})
      const last = r.stdout.trim().split('\n').filter((l) => l.includes('status:')).pop() ?? r.stdout.trim()
      if (r.code === 0) return 'done'
      if (r.code === 2) return 'done-with-warnings'
      const detail = await session.exec('cloud-init status --long 2>&1 | tail -n 20', {timeoutMs: 30_000}).catch(() => undefined)
      throw new ReadinessError(
        target.name,
        'cloud-init',
        `cloud-init failed on ${target.name} (${last || `exit ${r.code}`})${detail?.stdout.trim() ? `:\n${detail.stdout.trim()}` : ''}`,
        `Look at /var/log/cloud-init.log and /var/log/cloud-init-output.log on ${target.name}; after fixing the cause, re-create the VM.`,
      )
    } catch (error) {
      if (error instanceof SshTimeoutError) {
        throw new ReadinessError(
          target.name,
          'cloud-init',
          `cloud-init still running on ${target.name} after ${formatDuration(total)}`,
          `See what it is doing with \`sudo tail /var/log/cloud-init-output.log\` on ${target.name}; give it more time with a longer timeout, or re-create the VM.`,
          error,
        )
      }
      // cloud-init may restart sshd or the network while it works: reconnect and wait again.
      if (error instanceof SshConnectionLostError && attempt < 5 && Date.now() < deadline) {
        status('waiting for cloud-init to finish (reconnecting)')
        await sleep(2000, opts.signal)
        continue
      }
      throw error
    }
  }
}

async function waitForAptLocks(target: ReadinessTarget, session: SshSession, opts: ReadinessOptions, status: (s: string) => void) {
  const total = opts.aptLockTimeoutMs ?? 600_000
  const deadline = Date.now() + total
  const backoff = opts.backoff ?? {initialMs: 1000, maxMs: 10_000}
  let delay = Math.max(backoff.initialMs, 500)
  let held = ''
  for (;;) {
    const r = await session.exec(APT_LOCK_CHECK, {sudo: true, timeoutMs: 30_000, label: 'check the dpkg/apt locks'})
    if (r.code === 0) return
    if (r.code !== 10) {
      throw new ReadinessError(
        target.name,
        'apt-lock',
        `Cannot check the apt/dpkg locks on ${target.name} (exit ${r.code}): ${r.stderr.trim().split('\n').pop() ?? ''}`,
        `${target.user} needs passwordless sudo on ${target.name} (cloud-init's default user has it).`,
      )
    }
    held = describeHolders(r.stdout)
    if (Date.now() >= deadline) {
      throw new ReadinessError(
        target.name,
        'apt-lock',
        `apt/dpkg lock on ${target.name} still held after ${formatDuration(total)} ${held}`,
        `Usually unattended-upgrades on first boot: wait for it to finish, or stop it (\`sudo systemctl stop unattended-upgrades\`) on ${target.name}, then run the command again.`,
      )
    }
    status(`waiting for the apt/dpkg lock (held ${held})`)
    await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), opts.signal)
    delay = Math.min(backoff.maxMs, Math.round(delay * 1.5))
  }
}

function describeHolders(out: string): string {
  const holders = out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[0] === 'held')
  if (holders.length === 0) return ''
  const [, file, pid, comm] = holders[0]
  return pid === '?' ? `on ${file}` : `by ${comm} (pid ${pid}) on ${file}`
}

/** Waits for every VM concurrently; fails after all have settled, naming each VM that is not ready. */
export async function waitForReady(targets: ReadinessTarget[], opts: ReadinessOptions): Promise<ReadyResult[]> {
  const settled = await Promise.allSettled(targets.map((t) => waitForVmReady(t, opts)))
  const failures = settled
    .map((s, i) => (s.status === 'rejected' ? {vm: targets[i].name, error: s.reason as unknown} : undefined))
    .filter((f): f is {vm: string; error: unknown} => f !== undefined)
  if (failures.length > 0) {
    for (const s of settled) if (s.status === 'fulfilled') await s.value.session?.close()
    if (failures.length === 1) throw failures[0].error
    throw new VmsNotReadyError(failures)
  }
  return settled.map((s) => (s as PromiseFulfilledResult<ReadyResult>).value)
}
