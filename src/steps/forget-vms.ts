import {type Config, type Role} from '../config/schema.js'
import {forgetHost} from '../ssh/known-hosts.js'
import {loadState} from '../workspace/state.js'
import type {Workspace} from '../workspace/workspace.js'

/**
 * Forgets the pinned SSH host keys of the VMs of `roles`: a VM that is destroyed or replaced
 * comes back, if at all, as a new machine with new keys. A VM is known by the names and
 * addresses in the workspace state (what Terraform made) and in the config (what it plans),
 * plus `extraNames` (e.g. the name in Terraform's plan). Returns the names (the deployment
 * records are kept per VM name) and how many known_hosts lines were removed.
 */
export async function forgetVmHostKeys(ws: Workspace, config: Config, roles: readonly Role[], extraNames: string[] = []): Promise<{names: Set<string>; forgotten: number}> {
  const state = await loadState(ws)
  const names = new Set(extraNames)
  const hosts = new Set<string>()
  for (const role of roles) {
    const made = state.vms?.[role]
    for (const n of [made?.name, config.vms[role].name]) if (n) names.add(n)
    for (const ip of [made?.ip, config.network.vms[role].ip]) if (ip) hosts.add(ip)
  }
  let forgotten = 0
  for (const h of [...names, ...hosts]) forgotten += await forgetHost(ws.knownHostsFile, h)
  return {names, forgotten}
}
