import {readFile, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {type Config, type Role, ROLES} from '../config/schema.js'
import {UsageError, UserError} from '../errors.js'
import {assertProvisionable, type TerraformVariables} from '../render/terraform.js'
import type {UiEvent} from '../terraform/events.js'
import {formatPlanSummary, type PlanSummary, vmsAtRisk} from '../terraform/summary.js'
import type {Terraform, TerraformOutput} from '../terraform/terraform.js'
import type {Secrets} from '../workspace/secrets.js'
import {updateState, type VmRecord} from '../workspace/state.js'
import type {Workspace} from '../workspace/workspace.js'
import {forgetVmHostKeys} from './forget-vms.js'

export const PLAN_FILE = 'autolabs.tfplan'
const TEMPLATE_ADDRESS = 'proxmox_virtual_environment_vm.template'

export type ProvisionEvent =
  | {type: 'phase'; phase: 'version' | 'init' | 'plan' | 'apply' | 'output'; message: string}
  | {type: 'plan'; summary: PlanSummary; text: string}
  | {type: 'terraform'; event: UiEvent}
  | {type: 'warning'; message: string}

/** The narrow port provisioning needs (the real adapter is src/terraform/terraform.ts). */
export type TerraformPort = Pick<Terraform, 'version' | 'init' | 'plan' | 'apply' | 'output'>

export interface ProvisionOptions {
  workspace: Workspace
  config: Config
  secrets?: Secrets
  terraform: TerraformPort
  /** --yes: apply without asking. */
  yes: boolean
  /**
   * --allow-replace: apply a plan that destroys or replaces a VM or the template. Without it such
   * a plan is refused, with --yes and at the prompt alike: one Enter must never cost a VM's disks.
   */
  allowReplace?: boolean
  /** The template may be rebuilt (`autolabs image update`: that is the point); the VMs still need allowReplace. */
  rebuildTemplate?: boolean
  /** Asks the user to accept the plan (a TTY prompt); absent without a terminal. */
  confirm?: (summary: PlanSummary, text: string) => Promise<boolean>
  onEvent?: (e: ProvisionEvent) => void
}

export interface ProvisionResult {
  terraformVersion: string
  plan: PlanSummary
  applied: boolean
  vms: VmRecord[]
}

/** `terraform output -json` → one record per VM, in role order. */
export function vmsFromOutputs(outputs: Record<string, TerraformOutput>, config: Config): Record<Role, VmRecord> {
  const value = outputs.vms?.value as Partial<Record<Role, {name?: string; vmid?: number; ip?: string; node?: string}>> | undefined
  if (!value) {
    throw new UserError('Terraform has no "vms" output: terraform/ does not look like the configuration autolabs renders.', {
      suggestion: 'Run `autolabs init` again to re-render terraform/ (your edits to the .tf files would be replaced), then provision again.',
    })
  }
  const out = {} as Record<Role, VmRecord>
  for (const role of ROLES) {
    const v = value[role]
    if (!v?.name || typeof v.vmid !== 'number' || !v.ip) throw new UserError(`Terraform's "vms" output lacks ${role} (name, vmid, ip).`, {suggestion: 'Run `autolabs init` again to re-render terraform/.'})
    out[role] = {name: v.name, vmid: v.vmid, ip: v.ip, node: v.node ?? config.proxmox.node}
  }
  return out
}

/**
 * A VM the plan deletes or replaces comes back, if at all, as a new machine with new SSH host
 * keys: its pinned key and its deployment record go before the apply (as `destroy` drops them),
 * so readiness records the new key instead of refusing it as changed. Before, not after: an
 * apply that stops midway has already deleted the VM, and the next plan no longer says so.
 */
async function forgetReplacedVms(ws: Workspace, config: Config, plan: PlanSummary): Promise<void> {
  const gone = plan.resources.filter((r) => r.type === 'proxmox_virtual_environment_vm' && r.address !== TEMPLATE_ADDRESS && (r.action === 'delete' || r.action === 'replace'))
  if (gone.length === 0) return
  const roles = ROLES.filter((x) => gone.some((r) => r.address === `proxmox_virtual_environment_vm.${x}`))
  const {names} = await forgetVmHostKeys(ws, config, roles, gone.flatMap((r) => (r.name ? [r.name] : [])))
  await updateState(ws, (s) => {
    for (const n of names) delete s.steps?.[n]
  })
}

/**
 * Stage 2 of the design document: terraform version check → init → plan → summary and
 * confirmation (skipped with --yes) → apply with live events → output → workspace state.
 * Resumable: Terraform keeps its state, so after a failure or Ctrl+C running this again
 * plans only what is missing. The plan file (it holds the variable values) is removed after use.
 */
export async function provision(opts: ProvisionOptions): Promise<ProvisionResult> {
  const {workspace: ws, config, terraform} = opts
  const emit = (e: ProvisionEvent) => opts.onEvent?.(e)

  emit({type: 'phase', phase: 'version', message: 'Checking Terraform'})
  const {version} = await terraform.version()

  let vars: TerraformVariables
  try {
    vars = JSON.parse(await readFile(ws.tfvarsFile, 'utf8')) as TerraformVariables
  } catch (error) {
    throw new UserError(`Cannot read ${ws.tfvarsFile}: ${(error as Error).message}`, {
      suggestion: 'Run `autolabs init` to render the Terraform files into the workspace.',
      cause: error,
    })
  }
  assertProvisionable(vars, config)
  if (vars.proxmox_insecure) {
    emit({type: 'warning', message: 'TLS verification of the Proxmox API is OFF for Terraform (proxmox.insecure: true): anyone on the path can read the API token. Pin the certificate instead (proxmox.fingerprint).'})
  }

  emit({type: 'phase', phase: 'init', message: 'terraform init (bpg/proxmox provider)'})
  await terraform.init()

  const planFile = path.join(ws.terraformDir, PLAN_FILE)
  try {
    // Terraform truncates an existing plan file and keeps its mode: created 0600 here, the
    // plan (which holds the variable values, the token among them) is never world-readable.
    await rm(planFile, {force: true})
    await writeFile(planFile, '', {mode: 0o600})
    emit({type: 'phase', phase: 'plan', message: 'terraform plan'})
    const plan = await terraform.plan(PLAN_FILE, {onEvent: (event) => emit({type: 'terraform', event})})
    const text = formatPlanSummary(plan)
    emit({type: 'plan', summary: plan, text})

    let applied = false
    if (plan.resources.length > 0) {
      const atRisk = vmsAtRisk(plan).filter((r) => !(opts.rebuildTemplate && r.address === TEMPLATE_ADDRESS))
      if (atRisk.length > 0 && !opts.allowReplace) {
        throw new UserError(`Not applied: the plan would destroy or replace ${atRisk.map((r) => r.name ?? r.address).join(', ')}, and with it the VM's disks.`, {
          suggestion:
            'This follows a changed VMID, node, image or clone setting in autolabs.yaml (the plan above names each resource). Undo that change; or, to lose those disks on purpose, run again with --allow-replace (--yes alone is not enough); or use `autolabs destroy` to start over.',
          exitCode: 2,
        })
      }
      if (!opts.yes) {
        if (!opts.confirm) {
          throw new UsageError('Terraform wants to change the infrastructure and there is no terminal to confirm it.', {
            suggestion: 'Review the plan above and pass --yes (or set AUTOLABS_YES=true) to apply it.',
          })
        }
        if (!(await opts.confirm(plan, text))) throw new UserError('Not applied: the plan was declined. Nothing was changed.', {suggestion: 'Run the command again when you want to apply it.'})
      }
      emit({type: 'phase', phase: 'apply', message: 'terraform apply'})
      await forgetReplacedVms(ws, config, plan)
      await terraform.apply(PLAN_FILE, (event) => emit({type: 'terraform', event}))
      applied = true
    }

    emit({type: 'phase', phase: 'output', message: 'terraform output'})
    const byRole = vmsFromOutputs(await terraform.output(), config)
    await updateState(ws, (s) => {
      s.vms = byRole
      if (applied || !s.provisionedAt) s.provisionedAt = new Date().toISOString()
    })
    return {terraformVersion: version, plan, applied, vms: ROLES.map((r) => byRole[r])}
  } finally {
    await rm(planFile, {force: true})
  }
}

export interface ProvisionWorkspaceOptions {
  workspace: Workspace
  config: Config
  secrets?: Secrets
  yes: boolean
  /** See ProvisionOptions.allowReplace. */
  allowReplace?: boolean
  /** See ProvisionOptions.rebuildTemplate. */
  rebuildTemplate?: boolean
  /** A terminal to ask on (and no --json). */
  interactive: boolean
  /** Chatter (stderr). */
  log: (message: string) => void
  /** The Terraform or OpenTofu executable (default: resolveTerraformBin()). */
  terraformBin?: string
}

/**
 * provision() with the real adapter and a plain-text display: the Terraform wrapper for the
 * workspace (TLS trust included), the plan summary, a confirmation prompt on a terminal, one
 * line per resource event. What `init` and `deploy` call.
 */
export async function provisionWorkspace(opts: ProvisionWorkspaceOptions): Promise<ProvisionResult> {
  const [{terraformForWorkspace}, {progressLine}] = await Promise.all([import('../terraform/index.js'), import('../terraform/events.js')])
  const terraform = await terraformForWorkspace(opts.workspace, opts.config, {
    bin: opts.terraformBin,
    onInterrupt: (n) => opts.log(n === 1 ? 'Stopping Terraform gracefully (it finishes the running step and saves its state)… Ctrl+C again to force.' : 'Forcing Terraform to stop.'),
  })
  // On a terminal the apply is shown as a live task list (one task per resource); elsewhere
  // as one line per event, which is also what logs and CI show.
  const live = opts.interactive && Boolean(process.stderr.isTTY)
  const {applyTaskList} = live ? await import('../terraform/task-list.js') : {applyTaskList: undefined}
  let planned: PlanSummary | undefined
  let list: ReturnType<NonNullable<typeof applyTaskList>> | undefined
  try {
    const result = await provision({
      workspace: opts.workspace,
      config: opts.config,
      secrets: opts.secrets,
      terraform,
      yes: opts.yes,
      allowReplace: opts.allowReplace,
      rebuildTemplate: opts.rebuildTemplate,
      confirm: opts.interactive
        ? async () => {
            const {confirm} = await import('@inquirer/prompts')
            return confirm({message: 'Apply this plan?', default: true}, {output: process.stderr})
          }
        : undefined,
      onEvent: (e) => {
        if (e.type === 'phase' && e.phase === 'apply' && applyTaskList && planned) {
          list = applyTaskList(planned.resources.filter((r) => r.action !== 'no-op' && r.action !== 'read'))
        } else if (e.type === 'phase') opts.log(`${e.message}…`)
        else if (e.type === 'warning') opts.log(`Warning: ${e.message}`)
        else if (e.type === 'plan') {
          planned = e.summary
          opts.log(e.text)
        } else if (list) list.onEvent(e.event)
        else {
          const line = progressLine(e.event)
          if (line) opts.log(`  ${line}`)
        }
      },
    })
    await list?.finish()
    return result
  } catch (error) {
    await list?.finish(error as Error)
    throw error
  }
}
