import {existsSync} from 'node:fs'

import {UserError} from '../errors.js'
import {loadState} from '../workspace/state.js'
import type {Workspace} from '../workspace/workspace.js'

/**
 * Day-two commands on a workspace whose VMs were never created (init ran as a dry run, or
 * stopped before Terraform) say so at once, instead of trying SSH to the planned addresses.
 * init always writes state.json, and provisioning records the VMs in it; a workspace without
 * state.json (a clone of the Git repository: .autolabs/ is not committed) is not judged.
 */
export async function assertVmsCreated(ws: Workspace): Promise<void> {
  if (!existsSync(ws.stateFile)) return
  const state = await loadState(ws)
  if (state.provisionedAt || Object.keys(state.vms ?? {}).length > 0 || Object.keys(state.steps ?? {}).length > 0) return
  throw new UserError(`The workspace ${ws.root} has no VMs yet (planned only, or destroyed): run \`autolabs init\` there to create them.`)
}
