/**
 * The error taxonomy. Thrown at the site; one handler in BaseCommand turns them into
 * a message, a suggestion and an exit code. No stack trace unless --verbose.
 */

export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  unreachable: 3,
  /** SIGHUP (the terminal went away): 128 + 1. */
  hangup: 129,
  /** SIGINT (Ctrl+C): 128 + 2. */
  interrupted: 130,
  /** SIGTERM: 128 + 15. */
  terminated: 143,
} as const

/** Something the user can fix: bad input, missing file, refused certificate. */
export class UserError extends Error {
  readonly exitCode: number
  readonly suggestion?: string
  constructor(message: string, opts: {suggestion?: string; exitCode?: number; cause?: unknown} = {}) {
    super(message, {cause: opts.cause})
    this.name = 'UserError'
    this.suggestion = opts.suggestion
    this.exitCode = opts.exitCode ?? ExitCode.failure
  }
}

/** Invalid usage or input (exit 2): a flag, a config field, an answer. */
export class UsageError extends UserError {
  constructor(message: string, opts: {suggestion?: string; cause?: unknown} = {}) {
    super(message, {...opts, exitCode: ExitCode.usage})
    this.name = 'UsageError'
  }
}

/** One config field is wrong. `path` is like `network.vms.database.ip`. */
export interface FieldIssue {
  path: string
  message: string
  fix?: string
  severity?: 'error' | 'warning'
}

export class ConfigError extends UsageError {
  readonly issues: FieldIssue[]
  readonly source: string
  /**
   * `flags`: the flag that sets a path (init's --gitlab-ip for network.vms.gitlab.ip): the
   * suggestion names it for those fields, and the file only for fields no flag sets.
   */
  constructor(source: string, issues: FieldIssue[], opts: {flags?: Record<string, string>} = {}) {
    const lines = issues.map((i) => `  - ${i.path}: ${i.message}${i.fix ? ` (${i.fix})` : ''}`)
    const fromFlag = source.startsWith('--')
    const flags = [...new Set(issues.map((i) => opts.flags?.[i.path]).filter((f): f is string => f !== undefined))]
    const fields = issues.filter((i) => opts.flags?.[i.path] === undefined && i.path !== '(yaml)').map((i) => i.path)
    const isFile = /\.ya?ml$/.test(source)
    const fixes = fromFlag
      ? [`Pass a valid value with ${source.split(' ')[0]}.`]
      : [
          ...(flags.length > 0 ? [`Pass a valid value with ${flags.join(', ')}.`] : []),
          ...(fields.length > 0 || flags.length === 0
            ? [isFile ? `Fix ${fields.length > 0 ? fields.join(', ') : 'it'} in ${source} and run the command again.` : `Set ${fields.join(', ')} in autolabs.yaml and run the command again.`]
            : []),
        ]
    super(`Invalid ${fromFlag ? 'value for' : 'configuration in'} ${source}:\n${lines.join('\n')}`, {suggestion: `${fixes.join(' ')} Nothing was written.`})
    this.name = 'ConfigError'
    this.issues = issues
    this.source = source
  }
}

/** An external command (terraform, ssh, a remote script) failed. */
export class ExternalError extends Error {
  readonly command: string
  readonly stderrTail: string
  readonly logPath?: string
  readonly exitCode: number
  readonly suggestion?: string
  constructor(
    message: string,
    opts: {command: string; stderrTail?: string; logPath?: string; suggestion?: string; exitCode?: number; cause?: unknown},
  ) {
    super(message, {cause: opts.cause})
    this.name = 'ExternalError'
    this.command = opts.command
    this.stderrTail = opts.stderrTail ?? ''
    this.logPath = opts.logPath
    this.suggestion = opts.suggestion
    this.exitCode = opts.exitCode ?? ExitCode.failure
  }
}

/** Ctrl+C (exit 130), SIGTERM (143) or SIGHUP (129): stopped cleanly at a safe point. */
export class InterruptedError extends Error {
  readonly exitCode: number
  readonly signal: 'SIGINT' | 'SIGTERM' | 'SIGHUP'
  /** How to continue (e.g. the command to run again). */
  readonly suggestion?: string
  /** Where it stopped, for --json (e.g. deploy's steps per VM). */
  readonly detail?: Record<string, unknown>
  constructor(
    message = 'Interrupted.',
    signal: 'SIGINT' | 'SIGTERM' | 'SIGHUP' = 'SIGINT',
    opts: {suggestion?: string; detail?: Record<string, unknown>} = {},
  ) {
    super(message)
    this.suggestion = opts.suggestion
    this.detail = opts.detail
    this.name = 'InterruptedError'
    this.signal = signal
    this.exitCode = {SIGINT: ExitCode.interrupted, SIGTERM: ExitCode.terminated, SIGHUP: ExitCode.hangup}[signal]
  }
}

/** A bug in autolabs: always shows how to report it. */
export class BugError extends Error {
  readonly exitCode = ExitCode.failure
  constructor(message: string, opts: {cause?: unknown} = {}) {
    super(message, opts)
    this.name = 'BugError'
  }
}

export function isExpected(err: unknown): err is UserError | ExternalError | InterruptedError {
  return err instanceof UserError || err instanceof ExternalError || err instanceof InterruptedError
}
