import {Chalk, supportsColor, supportsColorStderr} from 'chalk'

import {redact, redactDeep} from '../util/redact.js'

/**
 * Colour for people, never for programs: off with --no-color or NO_COLOR (any non-empty
 * value, no-color.org), on with FORCE_COLOR or --color, else only on a terminal (chalk decides
 * FORCE_COLOR, --color and the TTY; NO_COLOR it leaves to us).
 */
export function colorLevel(stream: 'stdout' | 'stderr', env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = process.argv): 0 | 1 | 2 | 3 {
  if (argv.includes('--no-color')) return 0
  if (env.NO_COLOR && !argv.includes('--color')) return 0
  const s = stream === 'stderr' ? supportsColorStderr : supportsColor
  return s ? s.level : 0
}

/** Paint for stderr (errors, warnings, progress) and for stdout (tables, the plan). */
export const paint = {
  stderr: new Chalk({level: colorLevel('stderr')}),
  stdout: new Chalk({level: colorLevel('stdout')}),
}

/** A check's status word in its colour: pass/ok green, warn yellow, fail red, skipped grey. */
export function statusMark(status: string, text = status, c = paint.stdout): string {
  const s = status.toLowerCase()
  if (s === 'ok' || s === 'pass') return c.green(text)
  if (s === 'warn') return c.yellow(text)
  if (s === 'skipped') return c.gray(text)
  return c.red.bold(text)
}

export interface ErrorReport {
  name: string
  message: string
  suggestion?: string
  exitCode: number
  detail?: Record<string, unknown>
}

/**
 * The one shape of every error autolabs prints: `Error: <what>` and a line saying what to do
 * on stderr; under --json also `{"error": {name, message, suggestion, exitCode, …}}` on stdout.
 * Used by the base command, the command-not-found hook, and for parse errors.
 */
export function reportError(e: ErrorReport, opts: {json: boolean; stack?: string}): void {
  if (opts.json) {
    const body = redactDeep({error: {name: e.name, message: e.message, suggestion: e.suggestion, exitCode: e.exitCode, ...e.detail}})
    process.stdout.write(JSON.stringify(body, null, 2) + '\n')
  }
  const c = paint.stderr
  let text = `${c.red.bold('Error:')} ${e.message}`
  if (e.suggestion) text += `\n${c.cyan(e.suggestion)}`
  if (opts.stack) text += `\n\n${c.dim(opts.stack)}`
  process.stderr.write(redact(text) + '\n')
}
