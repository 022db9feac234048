import {existsSync} from 'node:fs'
import {rm} from 'node:fs/promises'
import path from 'node:path'

import {type Config, ROLES} from '../config/schema.js'
import {UsageError, UserError} from '../errors.js'
import type {UiEvent} from '../terraform/events.js'
import type {StateResource} from '../terraform/summary.js'
import type {Terraform} from '../terraform/terraform.js'
import {updateState} from '../workspace/state.js'
import type {Workspace} from '../workspace/workspace.js'
import {forgetVmHostKeys} from './forget-vms.js'

export type DestroyEvent =
  | {type: 'phase'; phase: 'version' | 'init' | 'state' | 'destroy' | 'cleanup'; message: string}
  | {type: 'resources'; resources: StateResource[]}
  | {type: 'terraform'; event: UiEvent}

export type TerraformDestroyPort = Pick<Terraform, 'version' | 'init' | 'state' | 'destroy'>

export interface DestroyOptions {
  workspace: Workspace
  config: Config
  terraform: TerraformDestroyPort
  /** --yes: no confirmation. */
  yes: boolean
  /** --purge: also delete the secrets and the backups. */
  purge: boolean
  /** Asks the user to type the environment's name; absent without a terminal. */
  confirmName?: (expected: string, resources: StateResource[]) => Promise<string>
  onEvent?: (e: DestroyEvent) => void
}

export interface DestroyResult {
  environment: string
  destroyed: Array<{address: string; name?: string}>
  forgottenHostKeys: number
  removed: string[]
  kept: string[]
}

/**
 * `autolabs destroy`: shows what will be destroyed, asks for the environment's name (unless
 * --yes), runs `terraform destroy`, then forgets the VMs' SSH host keys and the deployment
 * state. Secrets and backups stay unless --purge: the secrets are what restores a backup.
 */
export async function destroyEnvironment(opts: DestroyOptions): Promise<DestroyResult> {
  const {workspace: ws, config, terraform} = opts
  const emit = (e: DestroyEvent) => opts.onEvent?.(e)

  // No state file: Terraform never created anything here (local state is the only backend
  // autolabs renders), so there is nothing to destroy and no reason to need the provider.
  let resources: StateResource[] = []
  if (existsSync(path.join(ws.terraformDir, 'terraform.tfstate'))) {
    emit({type: 'phase', phase: 'version', message: 'Checking Terraform'})
    await terraform.version()
    emit({type: 'phase', phase: 'init', message: 'terraform init'})
    await terraform.init()
    emit({type: 'phase', phase: 'state', message: 'Reading what Terraform manages'})
    resources = await terraform.state()
  }
  emit({type: 'resources', resources})

  if (resources.length > 0 && !opts.yes) {
    if (!opts.confirmName) {
      throw new UsageError(`Destroying "${config.name}" needs a confirmation and there is no terminal to ask on.`, {
        suggestion: 'Pass --yes (or set AUTOLABS_YES=true) to destroy without asking.',
      })
    }
    const typed = (await opts.confirmName(config.name, resources)).trim()
    if (typed !== config.name) throw new UserError(`Not destroyed: "${typed}" is not the environment's name "${config.name}". Nothing was changed.`)
  }

  if (resources.length > 0) {
    emit({type: 'phase', phase: 'destroy', message: 'terraform destroy'})
    await terraform.destroy((event) => emit({type: 'terraform', event}))
  }

  emit({type: 'phase', phase: 'cleanup', message: 'Forgetting host keys and deployment state'})
  const {forgotten} = await forgetVmHostKeys(ws, config, ROLES)
  await updateState(ws, (s) => {
    delete s.vms
    delete s.provisionedAt
    delete s.steps
  })

  const removed: string[] = []
  const kept: string[] = []
  for (const p of [ws.secretsFile, ws.backupsDir]) {
    if (!existsSync(p)) continue
    if (opts.purge) {
      await rm(p, {recursive: true, force: true})
      removed.push(p)
    } else kept.push(p)
  }
  return {
    environment: config.name,
    destroyed: resources.map((r) => ({address: r.address, ...(r.name ? {name: r.name} : {})})),
    forgottenHostKeys: forgotten,
    removed,
    kept,
  }
}
