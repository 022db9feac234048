/**
 * What a plan will do, from `terraform show -json <planfile>`: counts and, per resource, the
 * action and a human name (the VM's name where there is one). Pure.
 */

export type PlanAction = 'create' | 'update' | 'replace' | 'delete' | 'read' | 'no-op'

export interface PlannedResource {
  address: string
  type: string
  action: PlanAction
  /** The VM or file name from the planned values, when known. */
  name?: string
  /** Terraform's action_reason, e.g. replace_because_tainted, replace_because_cannot_update. */
  reason?: string
}

export interface PlanSummary {
  add: number
  change: number
  destroy: number
  /** Resources replaced count in both add and destroy, as Terraform counts them. */
  replace: number
  resources: PlannedResource[]
}

type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

function actionOf(actions: string[]): PlanAction {
  const a = [...actions].sort().join(',')
  if (a === 'create') return 'create'
  if (a === 'delete') return 'delete'
  if (a === 'update') return 'update'
  if (a === 'create,delete') return 'replace'
  if (a === 'read') return 'read'
  return 'no-op'
}

function nameOf(values: Json | null | undefined): string | undefined {
  if (!values || typeof values !== 'object') return undefined
  if (typeof values.name === 'string' && values.name) return values.name
  if (typeof values.file_name === 'string' && values.file_name) return values.file_name
  const raw = values.source_raw?.[0]?.file_name
  return typeof raw === 'string' ? raw : undefined
}

export function summarizePlan(plan: Json): PlanSummary {
  const resources: PlannedResource[] = []
  for (const rc of (plan.resource_changes ?? []) as Json[]) {
    if (rc.mode === 'data') continue
    const action = actionOf((rc.change?.actions ?? []) as string[])
    if (action === 'no-op' || action === 'read') continue
    const name = nameOf(action === 'delete' ? rc.change?.before : rc.change?.after) ?? nameOf(rc.change?.before)
    resources.push({address: String(rc.address), type: String(rc.type), action, ...(name ? {name} : {}), ...(rc.action_reason ? {reason: String(rc.action_reason)} : {})})
  }
  const count = (a: PlanAction) => resources.filter((r) => r.action === a).length
  const replace = count('replace')
  return {add: count('create') + replace, change: count('update'), destroy: count('delete') + replace, replace, resources}
}

const VERB: Record<PlanAction, string> = {create: 'create', update: 'update in place', replace: 'REPLACE (destroy, then create)', delete: 'DESTROY', read: 'read', 'no-op': 'keep'}

/** Plan: 4 to add, 0 to change, 0 to destroy. + one line per resource. */
export function formatPlanSummary(s: PlanSummary): string {
  const head = `Plan: ${s.add} to add, ${s.change} to change, ${s.destroy} to destroy.`
  if (s.resources.length === 0) return 'No changes: the infrastructure matches the configuration.'
  const lines = s.resources.map((r) => `  ${r.action === 'create' ? '+' : r.action === 'update' ? '~' : r.action === 'replace' ? '-/+' : '-'} ${r.address}${r.name ? ` (${r.name})` : ''}: ${VERB[r.action]}`)
  return [head, ...lines].join('\n')
}

/** Resources in a state (`terraform show -json` without a plan file). */
export interface StateResource {
  address: string
  type: string
  name?: string
  values: Json
}

export function stateResources(state: Json): StateResource[] {
  const out: StateResource[] = []
  const walk = (mod: Json | undefined) => {
    if (!mod) return
    for (const r of (mod.resources ?? []) as Json[]) {
      if (r.mode === 'data') continue
      const name = nameOf(r.values)
      out.push({address: String(r.address), type: String(r.type), values: (r.values ?? {}) as Json, ...(name ? {name} : {})})
    }
    for (const c of (mod.child_modules ?? []) as Json[]) walk(c)
  }
  walk(state.values?.root_module)
  return out
}

/**
 * VMs the plan would destroy or replace, the template among them (their disks and data go with
 * them; every VM created later is cloned from the template). A VM left half-made by a failed
 * apply (tainted) is not counted: replacing it is how a re-run resumes.
 */
export function vmsAtRisk(s: PlanSummary): PlannedResource[] {
  return s.resources.filter(
    (r) => (r.action === 'delete' || r.action === 'replace') && r.type === 'proxmox_virtual_environment_vm' && r.reason !== 'replace_because_tainted',
  )
}
