import type {EventEmitter} from 'node:events'
import {appendFile, mkdir} from 'node:fs/promises'
import path from 'node:path'

import {execa} from 'execa'

import {BugError, ExternalError, InterruptedError, UserError} from '../errors.js'
import {terraformEnv} from '../util/child-env.js'
import {checkpoint, interruptedBy, interrupts} from '../util/interrupt.js'
import {redact} from '../util/redact.js'
import {flavorName, INSTALL_HINT, probeTerraform, registryHost, resolveTerraformBin, type TerraformBinary} from './binary.js'
import {APPEND_NOFOLLOW, refuseSymlinkSync, symlinkRefusal} from '../workspace/fs.js'
import {formatDiagnostics, LineSplitter, parseUiLine, type UiEvent} from './events.js'
import {type PlanSummary, stateResources, type StateResource, summarizePlan} from './summary.js'

const WINDOWS = process.platform === 'win32'

export interface TerraformOptions {
  /** The rendered terraform/ directory. */
  cwd: string
  /** Where terraform-<command>.log files go (.autolabs/logs). */
  logsDir: string
  /** The executable (or `tofu`): default resolveTerraformBin() — AUTOLABS_TERRAFORM, else terraform or tofu on PATH. */
  bin?: string
  /** Extra environment (e.g. SSL_CERT_FILE). Secret values are masked in every log line. */
  env?: Record<string, string>
  /** Where stop signals arrive as 'SIGINT' events (default: src/util/interrupt.ts). Tests pass their own emitter. */
  signals?: EventEmitter
  /** Called when a Ctrl+C was forwarded (1 = graceful stop requested, 2 = forced). */
  onInterrupt?: (count: number) => void
}

export type Diagnostic = Extract<UiEvent, {type: 'diagnostic'}>
export type ChangeSummary = Extract<UiEvent, {type: 'change_summary'}>

export interface ApplyResult {
  summary?: ChangeSummary
  diagnostics: Diagnostic[]
}

export interface TerraformOutput {
  value: unknown
  type: unknown
  sensitive: boolean
}

interface RunResult {
  exitCode: number
  stdout: string
  stderr: string
  diagnostics: Diagnostic[]
  interrupted: number
}

const SECRET_ENV = /TOKEN|PASSWORD|SECRET|PASSPHRASE|CREDENTIAL/i

/** The command line and the environment autolabs adds, as a log line with secrets masked. */
export function describeCommand(bin: string, args: string[], env: Record<string, string> = {}): string {
  const envText = Object.entries(env)
    .map(([k, v]) => `${k}=${SECRET_ENV.test(k) ? '********' : v}`)
    .join(' ')
  return redact(`${path.basename(bin)} ${args.join(' ')}${envText ? ` (env: ${envText})` : ''}`)
}

/** Refuse (as a bug) any argument that holds a registered secret: argv is visible in `ps`. */
export function assertNoSecretsInArgs(args: string[]): void {
  for (const a of args) {
    if (redact(a) !== a) throw new BugError('A secret was about to be passed to terraform on its command line; secrets go through the environment or the 0600 tfvars file.')
  }
}

export {compareVersions} from './binary.js'

/**
 * The one wrapper around the terraform executable. Every run: its command line and full
 * output (redacted) appended to .autolabs/logs/terraform-<command>.log; stdin closed and
 * -input=false (it never prompts); secrets only through the tfvars file or the environment.
 *
 * terraform runs in its own process group, so a Ctrl+C in the terminal does not reach it
 * directly: autolabs forwards exactly one SIGINT (terraform then stops gracefully and writes
 * its state) and waits; a second Ctrl+C is forwarded again (terraform exits at once).
 */
export class Terraform {
  readonly bin: string
  private readonly opts: TerraformOptions
  /** Set by version(): which tool this is (the registry named in init's hint depends on it). */
  private probed?: TerraformBinary

  constructor(opts: TerraformOptions) {
    this.opts = opts
    this.bin = opts.bin ?? resolveTerraformBin()
  }

  logPath(command: string): string {
    return path.join(this.opts.logsDir, `terraform-${command}.log`)
  }

  /** Terraform or OpenTofu and its version; missing or too old → UserError with how to install. */
  async version(): Promise<TerraformBinary> {
    checkpoint()
    this.probed = await probeTerraform(this.bin, {cwd: this.opts.cwd, env: this.env()})
    return this.probed
  }

