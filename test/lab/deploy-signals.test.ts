import {spawn} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {labAvailable, startLab, type Lab, type LabMachine} from '../support/lab/lab.js'
import type {Workspace} from '../../src/workspace/workspace.js'
import {BIN, describeRun, labWorkspace, runDeploy, statuses, type DeployRun} from './deploy-support.js'

// Stop signals while `autolabs deploy` runs a step over SSH on a real Debian 12 systemd machine:
// the built CLI, the base stage of one VM, signalled while its slow step (base/packages: apt-get
// update + install) runs — triggered by apt-get appearing on the machine, never by a sleep.
//   1. SIGTERM twice: stopped at once — the step's processes on the VM are ended, not orphaned;
//      the step is not recorded as done.
//   2. SIGINT once: the running step finishes and is recorded; nothing after it starts.
//   3. the terminal closes (a dropped SSH session to the admin's machine): SIGHUP, and every
//      later write to the terminal fails; the forced step still finishes and is recorded.
//   4. deploy again: everything done, the interrupted step reported done (unchanged).
const avail = labAvailable()
const SUBNET = 160
const IP = `10.99.${SUBNET}.20`
const VM = 'database-vm'
const ONLY = ['--only', VM, '--only', 'base']
const STEP = 'base/packages'

interface SignalledRun extends DeployRun {
  /** The JSON error object (--json prints it on stdout). */
  error?: {message: string; suggestion?: string; exitCode: number; vms?: Record<string, {done: string[]; stopped: string[]; notStarted: string[]}>}
  /** Whether the trigger fired and the signals were sent. */
  signalled: boolean
}

/**
 * `autolabs deploy --json` as a child process; once apt-get runs on the machine it sends
 * `signals[0]`, and each further signal once the CLI has answered the previous one on stderr.
 */
async function deployWithSignals(ws: Workspace, m: LabMachine, signals: NodeJS.Signals[]): Promise<SignalledRun> {
  const t0 = Date.now()
  const child = spawn('node', [BIN, 'deploy', '--json', '--dir', ws.root, ...ONLY], {
    env: {PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NO_COLOR: '1'},
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<number>((resolve) => child.on('exit', (code, sig) => resolve(code ?? (sig ? 128 : -1))))
  let done = false
  void exited.then(() => (done = true))
  const killer = setTimeout(() => child.kill('SIGKILL'), 600_000)

  // The step's log exists (its command started) and apt-get runs on the machine.
  const signalled = await untilAptRuns(m, ws.logFile(VM, 'base-packages.log'), () => done)
  if (signalled) {
    const answers = ['Waiting for the running step to finish', 'received again: stopping at once']
    for (const [i, sig] of signals.entries()) {
      if (i > 0) {
        const bound = Date.now() + 10_000
        while (!stderr.includes(answers[i - 1]) && !done && Date.now() < bound) await new Promise((r) => setTimeout(r, 20))
      }
      child.kill(sig)
    }
  }
  const exitCode = await exited
  clearTimeout(killer)
  let error: SignalledRun['error']
  try {
    error = (JSON.parse(stdout) as {error?: SignalledRun['error']}).error
  } catch {
    error = undefined
  }
  return {exitCode, stdout, stderr, ms: Date.now() - t0, error, signalled}
}

/** Waits (bounded) until apt-get runs on the machine, i.e. the packages step is in its slow part. */
async function untilAptRuns(m: LabMachine, log: string, over: () => boolean): Promise<boolean> {
  const until = Date.now() + 300_000
  while (!over() && Date.now() < until) {
    if (existsSync(log) && (await m.exec('pgrep -x apt-get >/dev/null')).code === 0) return true
    await new Promise((r) => setTimeout(r, 100))
  }
  return false
}

/** A process that has ended (or is a zombie nobody reaps: its parent was killed). */
function gone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true
  } catch {
    return true
  }
}

/**
 * `autolabs deploy --force` on a terminal (script(1) gives it one); once apt-get runs on the
 * machine the terminal is closed — `script` killed, as when the SSH session to the admin's
 * machine drops — and the CLI, which got SIGHUP, is waited for (bounded).
 */
