import type {Config} from '../config/schema.js'
import type {Workspace} from '../workspace/workspace.js'
import {Terraform, type TerraformOptions} from './terraform.js'
import {terraformTlsEnv} from './tls.js'

export {Terraform} from './terraform.js'

/**
 * The Terraform adapter for a workspace: runs in terraform/, logs to .autolabs/logs/, and
 * trusts the Proxmox certificate the way autolabs does (see tls.ts) without `insecure`.
 */
export async function terraformForWorkspace(ws: Workspace, config: Config, opts: Partial<TerraformOptions> = {}): Promise<Terraform> {
  const tlsEnv = await terraformTlsEnv(ws, config)
  return new Terraform({cwd: ws.terraformDir, logsDir: ws.logsDir, ...opts, env: {...tlsEnv, ...opts.env}})
}