  /** `terraform init -input=false`: downloads the bpg/proxmox provider (needs the registry). */
  async init(): Promise<void> {
    const r = await this.run('init', ['init', '-input=false', '-no-color'])
    if (r.exitCode !== 0) {
      const flavor = this.probed?.flavor ?? 'terraform'
      const rc = flavor === 'opentofu' ? '~/.tofurc' : '~/.terraformrc'
      throw this.failure('init', r, `Check that this machine can reach ${registryHost(flavor)} (or configure a provider mirror in ${rc}), then run the command again.`)
    }
  }

  /** `plan -out` (streamed as JSON) and `show -json` of the plan file → what will change. */
  async plan(planFile: string, opts: {destroy?: boolean; onEvent?: (e: UiEvent) => void} = {}): Promise<PlanSummary> {
    const args = ['plan', '-input=false', '-json', `-out=${planFile}`]
    if (opts.destroy) args.push('-destroy')
    const r = await this.run('plan', args, opts.onEvent)
    if (r.exitCode !== 0) throw this.failure('plan', r, 'Fix the cause above (autolabs.yaml, then re-run autolabs to re-render terraform/), and run the command again.')
    const show = await this.run('show', ['show', '-json', planFile], undefined, true)
    if (show.exitCode !== 0) throw this.failure('show', show)
    return summarizePlan(JSON.parse(show.stdout) as Record<string, unknown>)
  }

  /** `apply -json <planfile>`: the event stream drives onEvent (live per-resource progress). */
  async apply(planFile: string, onEvent?: (e: UiEvent) => void): Promise<ApplyResult> {
    return this.applyLike('apply', ['apply', '-input=false', '-json', planFile], onEvent)
  }

  /** `destroy -json -auto-approve` (the confirmation is autolabs' own, before this call). */
  async destroy(onEvent?: (e: UiEvent) => void): Promise<ApplyResult> {
    return this.applyLike('destroy', ['destroy', '-input=false', '-json', '-auto-approve'], onEvent)
  }

  /** `terraform output -json` → {name: {value, type, sensitive}}. */
  async output(): Promise<Record<string, TerraformOutput>> {
    const r = await this.run('output', ['output', '-json'], undefined, true)
    if (r.exitCode !== 0) throw this.failure('output', r)
    return JSON.parse(r.stdout || '{}') as Record<string, TerraformOutput>
  }

  /** The resources in the current state (`terraform show -json`); [] when there is none. */
  async state(): Promise<StateResource[]> {
    const r = await this.run('show', ['show', '-json'], undefined, true)
    if (r.exitCode !== 0) throw this.failure('show', r)
    return stateResources(JSON.parse(r.stdout || '{}') as Record<string, unknown>)
  }

  private async applyLike(command: 'apply' | 'destroy', args: string[], onEvent?: (e: UiEvent) => void): Promise<ApplyResult> {
    let summary: ChangeSummary | undefined
    const r = await this.run(command, args, (e) => {
      if (e.type === 'change_summary') summary = e
      onEvent?.(e)
    })
    if (r.exitCode !== 0) {
      throw this.failure(
        command,
        r,
        command === 'apply'
          ? 'Fix the cause above and run `autolabs init` again: Terraform kept its state, so it continues with what is missing.'
          : 'Fix the cause above and run `autolabs destroy` again: what was already destroyed stays destroyed.',
      )
    }
    return {summary, diagnostics: r.diagnostics}
  }

  private env(): Record<string, string> {
    return terraformEnv(process.env, this.opts.env)
  }

  private async log(command: string, text: string): Promise<void> {
    // O_NOFOLLOW: a log file replaced by a link to another file is refused, not appended to.
    await appendFile(this.logPath(command), redact(text), {mode: 0o600, flag: APPEND_NOFOLLOW}).catch((error: NodeJS.ErrnoException) => {
      throw error.code === 'ELOOP' ? symlinkRefusal(this.logPath(command), 'log files') : error
    })
  }

