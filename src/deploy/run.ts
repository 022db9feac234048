import {readFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {Listr, ListrLogger, ProcessOutput, type ListrTask} from 'listr2'

import {DATABASES_STEP} from '../config/migrate.js'
import {type Config, postgresUser, type Role} from '../config/schema.js'
import {loadGitlabTls} from '../config/tls.js'
import {BugError, ExternalError, InterruptedError, UserError} from '../errors.js'
import {openSshAccess, type SshAccess, type SshAccessOptions} from '../ssh/access.js'
import {connectSsh, type ConnectOptions, type SshSession, SshStoppedError, type SshTarget} from '../ssh/session.js'
import {DEFAULT_STEP_TIMEOUT_MS, dependenciesOf} from '../steps/stages.js'
import {checkpoint, interruptedBy, interrupts, onStopAtOnce} from '../util/interrupt.js'
import {redact, registerSecret} from '../util/redact.js'
import {writeFileAtomic} from '../workspace/fs.js'
import {registerSecrets, type Secrets} from '../workspace/secrets.js'
import {loadState, updateState} from '../workspace/state.js'
import type {Workspace} from '../workspace/workspace.js'
import {buildParams, envFileText, sshUser, stepInputHash, type VmAddresses} from './params.js'
import {planDeploy, readStageScripts, type PlannedStep, type PlannedVm, type StageScripts} from './plan.js'

export type StepStatus = 'changed' | 'unchanged' | 'failed' | 'skipped'

export interface StepResult {
  /** "stage/step", e.g. "database/postgres_install". */
  id: string
  status: StepStatus
  durationMs: number
  /** Why it failed (the script's AUTOLABS_ERROR line or the SSH error). */
  error?: string
  /** Why it did not run (a step it depends on, on this or another VM, did not finish). */
  reason?: string
  /** Warnings the step printed (AUTOLABS_WARN). */
  warnings?: string[]
  /** The last lines of the step's output when it failed (redacted). */
  tail?: string
  logPath?: string
}

export interface VmResult {
  name: string
  ip: string
  ok: boolean
  steps: StepResult[]
  /** Set when the VM failed before or between steps (connection, upload). */
  error?: string
}

export interface DeployResult {
  ok: boolean
  durationMs: number
  vms: Partial<Record<Role, VmResult>>
}

export interface DeployOptions {
  ws: Workspace
  config: Config
  secrets: Secrets
  /** --only: VMs and/or stages (see planDeploy). */
  only?: string[]
  /** --force: run every selected step's action even when its check passes. */
  force?: boolean
  verbose?: boolean
  /** Silent renderer (--json). */
  quiet?: boolean
  /** Replace how sessions are opened (tests). */
  connect?: (target: SshTarget, opts: ConnectOptions) => Promise<SshSession>
  /** Where the stage scripts are read from (tests). */
  scripts?: StageScripts
  /** How to reach the VMs (passphrase file, jump host override, prompt allowed). */
  ssh?: SshAccessOptions
  /** Already settled by the caller (init's readiness wait); not closed here. */
  access?: SshAccess
}

/** Where the scripts and the parameter file live on a VM (root-only). */
export const REMOTE_DIR = '/var/lib/autolabs'
const REMOTE_STAGES = `${REMOTE_DIR}/stages`
const REMOTE_ENV = `${REMOTE_DIR}/params.env`

function expandHome(p: string): string {
  return p.startsWith('~/') ? path.join(os.homedir(), p.slice(2)) : p
}

export function privateKeyPath(config: Config, ws: Workspace): string {
  const file = config.ssh.privateKeyFile ?? config.ssh.publicKeyFile.replace(/\.pub$/, '')
  return path.resolve(ws.root, expandHome(file))
}

export async function vmAddresses(ws: Workspace, config: Config): Promise<VmAddresses> {
  const state = await loadState(ws)
  return {
    gitlab: state.vms?.gitlab?.ip ?? config.network.vms.gitlab.ip,
    database: state.vms?.database?.ip ?? config.network.vms.database.ip,
    k8s: state.vms?.k8s?.ip ?? config.network.vms.k8s.ip,
  }
}

/** Renderer by situation (pure): silent for --json, plain lines without a terminal. */
export function chooseRenderer(o: {quiet?: boolean; verbose?: boolean; isTTY: boolean}): 'silent' | 'simple' | 'default' {
  if (o.quiet) return 'silent'
  if (!o.isTTY) return 'simple'
  return 'default'
}

/** The parts of a stage run's output the orchestrator reads. */
export function parseStepOutput(stdout: string, stderr: string, id: string): {outcome?: 'changed' | 'unchanged'; errors: string[]; warnings: string[]} {
  const m = new RegExp(`^AUTOLABS_STEP ${id} (changed|unchanged)$`, 'm').exec(stdout)
  const lines = `${stdout}\n${stderr}`.split('\n')
  return {
    outcome: m?.[1] as 'changed' | 'unchanged' | undefined,
    errors: lines.filter((l) => l.startsWith('AUTOLABS_ERROR ')).map((l) => l.slice('AUTOLABS_ERROR '.length)),
    warnings: lines.filter((l) => l.startsWith('AUTOLABS_WARN ')).map((l) => l.slice('AUTOLABS_WARN '.length)),
  }
}

function tailOf(text: string, n = 15): string {
  return text.trimEnd().split('\n').slice(-n).join('\n')
}

interface StepRun {
  outcome?: 'changed' | 'unchanged'
  error?: string
  tail?: string
  thrown?: Error
  warnings: string[]
  durationMs: number
  logPath: string
}

interface VmContext {
  vm: PlannedVm
  ip: string
  session?: SshSession
  result: VmResult
  params: Record<string, string>
  hashes: Map<string, string>
  /** Outcomes of steps already run (a batch runs several at once). */
  runs: Map<string, StepRun>
  /** Each step's end, awaited by steps on other VMs that depend on it (DEPENDENCIES). */
  ends: Map<string, Settled>
  /** Set once a step did not finish: why the VM's remaining steps do not run. */
  stopped?: string
  /** The steps of the remote call in progress (what a stop signal waits for or stops). */
  running?: string[]
}

/** A step's end as other VMs see it: finished, or why not. */
interface Settled {
  promise: Promise<string | undefined>
  settle: (whyNot?: string) => void
}

function settled(): Settled {
  let settle!: (whyNot?: string) => void
  const promise = new Promise<string | undefined>((resolve) => {
    settle = resolve
  })
  return {promise, settle}
}

/**
 * Runs the stages on the VMs over SSH: VMs concurrently, steps in order within a VM. Each step
 * is recorded in state.json with the hash of its inputs when it finishes; a re-run checks every
 * step on the VM (its `check_` function) and acts only where something is not done, so an
 * interrupted deploy resumes and nothing is done twice. A VM's failure stops only that VM.
 */
export async function deploy(opts: DeployOptions): Promise<DeployResult> {
  const started = Date.now()
  const {ws, config, secrets} = opts
  registerSecrets(secrets)
  const plan = planDeploy(config, opts.only)
  // Checked here, before any VM is touched: a wrong certificate fails now, naming the field.
  const tls = plan.some((vm) => vm.role === 'gitlab') ? loadGitlabTls(config, ws.root, ws.configFile) : null
  if (tls) for (const secret of [tls.keyPem, ...tls.keyPem.split('\n').filter((l) => !l.startsWith('-----'))]) registerSecret(secret)
  const scripts = opts.scripts ?? readStageScripts()
  const ips = await vmAddresses(ws, config)
  const keyPath = privateKeyPath(config, ws)
  // Credentials and route are settled before any task starts: a passphrase is asked (once)
  // before the task list draws, and a missing one fails at once.
  let access = opts.access
  const ownAccess = !access && !opts.connect
  if (ownAccess) access = await openSshAccess(config, ws, Object.values(ips), {log: (m) => process.stderr.write(`${m}\n`), ...opts.ssh})
  else if (!access) {
    try {
      await readFile(keyPath)
    } catch {
      throw new UserError(`The SSH private key ${keyPath} cannot be read.`, {
        suggestion: 'Set ssh.privateKeyFile in autolabs.yaml to the key whose public half the VMs have (ssh.publicKeyFile).',
      })
    }
  }
  const connect = opts.connect ?? connectSsh
  const state = await loadState(ws)

  const contexts: VmContext[] = plan.map((vm) => {
    const params = buildParams(vm.role, config, secrets, ips, 'amd64', tls)
    const hashes = new Map(vm.steps.map((s) => [s.key, stepInputHash(s.stage, s.step, params, scripts.scripts[s.stage.script], scripts.lib)]))
    return {
      vm,
      ip: ips[vm.role],
      params,
      hashes,
      runs: new Map(),
      ends: new Map(vm.steps.map((s) => [s.key, settled()])),
      result: {name: vm.name, ip: ips[vm.role], ok: true, steps: vm.steps.map((s) => ({id: s.key, status: 'skipped', durationMs: 0}))},
    }
  })

  /** From step `index` on, nothing more runs on this VM: tell the steps waiting on them why. */
  const stopFrom = (c: VmContext, index: number, why: string) => {
    c.stopped ??= why
    for (const s of c.vm.steps.slice(index)) c.ends.get(s.key)!.settle(why)
  }
  /**
   * Waits for the steps on other VMs that step `s` depends on; resolves to why it must not
   * run, if one of them did not finish. A dependency on a VM outside this deploy is not waited
   * for (the step's own check proves what it needs).
   */
  const waitForDependencies = async (s: PlannedStep): Promise<string | undefined> => {
    for (const dep of dependenciesOf(s.key, config)) {
      for (const other of contexts.filter((o) => o.vm.role === dep.after.role && o.ends.has(dep.after.step))) {
        const whyNot = await other.ends.get(dep.after.step)!.promise
        if (whyNot !== undefined) return `waits for ${dep.after.step} on ${other.vm.name} (${dep.why}), which did not finish: ${whyNot}`
      }
    }
    return undefined
  }
  const hasDependencies = (s: PlannedStep) => dependenciesOf(s.key, config).length > 0

  // A stop signal (src/util/interrupt.ts): the first lets the running steps finish and starts
  // no new one; the second stops them on the VMs (SIGTERM to the step's processes) and exits
  // once they have ended and the parameter files are removed.
  const stopNow = new AbortController()
  let stopAtOnceDone!: () => void
  const stoppedAtOnce = new Promise<void>((resolve) => {
    stopAtOnceDone = resolve
  })
  const runningSteps = () => contexts.flatMap((c) => (c.running ? [`${c.vm.name}: ${c.running.join(', ')}`] : []))
  const onSignal = (count: number) => {
    const running = runningSteps()
    if (count === 1 && running.length > 0) process.stderr.write(`Waiting for the running step${running.length > 1 || running[0].includes(',') ? 's' : ''} to finish (${running.join('; ')}); send the signal again to stop ${running.length > 1 ? 'them' : 'it'} now.\n`)
  }
  interrupts.on('SIGINT', onSignal)
  const unregister = onStopAtOnce(async () => {
    const running = runningSteps()
    if (running.length > 0) process.stderr.write(`Stopping ${running.join('; ')} on the VM${running.length > 1 ? 's' : ''} (SIGTERM).\n`)
    stopNow.abort()
    await stoppedAtOnce
  })

  const renderer = chooseRenderer({quiet: opts.quiet, verbose: opts.verbose, isTTY: Boolean(process.stderr.isTTY)})
  const logger = new ListrLogger({processOutput: new ProcessOutput(process.stderr, process.stderr)})

  const vmTask = (c: VmContext): ListrTask => ({
    title: `${c.vm.name} (${c.ip})`,
    task: (_ctx, task) =>
      task.newListr(
        [
          {
            title: `${prefix(c)}Connect and upload the stage scripts`,
            task: async () => {
              try {
                checkpoint()
                c.session = await connect(
                  {name: c.vm.name, host: c.ip, user: sshUser(config), privateKeyPath: keyPath},
                  {knownHostsFile: ws.knownHostsFile, logFile: ws.logFile(c.vm.name, 'ssh.log'), ...access?.connectOptions},
                )
                await uploadAssets(c, scripts)
              } catch (error) {
                const e = error as Error & {suggestion?: string; stderrTail?: string}
                c.result.error = redact([e.message, e.stderrTail, e.suggestion].filter(Boolean).join('\n'))
                stopFrom(c, 0, `${c.vm.name} could not be reached`)
                throw error
              }
            },
          },
          ...c.vm.steps.map((s, i) => stepTask(c, s, i)),
        ],
        {concurrent: false, exitOnError: true},
      ),
  })

  // Without the tree view (no terminal) each line must say which VM it is about.
  const prefix = (c: VmContext) => (renderer === 'default' ? '' : `${c.vm.name}: `)
  const isForced = (c: VmContext, s: PlannedStep) => {
    const recorded = state.steps?.[c.vm.name]?.[s.key]
    // An input changed since the step last finished: run its action even if its check passes.
    return Boolean(opts.force) || (recorded !== undefined && recorded.inputHash !== c.hashes.get(s.key))
  }
  const expectedDone = (c: VmContext, s: PlannedStep) => !opts.force && state.steps?.[c.vm.name]?.[s.key]?.inputHash === c.hashes.get(s.key)

  /**
   * Runs steps of one stage in one remote call. Steps recorded as finished with the same inputs
   * are batched (a re-run is then one round trip per stage, not per step); each still runs its
   * check and, if the work is missing after all, its action. Output lines are attributed to the
   * step in progress by the AUTOLABS_STEP lines that end each step.
   */
  const runSteps = async (c: VmContext, steps: PlannedStep[], task: {output: string}) => {
    const first = steps[0]
    const force = isForced(c, first)
    const logPath = ws.logFile(c.vm.name, steps.length === 1 ? `${first.stage.id}-${first.step.id}.log` : `${first.stage.id}-checks.log`)
    const lines: string[][] = steps.map(() => [])
    const ends: number[] = []
    let current = 0
    const t0 = Date.now()
    const onLine = (l: string, stdout: boolean) => {
      lines[Math.min(current, steps.length - 1)].push(l)
      if (opts.verbose || (!stdout && l.startsWith('AUTOLABS_'))) task.output = l
      const m = stdout ? /^AUTOLABS_STEP (\S+) (?:changed|unchanged)$/.exec(l) : null
      if (m && steps[current]?.step.id === m[1]) {
        ends[current] = Date.now()
        current++
      }
    }
    let code = 0
    let thrown: Error | undefined
    try {
      // No new SSH command after a stop signal: the running steps finish, the next one does not start.
      checkpoint()
      c.running = steps.map((x) => x.key)
      const out = await c.session!.exec(`bash ${REMOTE_STAGES}/${first.stage.script} "$@"`, {
        args: [...(force ? ['--force'] : []), REMOTE_ENV, ...steps.map((x) => x.step.id)],
        sudo: true,
        timeoutMs: steps.reduce((sum, x) => sum + (x.step.timeoutMs ?? DEFAULT_STEP_TIMEOUT_MS), 0),
        logFile: logPath,
        label: `${steps.map((x) => x.key).join(' ')}${force ? ' (forced)' : ''}`,
        onStdout: (l) => onLine(l, true),
        onStderr: (l) => onLine(l, false),
        stop: stopNow.signal,
      })
      code = out.code
    } catch (error) {
      thrown = error as Error
    } finally {
      c.running = undefined
    }
    steps.forEach((x, i) => {
      const parsed = parseStepOutput(lines[i].join('\n'), '', x.step.id)
      const run: StepRun = {logPath, warnings: parsed.warnings, durationMs: (ends[i] ?? Date.now()) - (i === 0 ? t0 : ends[i - 1])}
      if (parsed.outcome && i < current) run.outcome = parsed.outcome
      else if (i === current) {
        run.error = redact(thrown?.message ?? parsed.errors.at(-1) ?? `exit ${code}`)
        run.tail = redact(tailOf(lines[i].join('\n'), 8))
        run.thrown = thrown
      } else return // not reached
      c.runs.set(x.key, run)
    })
  }

  const stepTask = (c: VmContext, s: PlannedStep, index: number): ListrTask => ({
    title: `${prefix(c)}${s.step.title}`,
    task: async (_ctx, task) => {
      const res = c.result.steps[index]
      const notRun = c.stopped ?? (hasDependencies(s) ? await waitForDependencies(s) : undefined)
      if (notRun !== undefined) {
        res.reason = redact(c.stopped ? `not run: ${c.stopped}` : notRun)
        stopFrom(c, index, `${s.key} did not run`)
        task.skip(`${prefix(c)}${s.step.title}: ${res.reason}`)
        return
      }
      if (!c.runs.has(s.key)) {
        const batch = [s]
        if (expectedDone(c, s)) {
          for (const next of c.vm.steps.slice(index + 1)) {
            // A step that waits for another VM starts a batch of its own after the wait.
            if (next.stage !== s.stage || !expectedDone(c, next) || hasDependencies(next)) break
            batch.push(next)
          }
        }
        await runSteps(c, batch, task)
      }
      const run = c.runs.get(s.key)
      if (!run) throw new BugError(`no outcome for ${s.key}`)
      if (run.thrown instanceof InterruptedError) {
        // The signal came before this step started: it is not a failure, only not run yet.
        res.reason = 'not started: interrupted'
        stopFrom(c, index, 'interrupted')
        task.skip(`${prefix(c)}${s.step.title}: not started (interrupted)`)
        return
      }
      res.logPath = run.logPath
      res.durationMs = run.durationMs
      res.warnings = run.warnings.length > 0 ? run.warnings : undefined
      if (!run.outcome) {
        res.status = 'failed'
        res.error = run.error
        res.tail = run.tail
        stopFrom(c, index, `${c.vm.name}: ${s.key} failed`)
        throw run.thrown ?? new ExternalError(`${c.vm.name}: ${s.key} failed: ${run.error}`, {command: s.key, stderrTail: run.tail, logPath: run.logPath})
      }
      res.status = run.outcome
      if (s.key === 'k8s/kubeconfig') res.status = await fetchKubeconfig(c, ws, res.status)
      await updateState(ws, (st) => {
        st.steps ??= {}
        st.steps[c.vm.name] ??= {}
        st.steps[c.vm.name][s.key] = {inputHash: c.hashes.get(s.key)!, finishedAt: new Date().toISOString(), durationMs: res.durationMs}
        // Which users own the databases now: an older workspace is told apart by its absence (config/migrate.ts).
        if (s.key === DATABASES_STEP) st.databaseUsers = Object.fromEntries(config.services.postgres.databases.map((db) => [db, postgresUser(config, db)]))
      })
      task.title = `${prefix(c)}${s.step.title} (${res.status})`
      c.ends.get(s.key)!.settle()
    },
  })

  const list = new Listr(
    contexts.map((c) => vmTask(c)),
    {
      concurrent: true,
      exitOnError: false,
      renderer,
      fallbackRenderer: 'simple',
      rendererOptions: {logger, collapseSubtasks: false, showErrorMessage: true} as never,
      fallbackRendererOptions: {logger} as never,
      // Signals are autolabs' own (src/util/interrupt.ts): listr2's handler would exit at once.
      registerSignalListeners: false,
    },
  )

  try {
    await list.run()
  } catch {
    // Failures are recorded per VM below; the list itself only rethrows the first one.
  } finally {
    // Whatever ended a VM's list early (an interrupt, an error between steps): nobody waits on.
    for (const c of contexts) stopFrom(c, 0, `${c.vm.name} stopped`)
    await Promise.all(
      contexts.map(async (c) => {
        if (c.session?.isConnected()) {
          // The parameter file holds the VM's secrets: it lives only while a deploy runs.
          await c.session.exec(`rm -f ${REMOTE_ENV}`, {sudo: true, timeoutMs: 15_000}).catch(() => undefined)
        }
        await c.session?.close().catch(() => undefined)
      }),
    )
    if (ownAccess) await access?.close()
    interrupts.off('SIGINT', onSignal)
    unregister()
    const signal = interruptedBy()
    // A second signal ends the process from src/util/interrupt.ts: say here where it stopped.
    if (signal && stopNow.signal.aborted) process.stderr.write(`${interruptionReport(contexts, signal).message}\n${CONTINUE}\n`)
    stopAtOnceDone()
  }
  // Stopped by a signal: the finished steps are recorded; report where it stopped, not failed steps.
  const signal = interruptedBy()
  if (signal) {
    const {message, vms} = interruptionReport(contexts, signal)
    throw new InterruptedError(message, signal, {suggestion: CONTINUE, detail: {vms}})
  }

  for (const c of contexts) {
    c.result.ok = c.result.steps.every((s) => s.status === 'changed' || s.status === 'unchanged')
    const failedStep = c.result.steps.find((s) => s.status === 'failed')
    const skippedWhy = c.result.steps.some((s) => s.reason)
    if (!c.result.ok && !failedStep && !skippedWhy && !c.result.error) c.result.error = 'stopped before its steps ran (interrupted)'

  }
  const vms: DeployResult['vms'] = {}
  for (const c of contexts) vms[c.vm.role] = c.result
  return {ok: contexts.every((c) => c.result.ok), durationMs: Date.now() - started, vms}
}

const CONTINUE = 'Run `autolabs deploy` again to continue where it stopped: finished steps are checked, not redone.'

interface StopReport {
  done: string[]
  stopped: string[]
  failed: string[]
  notStarted: string[]
}

/** Where a deploy stopped by a signal stopped: per VM the steps done, stopped on the VM, failed (on their own), not started. */
function interruptionReport(contexts: VmContext[], signal: string): {message: string; vms: Record<string, StopReport>} {
  const vms: Record<string, StopReport> = {}
  const lines: string[] = []
  for (const c of contexts) {
    const v: StopReport = {done: [], stopped: [], failed: [], notStarted: []}
    for (const s of c.result.steps) {
      if (s.status === 'changed' || s.status === 'unchanged') v.done.push(s.id)
      else if (c.runs.get(s.id)?.thrown instanceof SshStoppedError) v.stopped.push(s.id)
      else if (s.status === 'failed' && !(c.runs.get(s.id)?.thrown instanceof InterruptedError)) v.failed.push(s.id)
      else v.notStarted.push(s.id)
    }
    vms[c.vm.name] = v
    const parts = [v.done.length > 0 ? `finished ${v.done.length} step${v.done.length > 1 ? 's' : ''}, the last ${v.done.at(-1)}` : 'no step finished']
    if (v.stopped.length > 0) parts.push(`stopped ${v.stopped.join(', ')} on the VM (SIGTERM): not recorded as done`)
    for (const id of v.failed) parts.push(`${id} failed (${c.result.steps.find((s) => s.id === id)?.logPath ?? 'see its log'})`)
    if (v.notStarted.length > 0) parts.push(`not started: ${v.notStarted[0]}${v.notStarted.length > 1 ? ` and ${v.notStarted.length - 1} more` : ''}`)
    lines.push(`  ${c.vm.name}: ${parts.join('; ')}`)
  }
  const how = Object.values(vms).some((v) => v.stopped.length > 0) ? 'stopped at once' : 'the running steps finished, nothing new was started'
  return {message: `Interrupted (${signal}): ${how}.\n${lines.join('\n')}`, vms}
}

async function uploadAssets(c: VmContext, scripts: StageScripts): Promise<void> {
  const s = c.session!
  const needed = [...new Set(c.vm.steps.map((x) => x.stage.script))]
  for (const [name, text] of Object.entries(scripts.libs)) await s.upload(text, `${REMOTE_STAGES}/lib/${name}`, 0o644, {sudo: true})
  for (const name of needed) await s.upload(scripts.scripts[name], `${REMOTE_STAGES}/${name}`, 0o755, {sudo: true})
  await s.upload(envFileText(c.params), REMOTE_ENV, 0o600, {sudo: true})
}

/** The kubeconfig step also copies admin.conf into the workspace (0600). */
async function fetchKubeconfig(c: VmContext, ws: Workspace, status: StepStatus): Promise<StepStatus> {
  const r = await c.session!.exec('cat /etc/kubernetes/admin.conf', {sudo: true, timeoutMs: 30_000, check: true, label: 'read admin.conf'})
  let local = ''
  try {
    local = await readFile(ws.kubeconfigFile, 'utf8')
  } catch {
    // not copied yet
  }
  if (local === r.stdout) return status
  await writeFileAtomic(ws.kubeconfigFile, r.stdout, 0o600)
  return 'changed'
}

/** Human summary (stderr): what failed, why, and where the log is. */
export function formatDeploySummary(r: DeployResult): string {
  const lines: string[] = []
  for (const vm of Object.values(r.vms)) {
    if (!vm) continue
    const count = (st: StepStatus) => vm.steps.filter((s) => s.status === st).length
    lines.push(
      `${vm.ok ? '✔' : '✖'} ${vm.name} (${vm.ip}): ${count('changed')} changed, ${count('unchanged')} unchanged` +
        (count('failed') ? `, ${count('failed')} failed` : '') +
        (count('skipped') ? `, ${count('skipped')} not run` : ''),
    )
    if (vm.error) lines.push(`    ${vm.error}`)
    for (const s of vm.steps) {
      for (const w of s.warnings ?? []) lines.push(`    warning (${s.id}): ${w}`)
      // The first step that did not run says why; the ones after it only repeat that.
      if (s.status === 'skipped' && s.reason && !s.reason.startsWith('not run: ')) lines.push(`    ${s.id} not run: ${s.reason}`)
      if (s.status === 'failed') {
        lines.push(`    ${s.id} failed: ${s.error ?? 'unknown error'}`)
        if (s.tail) lines.push(...s.tail.split('\n').map((l) => `      | ${l}`))
        if (s.logPath) lines.push(`    log: ${s.logPath}`)
      }
    }
  }
  return redact(lines.join('\n'))
}
