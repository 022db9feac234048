import type {Config} from '../config/schema.js'
import {UserError} from '../errors.js'
import {ensureTerraformAccess, terraformStorages} from './access.js'
import type {ProxmoxClient} from './client.js'

export interface TerraformCredentials {
  tokenId: string
  secret: string
  pveMajor: number
  /** What changed on the Proxmox side (empty on a re-run). */
  changes: string[]
  warnings: string[]
  /** True when `secret` is new and must be saved to .autolabs/secrets.yaml now. */
  secretIsNew: boolean
}

/**
 * Stage 1's Proxmox part for `init`: the least-privilege token for Terraform, with the secret
 * autolabs already holds (secrets.yaml) or a new one. A token that exists on the server while
 * the secret is lost is re-created only with `rotateToken` — silently replacing it would break
 * any other copy of the old secret.
 */
export async function prepareTerraformToken(
  client: ProxmoxClient,
  config: Config,
  opts: {storedTokenId?: string; storedSecret?: string; rotateToken?: boolean; tokenName?: string; onSecret?: (tokenId: string, secret: string) => Promise<void>} = {},
): Promise<TerraformCredentials> {
  const {major} = await client.version()
  const tokenName = opts.tokenName ?? 'terraform'
  const tokenId = `${config.proxmox.terraformUser}!${tokenName}`
  const stored = opts.storedTokenId === tokenId ? opts.storedSecret : undefined
  const access = await ensureTerraformAccess(client, {
    user: config.proxmox.terraformUser,
    role: config.proxmox.terraformRole,
    tokenName,
    pveMajor: major,
    rotateToken: opts.rotateToken,
    storages: terraformStorages(config),
    onSecret: opts.onSecret && ((secret) => opts.onSecret!(tokenId, secret)),
  })
  const secret = access.secret ?? stored
  if (!secret)
    throw new UserError(`The API token ${tokenId} exists on Proxmox, but its secret is not in .autolabs/secrets.yaml (Proxmox shows a secret only once).`, {
      suggestion: 'Run init again with --rotate-token to re-create the token (the old secret stops working), or restore secrets.yaml from your backup.',
    })
  return {tokenId, secret, pveMajor: major, changes: access.changes, warnings: access.warnings, secretIsNew: Boolean(access.secret)}
}
