/**
 * Where the key of a workspace archive comes from. Encrypting: the age recipients given or in
 * autolabs.yaml (backup.recipients: no secret needed, fit for unattended backups), else a
 * passphrase from AUTOLABS_BACKUP_PASSPHRASE, --passphrase-file or a hidden prompt.
 * Decrypting: --identity-file (AUTOLABS_AGE_IDENTITY_FILE), else the passphrase the same ways.
 * A passphrase lives only in memory and is registered with the redactor.
 */
import {lstat, readFile} from 'node:fs/promises'

import type {Config} from '../config/schema.js'
import {UsageError} from '../errors.js'
import {registerSecret} from '../util/redact.js'
import {type DecryptKey, type EncryptKey, parseIdentities} from './archive.js'

export const PASSPHRASE_ENV = 'AUTOLABS_BACKUP_PASSPHRASE'
const MIN_PASSPHRASE = 12

export interface KeySources {
  /** --recipient flags (override backup.recipients). */
  recipients?: string[]
  /** --passphrase-file. */
  passphraseFile?: string
  /** --identity-file (decrypting only). */
  identityFile?: string
  /** A terminal to ask on (and no --yes). */
  interactive: boolean
  env?: NodeJS.ProcessEnv
}

async function readSmallFile(file: string, flag: string): Promise<string> {
  try {
    const st = await lstat(file)
    if (!st.isFile() || st.size > 64 * 1024) throw new UsageError(`${flag} ${file} is not a small regular file.`, {suggestion: `Pass a file with the key on its first line to ${flag}.`})
    return await readFile(file, 'utf8')
  } catch (error) {
    if (error instanceof UsageError) throw error
    throw new UsageError(`Cannot read ${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`, {suggestion: `Check the path given to ${flag}.`})
  }
}

async function passphraseFrom(src: KeySources, purpose: 'encrypt' | 'decrypt'): Promise<string | undefined> {
  const env = src.env ?? process.env
  let value: string | undefined
  let origin = ''
  if (src.passphraseFile) {
    value = (await readSmallFile(src.passphraseFile, '--passphrase-file')).split('\n')[0]
    origin = '--passphrase-file'
  } else if (env[PASSPHRASE_ENV]) {
    value = env[PASSPHRASE_ENV]
    origin = PASSPHRASE_ENV
  } else if (src.interactive) {
    const {password} = await import('@inquirer/prompts')
    const ask = (message: string) => password({message, mask: false}, {output: process.stderr})
    value = await ask(purpose === 'encrypt' ? 'Passphrase for the encrypted workspace archive:' : 'Passphrase of the workspace archive:')
    if (purpose === 'encrypt' && value.length >= MIN_PASSPHRASE && (await ask('The same passphrase again:')) !== value) {
      throw new UsageError('The two passphrases differ.', {suggestion: 'Run the command again.'})
    }
    origin = 'the prompt'
  }
  if (value === undefined) return undefined
  registerSecret(value)
  if (purpose === 'encrypt' && value.length < MIN_PASSPHRASE) {
    throw new UsageError(`The passphrase from ${origin} is shorter than ${MIN_PASSPHRASE} characters.`, {suggestion: 'Use a longer passphrase (four or more words), or age recipients in backup.recipients.'})
  }
  return value
}

/** The key to encrypt with; throws a usage error naming every way to give one. */
export async function encryptKey(config: Config, src: KeySources): Promise<EncryptKey> {
  const recipients = src.recipients && src.recipients.length > 0 ? src.recipients : config.backup.recipients
  if (recipients.length > 0) return {recipients}
  const passphrase = await passphraseFrom(src, 'encrypt')
  if (passphrase !== undefined) return {passphrase}
  throw new UsageError('No key to encrypt the workspace archive with.', {
    suggestion: `Set backup.recipients in autolabs.yaml to an age public key (\`autolabs workspace keygen FILE\` makes one; keep FILE off this workstation), or give a passphrase with ${PASSPHRASE_ENV} or --passphrase-file${src.interactive ? '' : ' (no terminal to ask on)'}.`,
  })
}

/** The key to decrypt with; throws a usage error naming every way to give one. */
export async function decryptKey(src: KeySources): Promise<DecryptKey> {
  const env = src.env ?? process.env
  const identityFile = src.identityFile ?? env.AUTOLABS_AGE_IDENTITY_FILE
  if (identityFile) {
    const identities = parseIdentities(await readSmallFile(identityFile, '--identity-file'), identityFile)
    for (const i of identities) registerSecret(i)
    return {identities}
  }
  const passphrase = await passphraseFrom(src, 'decrypt')
  if (passphrase !== undefined) return {passphrase}
  throw new UsageError('No key to open the workspace archive with.', {
    suggestion: `Pass --identity-file (AUTOLABS_AGE_IDENTITY_FILE) for an archive encrypted to an age key, or the passphrase with ${PASSPHRASE_ENV} or --passphrase-file${src.interactive ? '' : ' (no terminal to ask on)'}.`,
  })
}