  /**
   * `quiet`: stdout is data (show/output JSON, which for a plan holds the variable values):
   * the log gets its size, not its content.
   */
  private async run(command: string, args: string[], onEvent?: (e: UiEvent) => void, quiet = false): Promise<RunResult> {
    assertNoSecretsInArgs(args)
    // No new Terraform command after a stop signal.
    checkpoint()
    refuseSymlinkSync(this.opts.logsDir)
    await mkdir(this.opts.logsDir, {recursive: true, mode: 0o700})
    const env = this.env()
    await this.log(command, `\n# ${new Date().toISOString()} ${describeCommand(this.bin, args, env)} (cwd: ${this.opts.cwd})\n`)

    const child = execa(this.bin, args, {
      cwd: this.opts.cwd,
      env,
      extendEnv: false,
      stdin: 'ignore',
      buffer: false,
      reject: false,
      // Own process group: the terminal's Ctrl+C reaches autolabs only, which forwards it once.
      // (Windows delivers Ctrl+C to every process on the console, and a detached child would
      // get its own console window: there terraform is left in ours and gets Ctrl+C directly.)
      detached: !WINDOWS,
      forceKillAfterDelay: false,
    })
    const out: string[] = []
    const err: string[] = []
    const diagnostics: Diagnostic[] = []
    const logLines: string[] = []
    const outSplit = new LineSplitter()
    const errSplit = new LineSplitter()
    let quietBytes = 0
    const onOut = (line: string) => {
      out.push(line)
      if (quiet) quietBytes += line.length + 1
      else logLines.push(line)
      const e = parseUiLine(line)
      if (!e) return
      if (e.type === 'diagnostic') diagnostics.push(e)
      try {
        onEvent?.(e)
      } catch {
        // A display callback must never break terraform's run.
      }
    }
    const onErr = (line: string) => {
      err.push(line)
      logLines.push(`[stderr] ${line}`)
    }
    child.stdout?.setEncoding('utf8')
    child.stderr?.setEncoding('utf8')
    child.stdout?.on('data', (c: string) => outSplit.push(c, onOut))
    child.stderr?.on('data', (c: string) => errSplit.push(c, onErr))
    // Flush the log regularly so a long apply can be followed with `tail -f`.
    // Appends are chained so that chunks land in order even when a flush is still running.
    let logChain: Promise<void> = Promise.resolve()
    const flush = (): Promise<void> => {
      logChain = logChain.then(async () => {
        if (logLines.length === 0) return
        await this.log(command, logLines.splice(0).join('\n') + '\n')
      })
      return logChain
    }
    const timer = setInterval(() => void flush().catch(() => undefined), 1000)

    let interrupted = 0
    const signals = this.opts.signals ?? interrupts
    const onSigint = () => {
      interrupted++
      // On Windows process.kill(SIGINT) would terminate terraform outright; it got the console's Ctrl+C.
      if (child.pid && !WINDOWS) {
        try {
          process.kill(child.pid, 'SIGINT')
        } catch {
          // Already gone.
        }
      }
      logLines.push(`# autolabs: Ctrl+C #${interrupted} forwarded to terraform${interrupted === 1 ? ' (graceful stop: it finishes the current operations and saves its state)' : ' (forced stop)'}`)
      this.opts.onInterrupt?.(interrupted)
    }
    signals.on('SIGINT', onSigint)
    let result
    try {
      result = await child
    } finally {
      signals.off('SIGINT', onSigint)
      clearInterval(timer)
    }
    outSplit.flush(onOut)
    errSplit.flush(onErr)
    const exitCode = typeof result.exitCode === 'number' ? result.exitCode : 1
    if (quiet) logLines.push(`# (${quietBytes} bytes of JSON on stdout, not logged)`)
    logLines.push(`# exit ${result.exitCode ?? result.signal ?? 'unknown'}`)
    await flush()

    const spawnError = (result as unknown as {code?: string}).code
    if (spawnError === 'ENOENT') throw new UserError(`${flavorName(this.probed?.flavor ?? 'terraform')} was not found (looked for \`${this.bin}\`).`, {suggestion: INSTALL_HINT})
    if (interrupted > 0) {
      throw new InterruptedError(
        `Terraform ${command} was interrupted${interrupted === 1 ? ' and stopped after saving its state' : ' (forced)'}. Run the command again to continue where it stopped.`,
        interruptedBy(),
      )
    }
    return {exitCode, stdout: out.join('\n'), stderr: err.join('\n'), diagnostics, interrupted}
  }

  private failure(command: string, r: RunResult, suggestion?: string): ExternalError {
    const diag = formatDiagnostics(r.diagnostics)
    const tail = (diag || r.stderr || r.stdout).trim().split('\n').slice(-20).join('\n')
    return new ExternalError(`terraform ${command} failed (exit ${r.exitCode}).`, {
      command: `terraform ${command}`,
      stderrTail: redact(tail),
      logPath: this.logPath(command),
      suggestion: suggestion ?? `See the log for details, fix the cause and run the command again.`,
    })
  }
}
