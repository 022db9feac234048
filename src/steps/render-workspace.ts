import path from 'node:path'

import type {Config} from '../config/schema.js'
import {renderTerraform} from '../render/terraform.js'
import type {Secrets} from '../workspace/secrets.js'
import type {Workspace} from '../workspace/workspace.js'

export interface WorkspaceFile {
  path: string
  content: string
  mode: number
  /** Bookkeeping files are created once and then owned by later commands. */
  onlyIfMissing?: boolean
}

/** The workspace's .gitignore: nothing secret, stateful or bulky is ever committed. */
export const GITIGNORE = `# autolabs workspace: autolabs.yaml and terraform/*.tf are safe to commit; these are not.
# Secrets, deployment state, logs, SSH host keys and the kubeconfig
.autolabs/
# Terraform values (hold the API token), state and plans
terraform/terraform.tfvars
terraform/terraform.tfvars.json
terraform/*.tfstate
terraform/*.tfstate.*
terraform/*.tfplan
terraform/.terraform/
terraform/.terraform.lock.hcl.bak
# Temp files of an interrupted write (autolabs removes them on its next run)
*.autolabs-tmp
crash.log
# Backups (database dumps, GitLab secrets)
backups/
# A kubeconfig copied anywhere else
kubeconfig
*.kubeconfig
# Private keys kept elsewhere in the workspace (services.gitlab.tls.keyFile)
*.key
`

/** Every file init writes besides autolabs.yaml and the secrets. Pure apart from reading assets. */
export async function workspaceFiles(ws: Workspace, config: Config, secrets: Secrets): Promise<WorkspaceFile[]> {
  const tf = await renderTerraform(config, secrets)
  return [
    {path: ws.gitignoreFile, content: GITIGNORE, mode: 0o644},
    {path: ws.stateFile, content: JSON.stringify({version: 1}, null, 2) + '\n', mode: 0o600, onlyIfMissing: true},
    {path: ws.knownHostsFile, content: '', mode: 0o600, onlyIfMissing: true},
    ...tf.map((f) => ({path: path.isAbsolute(f.path) ? f.path : path.join(ws.terraformDir, f.path), content: f.content, mode: f.mode})),
  ]
}
