import {afterEach, describe, expect, it, vi} from 'vitest'

import {InterruptedError} from '../../../src/errors.js'
import {checkpoint, ignoreClosedOutput, installSignalHandlers, interruptedBy, onStopAtOnce, receive, resetInterrupts, STOP_AT_ONCE_MS, stoppingAtOnce} from '../../../src/util/interrupt.js'

// The stop-signal state machine: the first signal marks the run, the second stops at once —
// after what registered with onStopAtOnce has stopped (bounded) — and a third does not wait.
describe('stop signals', () => {
  afterEach(() => {
    resetInterrupts()
    vi.useRealTimers()
  })

  it('the first signal stops at the next checkpoint and does not exit', () => {
    const exit = vi.fn()
    const notes: string[] = []
    receive('SIGINT', {exit, notify: (m) => notes.push(m)})
    expect(interruptedBy()).toBe('SIGINT')
    expect(stoppingAtOnce()).toBe(false)
    expect(() => checkpoint()).toThrow(InterruptedError)
    expect(exit).not.toHaveBeenCalled()
    expect(notes.join('')).toContain('a running deployment step finishes')
  })

  it('a second signal without stops to wait for exits at once with the first signal’s code', () => {
    const exit = vi.fn()
    receive('SIGTERM', {exit})
    receive('SIGINT', {exit})
    expect(exit).toHaveBeenCalledWith(143)
    expect(stoppingAtOnce()).toBe(true)
  })

  it('a second signal exits only once the registered stops have ended', async () => {
    const exit = vi.fn()
    let finish!: () => void
    const stop = vi.fn(() => new Promise<void>((resolve) => (finish = resolve)))
    onStopAtOnce(stop)
    receive('SIGINT', {exit})
    expect(stop).not.toHaveBeenCalled()
    receive('SIGINT', {exit})
    expect(stop).toHaveBeenCalledOnce()
    await new Promise((r) => setImmediate(r))
    expect(exit).not.toHaveBeenCalled()
    finish()
    await new Promise((r) => setImmediate(r))
    expect(exit).toHaveBeenCalledWith(130)
  })

  it('a stop that fails or never ends does not keep the process: it exits after STOP_AT_ONCE_MS at the latest', async () => {
    vi.useFakeTimers()
    const exit = vi.fn()
    onStopAtOnce(() => new Promise(() => undefined))
    onStopAtOnce(async () => {
      throw new Error('connection lost')
    })
    receive('SIGHUP', {exit})
    receive('SIGHUP', {exit})
    await vi.advanceTimersByTimeAsync(STOP_AT_ONCE_MS - 1)
    expect(exit).not.toHaveBeenCalled()
    await vi.advanceTimersByTimeAsync(1)
    expect(exit).toHaveBeenCalledWith(129)
  })

  it('a third signal exits without waiting for the stops', () => {
    const exit = vi.fn()
    onStopAtOnce(() => new Promise(() => undefined))
    receive('SIGINT', {exit})
    receive('SIGINT', {exit})
    expect(exit).not.toHaveBeenCalled()
    receive('SIGINT', {exit})
    expect(exit).toHaveBeenCalledWith(130)
  })

  it('an unregistered stop is not waited for', () => {
    const exit = vi.fn()
    const stop = vi.fn(() => new Promise<void>(() => undefined))
    const unregister = onStopAtOnce(stop)
    unregister()
    receive('SIGINT', {exit})
    receive('SIGINT', {exit})
    expect(stop).not.toHaveBeenCalled()
    expect(exit).toHaveBeenCalledWith(130)
  })

  it('a write to a closed terminal or pipe (EIO after a hang-up, EPIPE) does not end the process; other write errors still do', () => {
    installSignalHandlers()
    const err = (code: string) => Object.assign(new Error(`write ${code}`), {code})
    expect(() => process.stderr.emit('error', err('EIO'))).not.toThrow()
    expect(() => process.stdout.emit('error', err('EPIPE'))).not.toThrow()
    expect(() => ignoreClosedOutput(err('ENOSPC'))).toThrow('write ENOSPC')
  })
})
