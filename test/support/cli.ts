import {execa} from 'execa'
import {createHash} from 'node:crypto'
import {mkdtemp, readdir, readFile, rm, stat} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const BIN = path.join(ROOT, 'bin/run.js')

export interface CliResult {
  exitCode: number
  stdout: string
  stderr: string
}

/** Run the built CLI as a user would (no TTY, CI-like environment, no AUTOLABS_* leaking in). */
export async function runCli(args: string[], opts: {env?: Record<string, string>; cwd?: string; input?: string; timeoutMs?: number} = {}): Promise<CliResult> {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AUTOLABS_') && v !== undefined) env[k] = v
  const r = await execa('node', [BIN, ...args], {
    // ssh.jumpHost "auto" probes the workspace's VM network: a test must never send traffic to
    // 192.168.100.x, so the route is direct unless the test asks otherwise.
    env: {...env, NO_COLOR: '1', AUTOLABS_SSH_JUMP_HOST: 'none', ...opts.env},
    extendEnv: false,
    cwd: opts.cwd ?? ROOT,
    reject: false,
    input: opts.input ?? '',
    timeout: opts.timeoutMs ?? 60_000,
  })
  return {exitCode: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr}
}

export async function tempDir(prefix = 'autolabs-test-'): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), prefix))
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, {recursive: true, force: true})
}

/** Path → sha256 and mode of every file under dir: compare before/after to prove "unchanged". */
export async function snapshotTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  async function walk(d: string) {
    let entries
    try {
      entries = await readdir(d, {withFileTypes: true})
    } catch {
      return
    }
    for (const e of entries) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) {
        out[path.relative(dir, p) + '/'] = ((await stat(p)).mode & 0o777).toString(8)
        await walk(p)
      } else {
        const h = createHash('sha256').update(await readFile(p)).digest('hex')
        out[path.relative(dir, p)] = `${h} ${((await stat(p)).mode & 0o777).toString(8)}`
      }
    }
  }
  await walk(dir)
  return out
}
