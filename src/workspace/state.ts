import {UserError} from '../errors.js'
import type {Role} from '../config/schema.js'
import {ensureDir, READ_LIMITS, readTextFile, writeFileAtomic} from './fs.js'
import type {Workspace} from './workspace.js'

/** One finished deployment step: the hash of its inputs says whether it must run again. */
export interface StepRecord {
  inputHash: string
  finishedAt: string
  durationMs?: number
}

export interface VmRecord {
  name: string
  vmid: number
  ip: string
  node?: string
}

/** .autolabs/state.json: what autolabs has done, so a re-run resumes instead of redoing. */
export interface State {
  version: 1
  /** From `terraform output -json` after provisioning. */
  vms?: Partial<Record<Role, VmRecord>>
  provisionedAt?: string
  /** steps[vm]["stage/step"] */
  steps?: Record<string, Record<string, StepRecord>>
  /** database → the user that owns it on the server, as the databases step made it (config/migrate.ts). */
  databaseUsers?: Record<string, string>
  [key: string]: unknown
}

export async function loadState(ws: Workspace): Promise<State> {
  const text = await readTextFile(ws.stateFile, {what: 'The deployment state', maxBytes: READ_LIMITS.state, optional: true, noFollow: true})
  if (text === undefined) return {version: 1}
  try {
    const data = JSON.parse(text) as State
    if (data?.version !== 1) throw new Error('unknown version')
    return data
  } catch (error) {
    throw new UserError(`${ws.stateFile} cannot be read: ${(error as Error).message}`, {
      suggestion: 'Move it aside to start the deployment bookkeeping afresh (steps re-check themselves, so nothing is done twice).',
    })
  }
}

let queue: Promise<unknown> = Promise.resolve()

/** Read-modify-write under an in-process lock: concurrent VM pipelines record steps safely. */
export function updateState(ws: Workspace, mutate: (s: State) => void | State): Promise<State> {
  const run = queue.then(async () => {
    const state = await loadState(ws)
    const next = mutate(state) ?? state
    await ensureDir(ws.stateDir, 0o700)
    await writeFileAtomic(ws.stateFile, JSON.stringify(next, null, 2) + '\n', 0o600)
    return next
  })
  queue = run.catch(() => undefined)
  return run
}
