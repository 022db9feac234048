import {readFile} from 'node:fs/promises'
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

/** The workspace's .gitignore lines: nothing secret, stateful or bulky is ever committed. */
export const GITIGNORE = `# autolabs.yaml and terraform/*.tf are safe to commit; these are not.
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
# Encrypted workspace archives (autolabs workspace export): hand them over, do not commit them
*.tar.age
# A kubeconfig copied anywhere else
kubeconfig
*.kubeconfig
# Private keys kept elsewhere in the workspace (services.gitlab.tls.keyFile)
*.key
`

const BEGIN = '# >>> autolabs: managed block, rewritten by `autolabs init` >>>'
const END = '# <<< autolabs <<<'
/** What autolabs wrote before it kept a marked block: the whole file was its own. */
const LEGACY_GITIGNORE = GITIGNORE.replace('# autolabs.yaml and', '# autolabs workspace: autolabs.yaml and')

/**
 * autolabs' lines as a marked block inside the user's .gitignore: the block is replaced in
 * place (idempotent), every other line is kept; a file without the block gets it appended.
 */
export function mergeGitignore(existing: string | undefined): string {
  const block = `${BEGIN}\n${GITIGNORE}${END}\n`
  if (existing === undefined || existing === '' || existing === LEGACY_GITIGNORE) return block
  const start = existing.indexOf(BEGIN)
  const end = start < 0 ? -1 : existing.indexOf(END, start)
  if (start >= 0 && end >= 0) {
    const after = existing.slice(end + END.length).replace(/^\r?\n/, '')
    return existing.slice(0, start) + block + after
  }
  return `${existing}${existing.endsWith('\n') ? '' : '\n'}\n${block}`
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/** Every file init writes besides autolabs.yaml and the secrets. Pure apart from reading assets. */
export async function workspaceFiles(ws: Workspace, config: Config, secrets: Secrets): Promise<WorkspaceFile[]> {
  const tf = await renderTerraform(config, secrets)
  return [
    {path: ws.gitignoreFile, content: mergeGitignore(await readIfExists(ws.gitignoreFile)), mode: 0o644},
    {path: ws.stateFile, content: JSON.stringify({version: 1}, null, 2) + '\n', mode: 0o600, onlyIfMissing: true},
    {path: ws.knownHostsFile, content: '', mode: 0o600, onlyIfMissing: true},
    ...tf.map((f) => ({path: path.isAbsolute(f.path) ? f.path : path.join(ws.terraformDir, f.path), content: f.content, mode: f.mode})),
  ]
}
