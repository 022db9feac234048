import {spawnSync} from 'node:child_process'

export interface BashResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs bash as the tests need it: HOME points nowhere. Node's stdio are sockets, and bash fed
 * through a socket reads ~/.bashrc even when non-interactive (on this machine image root's runs
 * `pyenv init`: slow, and with a lock file that a test killed mid-way leaves behind).
 * `env` defaults to the test process's environment.
 */
export function bashSync(args: string[], opts: {env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number} = {}): BashResult {
  const r = spawnSync('bash', args, {
    encoding: 'utf8',
    env: {...(opts.env ?? process.env), HOME: '/nonexistent'},
    input: opts.input,
    timeout: opts.timeoutMs,
  })
  return {code: r.status, stdout: r.stdout, stderr: r.stderr}
}

/** Sources a stage script (its main does not run when sourced) and runs `snippet` after it. */
export function sourceAndRun(script: string, snippet: string, opts: Parameters<typeof bashSync>[1] = {}): BashResult {
  return bashSync(['-c', `source "$1"; ${snippet}`, 'test', script], opts)
}