async function deployHungUp(ws: Workspace, m: LabMachine): Promise<{hungUp: boolean; ended: boolean; at: number}> {
  const pidFile = path.join(ws.root, 'deploy.pid')
  const term = spawn('script', ['-qec', `sh -c 'echo $$ > ${pidFile}; exec node ${BIN} deploy --dir ${ws.root} ${ONLY.join(' ')} --force'`, '/dev/null'], {
    env: {PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', TERM: 'xterm'},
    stdio: ['pipe', 'ignore', 'ignore'],
  })
  let over = false
  term.on('exit', () => (over = true))
  const hungUp = await untilAptRuns(m, ws.logFile(VM, 'base-packages.log'), () => over)
  const at = Date.now()
  const pid = Number(readFileSync(pidFile, 'utf8').trim())
  term.kill('SIGKILL')
  const until = Date.now() + 300_000
  while (!gone(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 200))
  return {hungUp, ended: gone(pid), at}
}

async function recordedSteps(ws: Workspace): Promise<string[]> {
  return Object.keys((await stepRecords(ws)) ?? {})
}

async function stepRecords(ws: Workspace): Promise<Record<string, {finishedAt: string}> | undefined> {
  const state = JSON.parse(await readFile(ws.stateFile, 'utf8')) as {steps?: Record<string, Record<string, {finishedAt: string}>>}
  return state.steps?.[VM]
}

/** Nothing of a step is left on the machine: no stage script, apt or dpkg process, no lock held, no parameter file. */
async function expectNothingLeftRunning(m: LabMachine): Promise<void> {
  // "[/]…": the pattern must not match the text of this very command.
  const ps = await m.exec(`pgrep -a -f '[/]var/lib/autolabs/stages/|^apt-get|^/usr/bin/dpkg|^dpkg ' || true`)
  expect(ps.stdout.trim(), 'processes of the step still running').toBe('')
  const step = await m.exec('flock -n -E 75 /var/lib/autolabs/step.lock true; echo $?')
  expect(step.stdout.trim(), 'autolabs step lock still held').toBe('0')
  const apt = await m.exec('. /var/lib/autolabs/stages/lib/apt-locks.sh && apt_lock_holders; echo "free=$?"')
  expect(apt.stdout.trim(), 'a dpkg/apt lock is still held').toBe('free=0')
  const params = await m.exec('test -e /var/lib/autolabs/params.env; echo $?')
  expect(params.stdout.trim(), 'the parameter file (secrets) is still on the VM').toBe('1')
}

describe.skipIf(!avail.ok)(`deploy: stop signals during a step over SSH${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let lab: Lab
  let ws: Workspace
  let m: LabMachine
  let stopped: SignalledRun
  let stoppedSteps: string[]
  let stoppedLog: string
  let leftAfterStop: Promise<void>
  let interrupted: SignalledRun
  let interruptedSteps: string[]
  let interruptedLog: string
  let hangUp: {hungUp: boolean; ended: boolean; at: number}
  let hangUpRecords: Record<string, {finishedAt: string}> | undefined
  let hangUpLog: string
  let leftAfterHangUp: Promise<void>
  let last: DeployRun

  beforeAll(async () => {
    // A fresh cloud VM has no apt proxy: network.aptProxy sets it (base/apt_proxy).
    lab = await startLab({name: 'deploy-signals', subnet: SUBNET, machines: [{name: VM, ip: IP}], aptProxyInMachine: false})
    m = lab.machine(VM)
    ;({ws} = await labWorkspace(lab, {database: IP}))

    stopped = await deployWithSignals(ws, m, ['SIGTERM', 'SIGTERM'])
    stoppedSteps = await recordedSteps(ws)
    stoppedLog = await readFile(ws.logFile(VM, 'base-packages.log'), 'utf8').catch(() => '')
    leftAfterStop = expectNothingLeftRunning(m)
    await leftAfterStop.catch(() => undefined)

    interrupted = await deployWithSignals(ws, m, ['SIGINT'])
    interruptedSteps = await recordedSteps(ws)
    interruptedLog = await readFile(ws.logFile(VM, 'base-packages.log'), 'utf8').catch(() => '')

    hangUp = await deployHungUp(ws, m)
    hangUpRecords = await stepRecords(ws)
    hangUpLog = await readFile(ws.logFile(VM, 'base-packages.log'), 'utf8').catch(() => '')
    leftAfterHangUp = expectNothingLeftRunning(m)
    await leftAfterHangUp.catch(() => undefined)

    last = await runDeploy(ws, ONLY)
  }, 900_000)

  afterAll(async () => {
    await lab?.stop()
  })

  it('SIGTERM twice while the step runs: stopped at once with exit 143, naming the stopped step and how to continue', () => {
    expect(stopped.signalled, `apt-get never ran on the machine\n${describeRun(stopped)}`).toBe(true)
    expect(stopped.exitCode, describeRun(stopped)).toBe(143)
    expect(stopped.stderr).toContain('SIGTERM received: stopping at the next safe point')
    expect(stopped.stderr).toContain(`Waiting for the running step to finish (${VM}: ${STEP})`)
    expect(stopped.stderr).toContain('SIGTERM received again: stopping at once.')
    expect(stopped.stderr).toContain(`Stopping ${VM}: ${STEP} on the VM (SIGTERM).`)
    expect(stopped.stderr).toMatch(
      new RegExp(`Interrupted \\(SIGTERM\\): stopped at once\\.\\n  ${VM}: finished 2 steps, the last base/apt_proxy; stopped ${STEP} on the VM \\(SIGTERM\\): not recorded as done; not started: base/guest_agent and \\d+ more\\n`),
    )
    expect(stopped.stderr).toContain('Run `autolabs deploy` again to continue where it stopped')
    expect(stopped.stderr).not.toMatch(/Unexpected error|This is a bug/)
  })

  it('the stopped step ended on the VM (its log says so) and nothing of it is left running there', async () => {
    expect(stoppedLog).toMatch(/# \S+ stopped: SIGTERM sent to the command\n(?:.*\n)*# ended after [\d.]+ s \(SIGTERM\): stopped\n/)
    await leftAfterStop
  })

  it('the workspace records the steps that finished before it, not the stopped one', () => {
    expect(stoppedSteps).toEqual(['base/wait_boot', 'base/apt_proxy'])
  })

  it('SIGINT once while the step runs: the step finishes and is recorded, nothing after it starts, exit 130', () => {
    expect(interrupted.signalled, `apt-get never ran on the machine\n${describeRun(interrupted)}`).toBe(true)
    expect(interrupted.exitCode, describeRun(interrupted)).toBe(130)
    expect(interrupted.stderr).toContain(`Waiting for the running step to finish (${VM}: ${STEP}); send the signal again to stop it now.`)
    expect(interrupted.stderr).toMatch(
      new RegExp(`Interrupted \\(SIGINT\\): the running steps finished, nothing new was started\\.\\n  ${VM}: finished 3 steps, the last ${STEP}; not started: base/guest_agent and \\d+ more\\n`),
    )
    // --json: the error on stdout says where it stopped and how to continue.
    expect(interrupted.error?.exitCode).toBe(130)
    expect(interrupted.error?.suggestion).toMatch(/^Run `autolabs deploy` again to continue where it stopped/)
    expect(interrupted.error?.vms?.[VM]).toMatchObject({done: ['base/wait_boot', 'base/apt_proxy', STEP], stopped: []})
    expect(interrupted.error?.vms?.[VM].notStarted[0]).toBe('base/guest_agent')
    expect(interruptedSteps).toEqual(['base/wait_boot', 'base/apt_proxy', STEP])
    // The step's own log: this run's part ends with the step done and its command's exit 0.
    const thisRun = interruptedLog.slice(interruptedLog.lastIndexOf(`${VM}: ${STEP} (sudo)`))
    expect(thisRun).toMatch(/^AUTOLABS_STEP packages changed\n# exit 0 after [\d.]+ s\n$/m)
    expect(thisRun).not.toContain('stopped')
  })

  it('after SIGINT the step really finished on the VM: packages installed, dpkg consistent, nothing left running', async () => {
    const pkgs = await m.exec("dpkg-query -W -f='${Package} ${Status}\\n' qemu-guest-agent ufw gnupg")
    expect(pkgs.stdout.trim().split('\n')).toEqual(['gnupg install ok installed', 'qemu-guest-agent install ok installed', 'ufw install ok installed'])
    expect((await m.exec('dpkg --audit')).stdout.trim()).toBe('')
    await expectNothingLeftRunning(m)
  })

  it('the terminal closed while the step runs (SIGHUP, output lost): the step still finishes and is recorded, and the CLI cleans up and ends', async () => {
    expect(hangUp.hungUp, 'apt-get never ran on the machine').toBe(true)
    expect(hangUp.ended, 'the CLI is still running 5 min after the hang-up').toBe(true)
    // Recorded anew by this (forced) run, after the hang-up.
    expect(Date.parse(hangUpRecords?.[STEP]?.finishedAt ?? '')).toBeGreaterThan(hangUp.at)
    expect(Object.keys(hangUpRecords ?? {})).toEqual(['base/wait_boot', 'base/apt_proxy', STEP])
    const thisRun = hangUpLog.slice(hangUpLog.lastIndexOf(`${VM}: ${STEP} (forced) (sudo)`))
    expect(thisRun).toMatch(/^AUTOLABS_STEP packages changed\n# exit 0 after [\d.]+ s\n$/m)
    await leftAfterHangUp
  })

  it('deploy again completes everything and reports the interrupted step done', () => {
    expect(last.exitCode, describeRun(last)).toBe(0)
    const st = statuses(last, 'database')
    expect(st[STEP]).toBe('unchanged')
    for (const [id, s] of Object.entries(st)) expect(['changed', 'unchanged'], id).toContain(s)
    // A step the interrupted run never started did its work now.
    expect(st['base/firewall']).toBe('changed')
  })
})
