import {EventEmitter} from 'node:events'

import {ExitCode, InterruptedError} from '../errors.js'
import {removeLiveTemps} from '../workspace/fs.js'

/**
 * SIGINT, SIGTERM and SIGHUP, handled once for every command.
 *
 * The first signal does not end the process: it marks the run interrupted and aborts
 * `interruptSignal`. Every place that would start something new — a Proxmox request, a
 * Terraform or SSH command, a wait — calls `checkpoint()` first and stops there with an
 * InterruptedError (BaseCommand exits 130, 143 or 129). A running Terraform gets its own
 * graceful interrupt (the wrapper listens on `interrupts`) and is waited for, so its state
 * stays consistent; so does a running deployment step on a VM. A second signal stops at once:
 * Terraform gets its second interrupt (it exits immediately), what registered with
 * `onStopAtOnce` stops what it runs elsewhere (a deployment step on a VM gets SIGTERM), this
 * process's temp files are removed, and the process exits — after those stops, bounded by
 * STOP_AT_ONCE_MS; a third signal does not wait for them.
 */

export const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
export type StopSignal = (typeof SIGNALS)[number]

/** 128 + the signal number, as shells report a process a signal ended. */
export const SIGNAL_EXIT_CODES: Record<StopSignal, number> = {SIGINT: ExitCode.interrupted, SIGTERM: ExitCode.terminated, SIGHUP: ExitCode.hangup}

/** Emits 'SIGINT' (count, signal) for every stop signal: what a child process is forwarded. */
export const interrupts = new EventEmitter()

/** How long a second signal waits for what `onStopAtOnce` stops (a step on a VM: SIGTERM, then SIGKILL 5 s later). */
export const STOP_AT_ONCE_MS = 15_000

let controller = new AbortController()
let received: StopSignal | undefined
let count = 0
const handlers = new Map<StopSignal, () => void>()
const stopHooks = new Set<() => Promise<unknown>>()

/**
 * At a second signal, `stop` is called and the process exits once it settles (at most
 * STOP_AT_ONCE_MS): for work this process started elsewhere, which exiting would leave running
 * (a step on a VM). Returns the function that unregisters it.
 */
export function onStopAtOnce(stop: () => Promise<unknown>): () => void {
  stopHooks.add(stop)
  return () => stopHooks.delete(stop)
}

/** Aborted at the first signal (pass it to fetch, sleeps, waits). */
export function interruptSignal(): AbortSignal {
  return controller.signal
}

export function interruptedBy(): StopSignal | undefined {
  return received
}

/** A second signal came: the process is exiting (after the `onStopAtOnce` stops). */
export function stoppingAtOnce(): boolean {
  return count > 1
}

/** Stop here if a signal arrived: nothing new is started after it. */
export function checkpoint(): void {
  if (received) throw stopped(received)
}

/** Record a signal as if it had been received (the handlers and tests use it). */
export function receive(signal: StopSignal, opts: {exit?: (code: number) => void; notify?: (message: string) => void} = {}): void {
  count++
  if (count === 1) {
    received = signal
    opts.notify?.(`\n${signal} received: stopping at the next safe point (a running Terraform is stopped gracefully and waited for, a running deployment step finishes). Send it again to stop at once.\n`)
    controller.abort(stopped(signal))
    interrupts.emit('SIGINT', count, signal)
    return
  }
  const exit = () => (opts.exit ?? process.exit)(SIGNAL_EXIT_CODES[received ?? signal])
  if (count > 2) {
    opts.notify?.(`\n${signal} received a third time: exiting without waiting.\n`)
    exit()
    return
  }
  // Second signal: forward to Terraform (a second interrupt ends it at once), stop what runs
  // elsewhere, clean up, exit.
  interrupts.emit('SIGINT', count, signal)
  removeLiveTemps()
  const hooks = [...stopHooks]
  if (hooks.length === 0) {
    opts.notify?.(`\n${signal} received again: stopped at once.\n`)
    exit()
    return
  }
  opts.notify?.(`\n${signal} received again: stopping at once.\n`)
  let timer: NodeJS.Timeout | undefined
  const bound = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, STOP_AT_ONCE_MS)
  })
  const stops = Promise.allSettled(hooks.map(async (h) => h()))
  void Promise.race([stops, bound]).then(() => {
    clearTimeout(timer)
    exit()
  })
}

function stopped(signal: StopSignal): InterruptedError {
  return new InterruptedError(`Interrupted (${signal}): stopped at a safe point; nothing was started after the signal. Run the command again to continue.`, signal)
}

/**
 * A closed terminal or pipe fails every later write to it: EIO after a hang-up (the SIGHUP of a
 * closed terminal or a dropped SSH session), EPIPE when the reader went away. Unhandled, that
 * error would end the process at its next line of output, in the middle of a step, before
 * anything is recorded or cleaned up; the output is lost either way, so the command goes on to
 * its safe point instead.
 */
export function ignoreClosedOutput(err: NodeJS.ErrnoException): void {
  if (err.code !== 'EIO' && err.code !== 'EPIPE') throw err
}

/** Install the handlers (BaseCommand.init). Idempotent. */
export function installSignalHandlers(): void {
  if (handlers.size > 0) return
  for (const sig of SIGNALS) {
    const h = () => receive(sig, {notify: (m) => process.stderr.write(m)})
    handlers.set(sig, h)
    process.on(sig, h)
  }
  process.stdout.on('error', ignoreClosedOutput)
  process.stderr.on('error', ignoreClosedOutput)
  process.once('exit', removeLiveTemps)
}

/**
 * The signal was this command's own way to end (Ctrl+C ends `status --watch`): forget it, so
 * the command exits with its own result rather than 130. Later signals count afresh.
 */
export function acknowledgeInterrupt(): void {
  controller = new AbortController()
  received = undefined
  count = 0
}

/** For tests: forget every signal and handler. */
export function resetInterrupts(): void {
  for (const [sig, h] of handlers) process.off(sig, h)
  handlers.clear()
  process.stdout.off('error', ignoreClosedOutput)
  process.stderr.off('error', ignoreClosedOutput)
  stopHooks.clear()
  interrupts.removeAllListeners()
  controller = new AbortController()
  received = undefined
  count = 0
}

/** setTimeout as a promise that rejects with InterruptedError at the first signal. */
export function sleepInterruptibly(ms: number): Promise<void> {
  const signal = controller.signal
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal.reason)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, {once: true})
  })
}
