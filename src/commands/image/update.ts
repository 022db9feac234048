import {Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {loadConfig} from '../../config/load.js'
import {UserError} from '../../errors.js'
import {canPrompt} from '../../prompts/ask.js'
import type {ImageUpdateResult} from '../../steps/image-update.js'
import {loadSecrets} from '../../workspace/secrets.js'
import {findWorkspace} from '../../workspace/workspace.js'

export default class ImageUpdate extends BaseCommand<typeof ImageUpdate> {
  static override summary = 'Move to the newest dated build of the guest image and rebuild the template from it.'
  static override description = `Pins the newest dated build of the guest image (its immutable URL and the checksum from its own list) in autolabs.yaml, re-renders terraform/ and applies: Proxmox downloads the new image and the template is rebuilt from it, so VMs created from now on get the new image. Running VMs are full clones and keep their disks; a plan that would replace one is refused unless --allow-replace.

Shows what will be rebuilt before anything changes; --check stops there. With the newest build already pinned, nothing is done.`

  static override examples = [
    {description: 'See whether a newer image exists and what would be rebuilt:', command: '<%= config.bin %> <%= command.id %> --check'},
    {description: 'Update without questions:', command: '<%= config.bin %> <%= command.id %> --yes'},
  ]

  static override flags = {
    yes: Flags.boolean({char: 'y', summary: 'Apply without asking (never replaces a VM: that needs --allow-replace).', env: 'AUTOLABS_YES', default: false}),
    check: Flags.boolean({summary: 'Only show the newest build and what would be rebuilt; change nothing.', env: 'AUTOLABS_CHECK', default: false}),
    'allow-replace': Flags.boolean({
      summary: 'Also apply a plan that destroys or replaces a VM (its disks are lost).',
      env: 'AUTOLABS_ALLOW_REPLACE',
      default: false,
    }),
  }

  public async run(): Promise<ImageUpdateResult> {
    const f = this.flags
    const ws = findWorkspace({dir: f.dir})
    const {config, warnings} = await loadConfig(ws)
    for (const w of warnings) this.warnUser(`${w.path}: ${w.message}`)
    const secrets = await loadSecrets(ws)
    if (!secrets) throw new UserError(`No secrets in ${ws.secretsFile}.`, {suggestion: 'Run `autolabs init` first: it generates them.'})
    const [{updateImage}, {provisionWorkspace}] = await Promise.all([import('../../steps/image-update.js'), import('../../steps/provision.js')])
    const interactive = canPrompt() && !this.jsonEnabled()
    return updateImage({
      ws,
      config,
      secrets,
      check: f.check,
      log: (m) => this.info(m),
      provision: (updated) =>
        provisionWorkspace({
          workspace: ws,
          config: updated,
          secrets,
          yes: f.yes,
          allowReplace: f['allow-replace'],
          rebuildTemplate: true,
          interactive: interactive && !f.yes,
          log: (m) => this.info(m),
        }),
    })
  }
}
