import {Command, Flags, Interfaces} from '@oclif/core'

import {BugError, ConfigError, ExitCode, ExternalError, InterruptedError, isExpected, UserError} from './errors.js'
import {printable} from './config/grammar.js'
import {installSignalHandlers, interruptedBy} from './util/interrupt.js'
import {redact, redactDeep} from './util/redact.js'
import {fileError, isFileSystemError} from './workspace/fs.js'

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
    process.stderr.write(printable(redact(`Warning: ${message}`)) + '\n')
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

    if (err instanceof InterruptedError) {
      exitCode = err.exitCode
      message = err.message
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
      // oclif's own parse errors (unknown flag, missing argument): usage errors.
      exitCode = err.oclif.exit === 0 ? 0 : ExitCode.usage
      if (exitCode === 0) return
      message = err.message
      suggestion = `See: autolabs ${this.id?.replaceAll(':', ' ') ?? ''} --help`
    } else {
      const bug = err instanceof BugError ? err : new BugError(err?.message ?? String(err), {cause: err})
      exitCode = ExitCode.failure
      message = `Unexpected error: ${bug.message}`
      suggestion = 'This is a bug in autolabs. Re-run with --verbose and report the output.'
    }

    if (this.jsonEnabled()) {
      const body = redactDeep({error: {name: err?.name ?? 'Error', message, suggestion, exitCode, ...detail}})
      process.stdout.write(JSON.stringify(body, null, 2) + '\n')
    }
    let text = `Error: ${message}`
    if (suggestion) text += `\n${suggestion}`
    if (verbose && err?.stack) text += `\n\n${err.stack}`
    process.stderr.write(printable(redact(text)) + '\n')
    process.exitCode = exitCode
    // oclif's handle() would print again; exit with the code once output is flushed.
    return this.exit(exitCode)
  }
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')
}
