import {Args} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {loadConfig} from '../../config/load.js'
import {ROLES} from '../../config/schema.js'
import {UsageError} from '../../errors.js'
import {JUMP_HOST_NAME} from '../../ssh/jump-spec.js'
import {forgetHost} from '../../ssh/known-hosts.js'
import {findWorkspace} from '../../workspace/workspace.js'

export interface ForgetResult {
  vm: string
  host: string
  removed: number
}

export default class HostsForget extends BaseCommand<typeof HostsForget> {
  static override summary = "Forget a VM's pinned SSH host key (after re-creating the VM on purpose)."
  static override description =
    "autolabs pins each VM's SSH host key in .autolabs/known_hosts on first contact and refuses a changed key. When you re-created a VM yourself, its new key is expected: forget the old one, and the next connection records the new key."
  static override examples = ['<%= config.bin %> <%= command.id %> database-vm', '<%= config.bin %> <%= command.id %> k8s']
  static override args = {
    vm: Args.string({description: 'VM name (gitlab-vm), role (gitlab, database, k8s), address, or jump-host.', required: true}),
  }

  public async run(): Promise<ForgetResult> {
    const {args} = await this.parse(HostsForget)
    const ws = findWorkspace({dir: this.flags.dir})
    const {config} = await loadConfig(ws)
    if (args.vm === JUMP_HOST_NAME) {
      // The jump host's key (ssh.jumpHost, or the Proxmox node) is recorded under this name.
      const removed = await forgetHost(ws.knownHostsFile, JUMP_HOST_NAME)
      this.info(removed > 0 ? `Forgot ${removed} key(s) of the jump host; the next connection records the new key.` : 'No key of the jump host was recorded.')
      return {vm: JUMP_HOST_NAME, host: '', removed}
    }
    const role = ROLES.find((r) => r === args.vm || config.vms[r].name === args.vm || config.network.vms[r].ip === args.vm)
    if (!role && !/^\d+\.\d+\.\d+\.\d+$/.test(args.vm))
      throw new UsageError(`Unknown VM "${args.vm}".`, {suggestion: `Use one of: ${ROLES.map((r) => config.vms[r].name).join(', ')} (or an address).`})
    const name = role ? config.vms[role].name : args.vm
    const host = role ? config.network.vms[role].ip : args.vm
    const removed = (await forgetHost(ws.knownHostsFile, name)) + (await forgetHost(ws.knownHostsFile, host))
    this.info(removed > 0 ? `Forgot ${removed} key(s) of ${name} (${host}); the next connection records the new key.` : `No key of ${name} (${host}) was recorded.`)
    return {vm: name, host, removed}
  }
}
