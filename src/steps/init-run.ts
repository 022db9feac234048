import {UserError} from '../errors.js'
import type {AskContext} from '../prompts/ask.js'
import type {Workspace} from '../workspace/workspace.js'
import {type InitAnswersFlags, type InitResult, prepareWorkspace} from './init.js'

export interface RunInitOptions {
  ws: Workspace
  answers: InitAnswersFlags
  ctx: AskContext
  log: (message: string) => void
  warn: (message: string) => void
  json: boolean
}

/** The full init: workspace → Proxmox (preflight, token) → Terraform → readiness → stages. */
export async function runInit(opts: RunInitOptions): Promise<InitResult> {
  const {result} = await prepareWorkspace(opts.ws, opts.answers, opts.ctx, {dryRun: false})
  throw new UserError('The live installation is not wired yet in this build.', {
    suggestion: `The workspace was written to ${result.workspace}; use --dry-run to see the plan.`,
  })
}
