import {Flags} from '@oclif/core'

import {BaseCommand, terraformFlag} from '../base-command.js'
import {loadConfig} from '../config/load.js'
import {canPrompt} from '../prompts/ask.js'
import {progressLine} from '../terraform/events.js'
import type {DestroyResult} from '../steps/destroy.js'
import {findWorkspace} from '../workspace/workspace.js'

export default class Destroy extends BaseCommand<typeof Destroy> {
  static override summary = 'Destroy the VMs and the template with terraform destroy, after typing the environment name.'
  static override description = `Shows what Terraform manages, asks you to type the environment's name (autolabs.yaml "name"), runs terraform destroy, then forgets the VMs' SSH host keys (.autolabs/known_hosts) and the deployment state (.autolabs/state.json).

Secrets (.autolabs/secrets.yaml) and backups (backups/) are kept, so a backup can still be restored into a new environment; --purge deletes them too. Without a terminal, --yes is required.`

  static override examples = [
    {description: 'Interactive (asks for the environment name):', command: '<%= config.bin %> <%= command.id %>'},
    {description: 'In a script, machine-readable:', command: '<%= config.bin %> <%= command.id %> --yes --json'},
  ]

  static override flags = {
    yes: Flags.boolean({char: 'y', summary: 'Do not ask for the environment name.', env: 'AUTOLABS_YES', default: false}),
    purge: Flags.boolean({summary: 'Also delete .autolabs/secrets.yaml and backups/ (cannot be undone).', env: 'AUTOLABS_PURGE', default: false}),
    terraform: terraformFlag,
  }

  public async run(): Promise<DestroyResult> {
    const f = this.flags
    const ws = findWorkspace({dir: f.dir})
    const {config} = await loadConfig(ws)
    const [{terraformForWorkspace}, {destroyEnvironment}] = await Promise.all([import('../terraform/index.js'), import('../steps/destroy.js')])
    const terraform = await terraformForWorkspace(ws, config, {bin: f.terraform, onInterrupt: (n) => this.info(n === 1 ? 'Stopping Terraform gracefully (it saves its state)… press Ctrl+C again to force.' : 'Forcing Terraform to stop.')})
    const interactive = canPrompt() && !this.jsonEnabled()
    const result = await destroyEnvironment({
      workspace: ws,
      config,
      terraform,
      yes: f.yes,
      purge: f.purge,
      confirmName: interactive
        ? async (expected) => {
            const {input} = await import('@inquirer/prompts')
            return input({message: `Type the environment name "${expected}" to destroy it:`}, {output: process.stderr})
          }
        : undefined,
      onEvent: (e) => {
        if (e.type === 'resources') {
          if (e.resources.length === 0) this.info('Terraform manages nothing in this workspace: nothing to destroy.')
          else this.info(`Will destroy ${e.resources.length} resources:\n${e.resources.map((r) => `  - ${r.address}${r.name ? ` (${r.name})` : ''}`).join('\n')}`)
        } else if (e.type === 'terraform') {
          const line = progressLine(e.event)
          if (line) this.info(`  ${line}`)
        } else if (f.verbose) this.info(e.message)
      },
    })
    this.info(
      `Destroyed "${result.environment}": ${result.destroyed.length} resources; forgot ${result.forgottenHostKeys} host key line(s).` +
        (result.kept.length > 0 ? `\nKept (use --purge to delete): ${result.kept.join(', ')}` : ''),
    )
    return result
  }
}
