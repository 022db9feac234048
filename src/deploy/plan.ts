import {readdirSync, readFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {type Config, type Role, ROLES} from '../config/schema.js'
import {UsageError} from '../errors.js'
import {type StageDef, stagesFor, type StepDef} from '../steps/stages.js'

/** assets/stages/ of the installed package (dist/deploy/ and src/deploy/ are both two levels down). */
export const STAGES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../assets/stages')

export interface StageScripts {
  /** lib/common.sh, which every step's input hash includes. */
  lib: string
  /** Every file of lib/ by name (common.sh too): uploaded next to the stage scripts. */
  libs: Record<string, string>
  scripts: Record<string, string>
}

export function readStageScripts(dir = STAGES_DIR): StageScripts {
  const libs: Record<string, string> = {}
  for (const f of readdirSync(path.join(dir, 'lib')).filter((f) => f.endsWith('.sh')).sort()) libs[f] = readFileSync(path.join(dir, 'lib', f), 'utf8')
  const scripts: Record<string, string> = {}
  for (const role of ROLES) for (const s of stagesFor(role)) scripts[s.script] ??= readFileSync(path.join(dir, s.script), 'utf8')
  return {lib: libs['common.sh'], libs, scripts}
}

export interface PlannedStep {
  stage: StageDef
  step: StepDef
  /** "stage/step": the key in state.json and the id in results. */
  key: string
}

export interface PlannedVm {
  role: Role
  name: string
  steps: PlannedStep[]
}

/**
 * Which VMs and steps a deploy runs. `only` narrows it to VMs (by name "database-vm" or role
 * "database") and/or stages ("base", "k8s"…); a value naming both a role and a stage (gitlab,
 * database, k8s) selects that VM with all its stages. Pure.
 */
export function planDeploy(config: Config, only: string[] = []): PlannedVm[] {
  const vmNames = Object.fromEntries(ROLES.map((r) => [r, config.vms[r].name])) as Record<Role, string>
  const stageIds = new Set(ROLES.flatMap((r) => stagesFor(r, config).map((s) => s.id)))
  const wantRoles = new Set<Role>()
  const wantStages = new Set<string>()
  for (const raw of only.flatMap((o) => o.split(',')).map((o) => o.trim()).filter(Boolean)) {
    const role = ROLES.find((r) => r === raw || vmNames[r] === raw)
    if (role) wantRoles.add(role)
    else if (stageIds.has(raw)) wantStages.add(raw)
    else {
      throw new UsageError(`--only ${raw}: no VM or stage has that name.`, {
        suggestion: `Use a VM (${ROLES.map((r) => vmNames[r]).join(', ')}, or the roles ${ROLES.join(', ')}) or a stage (${[...stageIds].join(', ')}).`,
      })
    }
  }
  const plan: PlannedVm[] = []
  for (const role of ROLES) {
    if (wantRoles.size > 0 && !wantRoles.has(role)) continue
    const stages = stagesFor(role, config).filter((s) => wantStages.size === 0 || wantStages.has(s.id))
    if (stages.length === 0) continue
    plan.push({
      role,
      name: vmNames[role],
      steps: stages.flatMap((stage) => stage.steps.map((step) => ({stage, step, key: `${stage.id}/${step.id}`}))),
    })
  }
  if (plan.length === 0) throw new UsageError(`--only ${only.join(',')} selects no step.`, {suggestion: 'A stage runs only on its VM: e.g. --only database, or --only base.'})
  return plan
}
