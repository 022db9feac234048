import {randomBytes} from 'node:crypto'
import {LineCounter, parseDocument, stringify, type Document} from 'yaml'
import {z} from 'zod'

import {UserError} from '../errors.js'
import {registerSecret} from '../util/redact.js'
import {ensureDir, READ_LIMITS, readTextFile, writeFileAtomic} from './fs.js'
import type {Workspace} from './workspace.js'

/** URL-safe, shell-safe, SQL-literal-safe random password from the CSPRNG. */
export function generatePassword(bytes = 24): string {
  return randomBytes(bytes).toString('base64url')
}

const pw = z.string().min(16)

export const secretsSchema = z.object({
  proxmox: z
    .object({
      /** The administrator's credentials given at init (token secret or password). */
      tokenSecret: z.string().optional(),
      password: z.string().optional(),
      /** The least-privilege token autolabs created for Terraform. */
      terraformTokenId: z.string().optional(),
      terraformTokenSecret: z.string().optional(),
    })
    .default({}),
  postgres: z.object({
    superuser: pw,
    users: z.record(z.string(), pw),
    replication: pw.optional(),
  }),
  redis: z.object({password: pw}),
  objectStorage: z.object({accessKey: z.string().min(16), secretKey: pw}),
  gitlab: z.object({
    rootPassword: pw,
    /** Runner authentication token (glrt-…), filled in by the gitlab stage. */
    runnerToken: z.string().optional(),
  }),
  kubernetes: z.object({
    /** kubeadm bootstrap token: [a-z0-9]{6}.[a-z0-9]{16}. */
    bootstrapToken: z.string().regex(/^[a-z0-9]{6}\.[a-z0-9]{16}$/),
  }),
})

export type Secrets = z.infer<typeof secretsSchema>

function kubeadmToken(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'
  const pick = (n: number) => Array.from(randomBytes(n), (b) => alphabet[b % 36]).join('')
  return `${pick(6)}.${pick(16)}`
}

/** Fresh secrets for every database user and service; nothing is ever re-generated later. */
export function generateSecrets(databases: string[]): Secrets {
  return {
    proxmox: {},
    postgres: {
      superuser: generatePassword(),
      users: Object.fromEntries(databases.map((db) => [db, generatePassword()])),
    },
    redis: {password: generatePassword()},
    objectStorage: {accessKey: randomBytes(10).toString('hex').toUpperCase(), secretKey: generatePassword(30)},
    gitlab: {rootPassword: generatePassword()},
    kubernetes: {bootstrapToken: kubeadmToken()},
  }
}

/** Add what is missing (a database added later), keep every existing value. */
export function completeSecrets(existing: Secrets, databases: string[]): {secrets: Secrets; added: string[]} {
  const added: string[] = []
  const users = {...existing.postgres.users}
  for (const db of databases) {
    if (!users[db]) {
      users[db] = generatePassword()
      added.push(`postgres.users.${db}`)
    }
  }
  return {secrets: {...existing, postgres: {...existing.postgres, users}}, added}
}

export function registerSecrets(secrets: Secrets): void {
  const walk = (v: unknown) => {
    if (typeof v === 'string') registerSecret(v)
    else if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x)
  }
  walk(secrets)
}

export async function loadSecrets(ws: Workspace): Promise<Secrets | undefined> {
  const text = await readTextFile(ws.secretsFile, {what: 'The secrets file', maxBytes: READ_LIMITS.secrets, optional: true, noFollow: true})
  if (text === undefined) return undefined
  const data = parseSecretsText(text, ws.secretsFile)
  registerSecrets(data)
  return data
}

const DAMAGED_FIX = 'Restore it from your backup; autolabs never regenerates existing secrets because the VMs already use them.'

/**
 * Parse secrets.yaml. Whatever is wrong, the error names only a line, a column and keys, never
 * a value or an excerpt: the parser's own messages quote the text, and the text is secrets.
 */
export function parseSecretsText(text: string, file: string): Secrets {
  let raw: unknown
  const lines = new LineCounter()
  let doc: Document
  try {
    // prettyErrors adds the line and column; its message (which quotes the text) is never used.
    doc = parseDocument(text, {prettyErrors: true, uniqueKeys: true, lineCounter: lines})
    const e = doc.errors[0]
    if (e) {
      const at = e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : 'an unknown position'
      throw new UserError(`${file} is damaged: it is not valid YAML at ${at} (${e.code}).`, {suggestion: DAMAGED_FIX})
    }
    raw = doc.toJS({maxAliasCount: 0})
  } catch (error) {
    if (error instanceof UserError) throw error
    throw new UserError(`${file} is damaged: it cannot be read as YAML (${(error as Error).name}).`, {suggestion: DAMAGED_FIX})
  }
  const parsed = secretsSchema.safeParse(raw)
  if (!parsed.success) {
    // zod's invalid_type message names types only ("expected string, received number"), never the value.
    const what = (i: z.core.$ZodIssue) => (i.code !== 'invalid_type' ? 'has a value of the wrong form' : /received undefined/.test(i.message) ? 'is missing' : `is not a ${i.expected}`)
    const line = (p: PropertyKey[]) => {
      // The deepest node of the path that exists: its line (a missing key → its parent's).
      for (let n = p.length; n > 0; n--) {
        const node = doc.getIn(p.slice(0, n), true) as {range?: [number, number, number]} | undefined
        if (node?.range) return ` (line ${lines.linePos(node.range[0]).line})`
      }
      return ''
    }
    const keys = parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'} ${what(i)}${line(i.path)}`)
    throw new UserError(`${file} is damaged: ${keys.join('; ')}.`, {suggestion: DAMAGED_FIX})
  }
  return parsed.data
}

export async function saveSecrets(ws: Workspace, secrets: Secrets): Promise<void> {
  await ensureDir(ws.stateDir, 0o700)
  await writeFileAtomic(ws.secretsFile, secretsText(secrets), 0o600)
  registerSecrets(secrets)
}

export function secretsText(secrets: Secrets): string {
  const header = '# autolabs secrets: generated with a CSPRNG. Never commit this file; back it up safely.\n'
  return header + stringify(secrets)
}
