/**
 * How autolabs proves who it is to the VMs (and the jump host), resolved once per run before any
 * connection is made:
 *
 *   const auth = await resolveSshAuth({keyPath: '~/.ssh/id_ed25519', publicKeyPath: '…/id_ed25519.pub',
 *     passphraseFile: flags['ssh-passphrase-file'], askPassphrase: canPrompt() ? promptHidden : undefined})
 *   auth.how            // "ssh-agent (/tmp/ssh-XXX/agent.123), which holds ~/.ssh/id_ed25519"
 *   authMethods(auth, 'debian')   // ssh2 authHandler list: the agent first, then the key file
 *
 * Order, as OpenSSH users expect:
 * 1. ssh-agent (SSH_AUTH_SOCK): when it holds the configured key, nothing else is read or asked —
 *    a passphrase is never asked for nor kept then. When it holds other keys they are offered
 *    first (any key the VMs accept will do).
 * 2. The key file: unencrypted, or decrypted in memory with its passphrase, taken from
 *    --ssh-passphrase-file, else AUTOLABS_SSH_PASSPHRASE, else a hidden prompt (once per run).
 *    Without a terminal and without either, it fails at once naming both. The passphrase is
 *    registered for redaction and dropped after decrypting: only the decrypted key stays, in
 *    memory. When the agent holds other keys, the passphrase is only used if given (no prompt):
 *    the agent's keys may well be the ones the VMs accept.
 */
import {readFileSync} from 'node:fs'
import {readFile} from 'node:fs/promises'

import ssh2 from 'ssh2'

import {UsageError, UserError} from '../errors.js'
import {registerSecret} from '../util/redact.js'

// ssh2 is CommonJS: Node's ESM loader cannot see its named exports (the built CLI fails).
const {OpenSSHAgent, utils: sshUtils} = ssh2

type ParsedKey = ssh2.ParsedKey

export interface SshAuth {
  /** The configured private key file (for messages). */
  keyPath: string
  /** SSH_AUTH_SOCK, when the agent answered with at least one key. */
  agent?: string
  /** How many keys the agent offered. */
  agentKeys: number
  /** The agent holds the configured key itself. */
  agentHasKey: boolean
  /** The key file, parsed (decrypted in memory where it had a passphrase). */
  key?: ParsedKey
  /** The key file is passphrase-protected (whether or not it was decrypted). */
  encrypted: boolean
  /** One line for messages and logs: what will be offered to the servers. */
  how: string
}

export interface ResolveAuthOptions {
  keyPath: string
  /** Default: keyPath + ".pub". Read to recognise the key among the agent's. */
  publicKeyPath?: string
  /** --ssh-passphrase-file. */
  passphraseFile?: string
  /** Default process.env (SSH_AUTH_SOCK, AUTOLABS_SSH_PASSPHRASE). */
  env?: NodeJS.ProcessEnv
  /** A hidden prompt; absent without a terminal. */
  askPassphrase?: (message: string) => Promise<string>
  /** Bound on asking the agent for its keys. Default 5 s. */
  agentTimeoutMs?: number
}

export const PASSPHRASE_ENV = 'AUTOLABS_SSH_PASSPHRASE'
export const PASSPHRASE_FLAG = '--ssh-passphrase-file'

/** The public keys the agent holds (SSH wire format), or why it could not be asked. */
export function agentIdentities(sock: string, timeoutMs = 5000): Promise<Buffer[] | Error> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs)
    new OpenSSHAgent(sock).getIdentities((err, keys) => {
      clearTimeout(t)
      if (err) resolve(err)
      else resolve((keys ?? []).map((k) => (k as ParsedKey).getPublicSSH())) // OpenSSHAgent returns parsed keys
    })
  })
}

function publicBlobOfLine(line: string): Buffer | undefined {
  const b64 = line.trim().split(/\s+/)[1]
  return b64 ? Buffer.from(b64, 'base64') : undefined
}

