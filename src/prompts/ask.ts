import {ConfigError, UsageError} from '../errors.js'

/**
 * Every question of autolabs goes through here. An answer comes, in order, from: the flag
 * (or its AUTOLABS_* env), the existing workspace, a prompt (TTY and no --yes), the default.
 * With no TTY (or --yes) and no default for a required answer, fail at once naming the flag.
 * Prompts load lazily: @inquirer/prompts is only imported when a question is really asked.
 */
export interface Question<T> {
  /** The config path it answers, e.g. network.vms.gitlab.ip. */
  key: string
  /** The flag that answers it without a prompt, e.g. --gitlab-ip. */
  flag: string
  env?: string
  message: string
  /** Given on the command line or in the environment. */
  given?: T
  /** From the existing workspace or the answers a failed run kept. */
  existing?: T
  default?: T
  /** Returns an error message or true. */
  validate?: (value: T) => string | true
  /** Applied to what was typed or given before it is validated (e.g. add https:// and :8006). */
  normalize?: (value: T) => T
  choices?: Array<{name: string; value: T; description?: string}>
  secret?: boolean
  kind?: 'text' | 'number' | 'select' | 'confirm'
  /** No usable default: must be answered by flag, env, existing workspace or prompt. */
  required?: boolean
}

export interface AskContext {
  interactive: boolean
  /** --yes: accept defaults, never prompt. */
  yes: boolean
}

export function canPrompt(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY) && process.env.CI !== 'true'
}

export async function ask<T>(q: Question<T>, ctx: AskContext): Promise<T> {
  const check = (raw: T, origin: string): T => {
    const v = q.normalize ? q.normalize(raw) : raw
    const ok = q.validate ? q.validate(v) : true
    if (ok !== true) throw new ConfigError(origin, [{path: q.key, message: ok}], {flags: {[q.key]: q.flag}})
    return v
  }
  if (q.given !== undefined) return check(q.given, `${q.flag}${q.env ? ` (${q.env})` : ''}`)
  const fallback = q.existing ?? q.default
  if (!ctx.interactive || ctx.yes) {
    if (fallback === undefined || (q.required && q.existing === undefined && q.default === undefined))
      throw new UsageError(`No answer for "${q.message.replace(/[?:]\s*$/, '')}" (${q.key}).`, {
        suggestion: `Pass ${q.flag}${q.env ? ` or set ${q.env}` : ''}${ctx.interactive ? '' : ' (no terminal to ask on)'}.`,
      })
    // A saved answer or a default can clash with what was given since: the same rules apply.
    return check(fallback, q.existing === undefined ? 'the defaults' : 'the saved answers')
  }
  return check(await prompt(q, fallback), 'the answer')
}

async function prompt<T>(q: Question<T>, fallback: T | undefined): Promise<T> {
  const inq = await import('@inquirer/prompts')
  const validate = (v: unknown) => (q.validate ? q.validate((q.normalize ? q.normalize(v as T) : v) as T) : true)
  const opts = {output: process.stderr}
  if (q.secret) {
    // No mask: one "*" per key would show the secret's length. Enter keeps a saved secret.
    const keep = fallback !== undefined
    const message = keep ? `${q.message.replace(/:\s*$/, '')} (Enter keeps the saved one):` : q.message
    const typed = await inq.password({message, validate: (v) => (keep && v === '' ? true : validate(v))}, opts)
    return (keep && typed === '' ? fallback : typed) as T
  }
  if (q.choices) return (await inq.select({message: q.message, choices: q.choices, default: fallback}, opts)) as T
  if (q.kind === 'confirm') return (await inq.confirm({message: q.message, default: fallback as boolean}, opts)) as T
  if (q.kind === 'number')
    return (await inq.number({message: q.message, default: fallback as number, required: true, validate: (v) => (v === undefined ? 'required' : validate(v))}, opts)) as T
  return (await inq.input({message: q.message, default: fallback === undefined ? undefined : String(fallback), required: true, validate}, opts)) as T
}

/** A hidden one-line answer (a passphrase), on stderr like every prompt; never echoed. */
export async function promptHidden(message: string): Promise<string> {
  const inq = await import('@inquirer/prompts')
  return inq.password({message, mask: false}, {output: process.stderr})
}
