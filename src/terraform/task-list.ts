import {Listr, ListrLogger, ProcessOutput} from 'listr2'

import type {UiEvent} from './events.js'
import {progressLine, resourceTitle} from './events.js'
import type {PlannedResource} from './summary.js'

interface Pending {
  resolve: () => void
  reject: (e: Error) => void
  output?: (line: string) => void
}

/**
 * The live task list of `terraform apply` on a terminal: one task per planned resource, driven
 * by the -json UI events (apply_start / apply_progress / apply_complete / apply_errored).
 * Rendered on stderr; the plain one-line-per-event display remains for logs and pipes.
 */
export function applyTaskList(resources: PlannedResource[]) {
  const pending = new Map<string, Pending>()
  const done = new Map<string, Error | null>()
  const settle = (addr: string, error: Error | null) => {
    if (done.has(addr)) return
    done.set(addr, error)
    const p = pending.get(addr)
    if (p) error ? p.reject(error) : p.resolve()
  }
  const logger = new ListrLogger({processOutput: new ProcessOutput(process.stderr, process.stderr)})
  const list = new Listr(
    resources.map((r) => ({
      title: `${resourceTitle(r.address)} (${r.action})`,
      task: (_ctx: unknown, task: {output: string}) =>
        new Promise<void>((resolve, reject) => {
          const prior = done.get(r.address)
          if (prior !== undefined) return prior ? reject(prior) : resolve()
          pending.set(r.address, {resolve, reject, output: (line) => (task.output = line)})
        }),
    })),
    {
      concurrent: true,
      exitOnError: false,
      renderer: 'default',
      rendererOptions: {logger, showErrorMessage: true} as never,
      fallbackRendererOptions: {logger} as never,
      registerSignalListeners: false,
    },
  )
  const running = list.run().catch(() => undefined)
  return {
    onEvent(e: UiEvent) {
      if (e.type === 'apply_progress' || e.type === 'apply_start') {
        const line = progressLine(e)
        if (line) pending.get(e.addr)?.output?.(line)
      } else if (e.type === 'apply_complete') settle(e.addr, null)
      else if (e.type === 'apply_errored') settle(e.addr, new Error(progressLine(e) ?? `${e.addr} failed`))
    },
    /** Ends every task still open (a resource Terraform never reached) and waits for the render. */
    async finish(error?: Error) {
      for (const r of resources) settle(r.address, error ? new Error('not applied') : null)
      await running
    },
  }
}
