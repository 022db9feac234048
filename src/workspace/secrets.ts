import {randomBytes} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {parse, stringify} from 'yaml'
import {z} from 'zod'

import {UserError} from '../errors.js'
import {registerSecret} from '../util/redact.js'
import {ensureDir, writeFileAtomic} from './fs.js'
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
  let text: string
  try {
    text = await readFile(ws.secretsFile, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  const parsed = secretsSchema.safeParse(parse(text))
  if (!parsed.success) {
    throw new UserError(`${ws.secretsFile} is damaged: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, {
      suggestion: 'Restore it from your backup; autolabs never regenerates existing secrets because the VMs already use them.',
    })
  }
  registerSecrets(parsed.data)
  return parsed.data
}

export async function saveSecrets(ws: Workspace, secrets: Secrets): Promise<void> {
  await ensureDir(ws.stateDir, 0o700)
  const header = '# autolabs secrets: generated with a CSPRNG. Never commit this file; back it up safely.\n'
  await writeFileAtomic(ws.secretsFile, header + stringify(secrets), 0o600)
  registerSecrets(secrets)
}

