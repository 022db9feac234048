import {Flags} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {loadConfig} from '../config/load.js'
import type {DeployResult} from '../deploy/run.js'
import {UserError} from '../errors.js'
import {canPrompt} from '../prompts/ask.js'
import {sshFlags, sshOptions} from '../ssh/flags.js'
import {redact} from '../util/redact.js'
import {loadSecrets} from '../workspace/secrets.js'
import {assertVmsCreated} from '../steps/vms-created.js'
import {findWorkspace} from '../workspace/workspace.js'

export default class Deploy extends BaseCommand<typeof Deploy> {
  static override summary = 'Run the deployment stages on the VMs over SSH; resumes where it stopped.'
  static override description = `Runs the stages on the three VMs at once (base on every VM, then database, gitlab or k8s), the steps of each VM in order. Every step checks on the VM whether its work is already done and acts only if not; finished steps are recorded in .autolabs/state.json with a hash of their inputs, so an interrupted deploy resumes and a changed setting re-runs only the steps it affects.

A failure on one VM does not stop the others; the summary names the failed step, why, and its log (.autolabs/logs/<vm>/<stage>-<step>.log). Exit code 1 when a step failed.

Ctrl+C (or SIGTERM/SIGHUP) lets the running steps finish, starts no new one and says where it stopped (exit 130/143/129); a second one stops the running steps on the VMs. Run deploy again to continue.`

  static override examples = [
    {description: 'Deploy everything (or resume):', command: '<%= config.bin %> <%= command.id %>'},
    {description: 'Only the database VM:', command: '<%= config.bin %> <%= command.id %> --only database-vm'},
    {description: 'Re-run the base stage on every VM, even where it is done:', command: '<%= config.bin %> <%= command.id %> --only base --force'},
  ]

  static override flags = {
    only: Flags.string({
      summary: 'Limit to VMs (database-vm or database) and/or stages (base, database, gitlab, k8s); comma-separated or repeated.',
      env: 'AUTOLABS_ONLY',
      multiple: true,
    }),
    force: Flags.boolean({summary: "Run every selected step's action even where its check says it is done.", env: 'AUTOLABS_FORCE', default: false}),
    ...sshFlags,
  }

  public async run(): Promise<DeployResult> {
    const ws = findWorkspace({dir: this.flags.dir})
    const {config, warnings} = await loadConfig(ws)
    for (const w of warnings) this.warnUser(`${w.path}: ${w.message}`)
    await assertVmsCreated(ws)
    const secrets = await loadSecrets(ws)
    if (!secrets) {
      throw new UserError(`No secrets in ${ws.secretsFile}.`, {suggestion: 'Run `autolabs init` first: it generates them.'})
    }
    // SSH and the task list load only once the workspace is known to be valid.
    const {deploy, formatDeploySummary} = await import('../deploy/run.js')
    const result = await deploy({ws, config, secrets, only: this.flags.only, force: this.flags.force, verbose: this.flags.verbose, quiet: this.jsonEnabled(), ssh: sshOptions(this.flags, canPrompt() && !this.jsonEnabled())})
    if (result.ok) this.info(formatDeploySummary(result))
    else {
      // Failures go to stderr even under --json (like every error), so a CI log shows them.
      process.stderr.write(`${redact(formatDeploySummary(result))}\n`)
      process.exitCode = 1
    }
    return result
  }
}
