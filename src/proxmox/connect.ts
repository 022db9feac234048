import type {Config} from '../config/schema.js'
import {registerSecret} from '../util/redact.js'
import {READ_LIMITS, readTextFile} from '../workspace/fs.js'
import type {Secrets} from '../workspace/secrets.js'
import {type ProxmoxAuth, ProxmoxClient} from './client.js'

export interface CredentialSources {
  /** Files named by --proxmox-token-secret-file / --proxmox-password-file. */
  tokenSecretFile?: string
  passwordFile?: string
  /** Default: process.env (AUTOLABS_PROXMOX_TOKEN_SECRET, AUTOLABS_PROXMOX_PASSWORD). */
  env?: NodeJS.ProcessEnv
  /** .autolabs/secrets.yaml, when the workspace has one. */
  secrets?: Secrets
}

/**
 * The administrator credentials for autolabs' own API calls, from (first wins) the secret
 * file flag, the environment, then .autolabs/secrets.yaml. Undefined when none is available.
 */
export async function resolveAuth(config: Config, src: CredentialSources): Promise<ProxmoxAuth | undefined> {
  const env = src.env ?? process.env
  const fromFile = async (file: string, what: string) => {
    const text = (await readTextFile(file, {what: `The ${what} file`, maxBytes: READ_LIMITS.secretFile, usage: true}))!.trim()
    registerSecret(text)
    return text
  }
  if (config.proxmox.auth === 'token') {
    const secret =
      (src.tokenSecretFile ? await fromFile(src.tokenSecretFile, 'token secret') : undefined) ?? env.AUTOLABS_PROXMOX_TOKEN_SECRET?.trim() ?? src.secrets?.proxmox.tokenSecret
    if (!secret) return undefined
    registerSecret(secret)
    return {type: 'token', tokenId: config.proxmox.tokenId, secret}
  }
  const password = (src.passwordFile ? await fromFile(src.passwordFile, 'password') : undefined) ?? env.AUTOLABS_PROXMOX_PASSWORD ?? src.secrets?.proxmox.password
  if (!password) return undefined
  registerSecret(password)
  return {type: 'password', username: config.proxmox.username, password}
}

/** A client for the workspace's Proxmox, TLS as configured (pinned fingerprint, CA, or --insecure). */
export async function clientFromConfig(
  config: Config,
  auth: ProxmoxAuth,
  opts: {warn?: (m: string) => void; debug?: (m: string) => void; timeoutMs?: number} = {},
): Promise<ProxmoxClient> {
  return ProxmoxClient.connect({
    url: config.proxmox.url,
    auth,
    tls: {fingerprint: config.proxmox.fingerprint, caFile: config.proxmox.caFile, insecure: config.proxmox.insecure},
    warn: opts.warn,
    debug: opts.debug,
    timeoutMs: opts.timeoutMs,
  })
}
