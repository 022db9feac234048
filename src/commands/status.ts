import {Flags} from '@oclif/core'

import {BaseCommand} from '../base-command.js'
import {colorLevel} from '../ui/output.js'
import {terminalWidth} from '../ui/text.js'
import {ExitCode, InterruptedError, UsageError} from '../errors.js'
import {canPrompt} from '../prompts/ask.js'
import {sshFlags, sshOptions} from '../ssh/flags.js'
import type {StatusReport} from '../status/types.js'
import {assertVmsCreated} from '../steps/vms-created.js'
import {acknowledgeInterrupt} from '../util/interrupt.js'
import {findWorkspace} from '../workspace/workspace.js'

export default class Status extends BaseCommand<typeof Status> {
  static override summary = 'Health of the VMs and services at a glance: Proxmox metrics, SSH, PostgreSQL, Redis, S3, GitLab, Kubernetes.'
  static override description = `All checks run at once, each with its own deadline, so the answer comes within a few seconds even when a VM is unreachable.

Thresholds (the design document's): CPU > 80 %, memory > 90 %, free disk < 20 %, an answer slower than 5 s → warning. A service down → failure.

Exit codes: 0 healthy (warnings allowed), 1 degraded (a service is down), 3 unreachable (the Proxmox API or a VM could not be asked). The --json shape is documented in docs/day-two.md.`

  static override examples = [
    {description: 'One screen:', command: '<%= config.bin %> <%= command.id %>'},
    {description: 'For monitoring scripts:', command: '<%= config.bin %> <%= command.id %> --json | jq .overall'},
    {description: 'Refresh every 10 s in the terminal:', command: '<%= config.bin %> <%= command.id %> --watch --interval 10'},
  ]

  static override flags = {
    watch: Flags.boolean({summary: 'Refresh in place until Ctrl+C (needs a terminal on stderr).', env: 'AUTOLABS_STATUS_WATCH', default: false}),
    interval: Flags.integer({summary: 'Seconds between refreshes with --watch.', env: 'AUTOLABS_STATUS_INTERVAL', default: 5, min: 1, max: 3600}),
    'connect-timeout': Flags.integer({summary: 'Seconds to wait for SSH / the Proxmox API before calling a VM unreachable.', env: 'AUTOLABS_STATUS_CONNECT_TIMEOUT', default: 3, min: 1, max: 60}),
    timeout: Flags.integer({summary: 'Seconds any one check may take once connected.', env: 'AUTOLABS_STATUS_TIMEOUT', default: 8, min: 1, max: 300}),
    ...sshFlags,
  }

  public async run(): Promise<StatusReport> {
    const f = this.flags
    if (f.watch && (this.jsonEnabled() || !process.stderr.isTTY)) {
      throw new UsageError('--watch redraws a terminal: it needs stderr to be a terminal and cannot be combined with --json.', {
        suggestion: 'For scripts, run `autolabs status --json` at your own interval.',
      })
    }
    const ws = findWorkspace({dir: f.dir})
    await assertVmsCreated(ws)
    const [{openDayTwo}, {statusOnce}, {renderText}] = await Promise.all([import('../status/context.js'), import('../status/run.js'), import('../status/format.js')])
    const opts = {connectTimeoutMs: f['connect-timeout'] * 1000, checkTimeoutMs: f.timeout * 1000}
    const ctx = await openDayTwo(ws, {warn: (m) => this.warnUser(m), proxmoxTimeoutMs: opts.connectTimeoutMs + opts.checkTimeoutMs, ssh: {...sshOptions(f, canPrompt() && !this.jsonEnabled()), perVmErrors: true}})
    try {
      if (!f.watch) {
        const report = await statusOnce(ctx, opts)
        if (!this.jsonEnabled()) process.stdout.write(renderText(report, {color: colorLevel('stdout') > 0, width: terminalWidth(process.stdout)}))
        process.exitCode = report.exitCode
        return report
      }
      let stop = false
      let wake: (() => void) | undefined
      const onSigint = () => {
        stop = true
        wake?.()
      }
      process.on('SIGINT', onSigint)
      let report: StatusReport | undefined
      process.stderr.write('\u001B[2J')
      try {
        while (!stop) {
          try {
            report = await statusOnce(ctx, opts)
          } catch (error) {
            // Ctrl+C in the middle of a round: the watch ends with the last full report.
            if (stop && error instanceof InterruptedError) break
            throw error
          }
          // Home, draw, clear the rest: redraw in place without flicker.
          process.stderr.write(`\u001B[H${renderText(report, {color: colorLevel('stderr') > 0, width: terminalWidth(process.stderr)}).replaceAll('\n', '\u001B[K\n')}\u001B[J(every ${f.interval} s; Ctrl+C to stop)`)
          await new Promise<void>((resolve) => {
            wake = resolve
            setTimeout(resolve, f.interval * 1000)
          })
        }
      } finally {
        process.off('SIGINT', onSigint)
        process.stderr.write('\n')
      }
      // Ctrl+C is how a watch ends, not an interruption: exit with the last verdict.
      acknowledgeInterrupt()
      process.exitCode = report?.exitCode ?? ExitCode.interrupted
      return report!
    } finally {
      await ctx.close()
    }
  }
}
