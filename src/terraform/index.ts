import {readFile} from 'node:fs/promises'

import type {Config} from '../config/schema.js'
import {registerSecret} from '../util/redact.js'
import type {Workspace} from '../workspace/workspace.js'
import {Terraform, type TerraformOptions} from './terraform.js'
import {terraformTlsEnv} from './tls.js'

export {Terraform} from './terraform.js'

/**
 * The Terraform adapter for a workspace: runs in terraform/, logs to .autolabs/logs/, and
 * trusts the Proxmox certificate the way autolabs does (see tls.ts) without `insecure`.
 */
export async function terraformForWorkspace(ws: Workspace, config: Config, opts: Partial<TerraformOptions> = {}): Promise<Terraform> {
  await registerTfvarsSecrets(ws.tfvarsFile)
  const tlsEnv = await terraformTlsEnv(ws, config)
  return new Terraform({cwd: ws.terraformDir, logsDir: ws.logsDir, ...opts, env: {...tlsEnv, ...opts.env}})
}

/** Whatever command runs, the credentials in the tfvars file are masked in every log line. */
export async function registerTfvarsSecrets(file: string): Promise<void> {
  let vars: {proxmox_api_token?: string | null; proxmox_password?: string | null}
  try {
    vars = JSON.parse(await readFile(file, 'utf8')) as typeof vars
  } catch {
    return
  }
  if (vars.proxmox_api_token) {
    registerSecret(vars.proxmox_api_token)
    registerSecret(vars.proxmox_api_token.split('=').slice(1).join('='))
  }
  if (vars.proxmox_password) registerSecret(vars.proxmox_password)
}