const isEncryptedError = (e: Error) => /encrypted|passphrase/i.test(e.message)

export async function resolveSshAuth(o: ResolveAuthOptions): Promise<SshAuth> {
  const env = o.env ?? process.env
  const keyPath = o.keyPath
  let text: string | undefined
  let readError: NodeJS.ErrnoException | undefined
  try {
    text = await readFile(keyPath, 'utf8')
  } catch (error) {
    readError = error as NodeJS.ErrnoException
  }
  let key: ParsedKey | undefined
  let encrypted = false
  let parseError: Error | undefined
  if (text !== undefined) {
    const parsed = sshUtils.parseKey(text)
    if (parsed instanceof Error) {
      if (isEncryptedError(parsed)) encrypted = true
      else parseError = parsed
    } else key = Array.isArray(parsed) ? parsed[0] : parsed
  }

  // The configured key's public half: from the decrypted file, else the .pub beside it.
  let blob: Buffer | undefined = key?.getPublicSSH()
  if (!blob) {
    try {
      blob = publicBlobOfLine(readFileSync(o.publicKeyPath ?? `${keyPath}.pub`, 'utf8'))
    } catch {
      // no .pub: the agent's keys are offered all the same
    }
  }

  let agent: string | undefined
  let agentKeys = 0
  let agentHasKey = false
  let agentNote = ''
  const sock = env.SSH_AUTH_SOCK
  if (sock) {
    const ids = await agentIdentities(sock, o.agentTimeoutMs)
    if (ids instanceof Error) agentNote = ` (ssh-agent at ${sock} did not answer: ${ids.message})`
    else if (ids.length === 0) agentNote = ` (ssh-agent at ${sock} holds no keys)`
    else {
      agent = sock
      agentKeys = ids.length
      agentHasKey = Boolean(blob && ids.some((b) => b.equals(blob)))
    }
  }

  const base = {keyPath, agent, agentKeys, agentHasKey, encrypted}
  if (agentHasKey) return {...base, key, how: `ssh-agent (${sock}), which holds ${keyPath}`}

  if (readError) {
    if (agent) return {...base, how: `ssh-agent (${sock}) with ${agentKeys} key${agentKeys > 1 ? 's' : ''}; ${keyPath} cannot be read (${readError.code})`}
    throw new UserError(`Cannot read the SSH key ${keyPath} (${readError.code ?? readError.message})${agentNote}.`, {
      suggestion: 'Check ssh.privateKeyFile (or ssh.publicKeyFile) in autolabs.yaml, or load the key into ssh-agent (`ssh-add <key>`) and run the command again.',
    })
  }
  if (parseError) {
    if (agent) return {...base, how: `ssh-agent (${sock}) with ${agentKeys} key${agentKeys > 1 ? 's' : ''}; ${keyPath} is not usable (${parseError.message})`}
    throw new UserError(`The SSH key ${keyPath} cannot be used: ${parseError.message}.`, {
      suggestion: 'Point ssh.privateKeyFile at an OpenSSH private key (ed25519 recommended: `ssh-keygen -t ed25519`), or load it into ssh-agent.',
    })
  }
  const agentPart = agent ? `ssh-agent (${sock}) with ${agentKeys} other key${agentKeys > 1 ? 's' : ''}, then ` : ''
  if (!encrypted) return {...base, key, how: `${agentPart}${keyPath}`}

  // Passphrase-protected and not in the agent.
  const given = o.passphraseFile !== undefined ? await readPassphraseFile(o.passphraseFile) : env[PASSPHRASE_ENV]
  if (given === undefined && agent) {
    // The agent's other keys may be accepted; the key file is the fallback only if unlocked.
    return {...base, how: `ssh-agent (${sock}) with ${agentKeys} other key${agentKeys > 1 ? 's' : ''} (${keyPath} is passphrase-protected and not in the agent)`}
  }
  if (given !== undefined) {
    registerSecret(given)
    const decrypted = decrypt(text!, given)
    if (!decrypted) {
      throw new UsageError(`The passphrase for the SSH key ${keyPath} is wrong (from ${o.passphraseFile !== undefined ? PASSPHRASE_FLAG : PASSPHRASE_ENV}).`, {
        suggestion: `Give the key's passphrase in ${o.passphraseFile !== undefined ? 'that file' : PASSPHRASE_ENV}, or load the key into ssh-agent (\`ssh-add ${keyPath}\`).`,
      })
    }
    return {...base, key: decrypted, how: `${agentPart}${keyPath} (unlocked with its passphrase)`}
  }
  if (!o.askPassphrase) {
    throw new UsageError(`The SSH key ${keyPath} is protected by a passphrase, and there is no terminal to ask for it${agentNote}.`, {
      suggestion: `Load it into ssh-agent (\`ssh-add ${keyPath}\`, SSH_AUTH_SOCK set), or give the passphrase in ${PASSPHRASE_ENV} or in a file named by ${PASSPHRASE_FLAG}.`,
    })
  }
  for (let attempt = 1; attempt <= 3; attempt++) {
    const answer = await o.askPassphrase(`Passphrase for ${keyPath}${attempt > 1 ? ' (wrong, try again)' : ''}:`)
    registerSecret(answer)
    const decrypted = decrypt(text!, answer)
    if (decrypted) return {...base, key: decrypted, how: `${agentPart}${keyPath} (unlocked with its passphrase)`}
  }
  throw new UsageError(`The passphrase for the SSH key ${keyPath} was wrong three times.`, {
    suggestion: `Run the command again, or load the key into ssh-agent (\`ssh-add ${keyPath}\`).`,
  })
}

