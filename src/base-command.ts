import {Command, Flags, Interfaces} from '@oclif/core'

import {closest} from './ui/suggest.js'
import {BugError, ConfigError, ExitCode, ExternalError, InterruptedError, isExpected, UserError} from './errors.js'
import {printable} from './config/grammar.js'
import {installSignalHandlers, interruptedBy, stoppingAtOnce} from './util/interrupt.js'
import {paint, reportError} from './ui/output.js'
import {redact, redactDeep} from './util/redact.js'
import {fileError, isFileSystemError} from './workspace/fs.js'

/**
 * The Terraform (or OpenTofu) executable, on every command that runs it. One flag, one env
 * name; AUTOLABS_TERRAFORM_BIN and --terraform-bin stay as aliases (resolveTerraformBin).
 */
export const terraformFlag = Flags.string({
  summary: 'Terraform or OpenTofu executable (default: terraform on PATH, else tofu).',
  env: 'AUTOLABS_TERRAFORM',
  aliases: ['terraform-bin'],
  helpGroup: 'TERRAFORM',
})

export type GlobalFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>

/**
 * Every autolabs command extends this: global flags (each with an AUTOLABS_* env name),
 * `--json` (the value `run()` returns goes to stdout, chatter to stderr), and the one error
 * handler that maps the error taxonomy to messages and exit codes.
 */
export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    dir: Flags.string({
      summary: 'Workspace directory (default: the nearest parent with autolabs.yaml, else the current directory).',
      env: 'AUTOLABS_DIR',
      helpGroup: 'GLOBAL',
    }),
    verbose: Flags.boolean({
      summary: 'Debug output and stack traces.',
      env: 'AUTOLABS_VERBOSE',
      helpGroup: 'GLOBAL',
      default: false,
    }),
    // Read before parsing (src/ui/output.ts, like NO_COLOR); declared so it parses and is documented.
    color: Flags.boolean({
      summary: 'Colour on a terminal (default); --no-color or NO_COLOR turns it off, FORCE_COLOR on.',
      env: 'AUTOLABS_COLOR',
      helpGroup: 'GLOBAL',
      allowNo: true,
    }),
  }

  protected flags!: GlobalFlags<T>

  public override async init(): Promise<void> {
    await super.init()
    const {flags} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as GlobalFlags<T>
    // SIGINT/SIGTERM/SIGHUP: stop at the next safe point (src/util/interrupt.ts).
    installSignalHandlers()
  }

  /** A command that finished its work although a stop signal came still exits with the signal's code. */
  protected override async finally(err: Error | undefined): Promise<unknown> {
    const signal = interruptedBy()
    if (!err && signal) process.exitCode = new InterruptedError('', signal).exitCode
    return super.finally(err)
  }

  /** Chatter (progress, info, warnings) goes to stderr so stdout stays data-only. */
  protected info(message: string): void {
    if (!this.jsonEnabled()) process.stderr.write(printable(redact(message)) + '\n')
  }

  protected warnUser(message: string): void {
    process.stderr.write(printable(redact(`${paint.stderr.yellow.bold('Warning:')} ${message}`)) + '\n')
  }

  protected override toSuccessJson(result: unknown): unknown {
    return redactDeep(result)
  }

  protected override async catch(err: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    // A file-system error a user can cause (a path that is a directory, a read-only disk,
    // no permission) says which path and what to do; it is not a bug.
    if (isFileSystemError(err)) err = fileError(err)
    // After a signal, whatever failed failed because of it (an aborted request, a killed child).
    const signal = interruptedBy()
    if (signal && !(err instanceof InterruptedError) && !(err?.oclif?.exit !== undefined)) err = new InterruptedError(`Interrupted (${signal}).`, signal)
    const verbose = Boolean(this.flags?.verbose) || process.argv.includes('--verbose') || process.env.AUTOLABS_VERBOSE === 'true'
    let exitCode: number
    let message: string
    let suggestion: string | undefined
    let detail: Record<string, unknown> = {}
    let name: string = err?.name ?? 'Error'

    if (err instanceof InterruptedError) {
      exitCode = err.exitCode
      // A second signal: the command already said where it stopped, and the process is exiting.
      if (stoppingAtOnce()) return this.exit(exitCode)
      message = err.message
      suggestion = err.suggestion
      detail = err.detail ?? {}
    } else if (err?.name === 'ExitPromptError') {
      exitCode = ExitCode.interrupted
      message = 'Interrupted.'
    } else if (isExpected(err)) {
      exitCode = err.exitCode
      message = err.message
      suggestion = (err as UserError).suggestion
      if (err instanceof ExternalError) {
        detail = {command: err.command, logPath: err.logPath}
        if (err.stderrTail) message += `\n${indent(err.stderrTail)}`
        if (err.logPath) message += `\nFull log: ${err.logPath}`
      }
      if (err instanceof ConfigError) detail = {issues: err.issues, source: err.source}
    } else if (err?.oclif?.exit !== undefined) {
      // oclif's own parse errors (unknown flag, bad value, missing argument): usage errors in
      // autolabs' own format, with the flag the user probably meant.
      exitCode = err.oclif.exit === 0 ? 0 : ExitCode.usage
      if (exitCode === 0) return
      ;({message, suggestion} = this.parseErrorText(err))
      name = 'UsageError'
    } else {
      const bug = err instanceof BugError ? err : new BugError(err?.message ?? String(err), {cause: err})
      exitCode = ExitCode.failure
      message = `Unexpected error: ${bug.message}`
      suggestion = 'This is a bug in autolabs. Re-run with --verbose and report the output.'
    }

    reportError({name, message, suggestion, exitCode, detail}, {json: this.jsonEnabled(), stack: verbose ? err?.stack : undefined})
    process.exitCode = exitCode
    // oclif's handle() would print again; exit with the code once output is flushed.
    return this.exit(exitCode)
  }

  /** An oclif parse error as a sentence and a "try this" that names only flags that exist. */
  private parseErrorText(err: Error & {flags?: string[]}): {message: string; suggestion: string} {
    const command = `autolabs ${this.id?.replaceAll(':', ' ') ?? ''}`.trim()
    const help = `See \`${command} --help\`.`
    const text = err.message.replace(/\nSee more help with --help$/, '').replace(/\s*\n\t/g, ': ')
    if (!Array.isArray(err.flags)) return {message: text, suggestion: help}
    const known = Object.entries({...this.ctor.flags, ...(this.ctor as typeof BaseCommand).baseFlags, ...(this.ctor.enableJsonFlag ? {json: {}} : {})}).flatMap(
      ([name, f]) => [`--${name}`, ...((f as {allowNo?: boolean}).allowNo ? [`--no-${name}`] : [])],
    )
    // A long flag typed with one dash (-yes) reaches oclif as -y plus "-es": name what was typed.
    const typed = this.argv.filter((a) => /^-[^-]{2,}/.test(a) && !/^-\d/.test(a)).map((a) => a.split('=')[0])
    const unknown = err.flags.map((f) => {
      const single = typed.find((t) => t.endsWith(f.slice(1)))
      return single ?? f.split('=')[0]
    })
    const guesses = unknown.map((f) => (known.includes(`-${f}`) ? `-${f}` : closest(f.replace(/^-+/, '--'), known))).filter((g): g is string => g !== undefined)
    return {
      message: `Unknown flag${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} for \`${command}\`.`,
      suggestion: guesses.length > 0 ? `Did you mean ${guesses.join(', ')}? ${help}` : help,
    }
  }
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')
}