function decrypt(text: string, passphrase: string): ParsedKey | undefined {
  const parsed = sshUtils.parseKey(text, passphrase)
  if (parsed instanceof Error) return undefined
  return Array.isArray(parsed) ? parsed[0] : parsed
}

async function readPassphraseFile(file: string): Promise<string> {
  let raw: string
  try {
    raw = await readFile(file, 'utf8')
  } catch (error) {
    throw new UsageError(`Cannot read ${PASSPHRASE_FLAG} ${file} (${(error as NodeJS.ErrnoException).code ?? error}).`, {
      suggestion: `Name a readable file that holds only the passphrase (chmod 600), or set ${PASSPHRASE_ENV}.`,
    })
  }
  // One line; a trailing newline (echo > file) is not part of the passphrase.
  return raw.replace(/\r?\n$/, '')
}

/** ssh2 authentication attempts for `username`, in order: the agent, then the key file. */
export function authMethods(auth: SshAuth, username: string): Array<Record<string, unknown>> {
  const methods: Array<Record<string, unknown>> = []
  if (auth.agent) methods.push({type: 'agent', username, agent: auth.agent})
  if (auth.key && !auth.agentHasKey) methods.push({type: 'publickey', username, key: auth.key})
  return methods
}

/** What the server refused, for an authentication error. */
export function describeRefusedAuth(auth: SshAuth, user: string): string {
  if (auth.agentHasKey) return `the key ${auth.keyPath} (held by ssh-agent) was not accepted for ${user}`
  const parts = [auth.agent ? `the ${auth.agentKeys} key${auth.agentKeys > 1 ? 's' : ''} of ssh-agent` : '', auth.key ? `the key ${auth.keyPath}` : ''].filter(Boolean)
  const locked = auth.encrypted && !auth.key ? ` (${auth.keyPath} is passphrase-protected and was not unlocked: \`ssh-add ${auth.keyPath}\`, or ${PASSPHRASE_ENV})` : ''
  return `${parts.join(' and ')} ${parts.length > 1 ? 'were' : 'was'} not accepted for ${user}${locked}`
}
