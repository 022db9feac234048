import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdir, mkdtemp, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {stringify} from 'yaml'

import {generateSecrets, saveSecrets, type Secrets} from '../../src/workspace/secrets.js'
import {Workspace} from '../../src/workspace/workspace.js'
import type {Lab} from '../support/lab/lab.js'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const BIN = path.join(ROOT, 'bin/run.js')

export interface DeployRun {
  exitCode: number
  stdout: string
  stderr: string
  json?: {ok: boolean; vms: Record<string, {name: string; ok: boolean; error?: string; steps: Array<{id: string; status: string; durationMs: number; error?: string; logPath?: string}>}>}
  ms: number
}

/**
 * A workspace whose autolabs.yaml points at lab machines: Debian 12, PostgreSQL 15 (the
 * distribution's), the lab's key and user, the lab's apt cache as network.aptProxy. The VM
 * subnet is the lower half of the lab's /24 so an address in the upper half is "outside".
 */
export async function labWorkspace(lab: Lab, ips: Partial<Record<'gitlab' | 'database' | 'k8s', string>>): Promise<{ws: Workspace; secrets: Secrets}> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-deploy-'))
  const base = lab.subnet.replace(/\.0\/24$/, '')
  const config = {
    name: 'lab',
    image: {os: 'debian-12'},
    network: {
      subnet: `${base}.0/25`,
      gateway: lab.gateway,
      adminCidrs: [`${base}.0/25`],
      aptProxy: lab.aptProxy,
      vms: {
        gitlab: {ip: ips.gitlab ?? `${base}.100`},
        database: {ip: ips.database ?? `${base}.101`},
        k8s: {ip: ips.k8s ?? `${base}.102`},
      },
    },
    ssh: {publicKeyFile: `${lab.keyPath}.pub`, privateKeyFile: lab.keyPath, user: lab.machines[0].user},
    services: {
      postgres: {version: 15},
      // Debian's Redis 7.0.15: the default 7.2 comes from packages.redis.io, unreachable here.
      redis: {version: '7.0'},
      // GitLab 19 needs PostgreSQL 17 for an external database; the lab has Debian's 15.
      gitlab: {externalDatabase: false},
      // The default service range 10.96.0.0/12 contains the lab's 10.99.x addresses.
      kubernetes: {serviceCidr: '172.30.0.0/16'},
    },
  }
  await mkdir(dir, {recursive: true})
  await writeFile(path.join(dir, 'autolabs.yaml'), stringify(config))
  const ws = new Workspace(dir)
  const secrets = generateSecrets(['autolabs', 'zitadel', 'gitlab'])
  await saveSecrets(ws, secrets)
  return {ws, secrets}
}

/** `autolabs deploy --json` through the built CLI, bounded. */
export async function runDeploy(ws: Workspace, args: string[] = [], timeoutMs = 600_000): Promise<DeployRun> {
  // `npm run build` elsewhere (rm -rf dist, tsc) may be rebuilding dist/ right now: wait for it.
  const built = () => existsSync(path.join(ROOT, 'dist/commands/deploy.js')) && existsSync(path.join(ROOT, 'oclif.manifest.json'))
  const until = Date.now() + 180_000
  while (!built() && Date.now() < until) await new Promise((r) => setTimeout(r, 500))
  if (!built()) throw new Error('dist/ is not built: run `npm run build` first')
  const t0 = Date.now()
  return new Promise((resolve) => {
    execFile(
      'node',
      [BIN, 'deploy', '--json', '--dir', ws.root, ...args],
      {timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024, env: {PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NO_COLOR: '1'}},
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as {code?: unknown}).code === 'number' ? (err as {code: number}).code : -1) : 0
        let json: DeployRun['json']
        try {
          json = JSON.parse(stdout)
        } catch {
          json = undefined
        }
        resolve({exitCode: code, stdout, stderr, json, ms: Date.now() - t0})
      },
    )
  })
}

/** step id → status for one VM. */
export function statuses(run: DeployRun, role: string): Record<string, string> {
  const vm = run.json?.vms?.[role]
  if (!vm) throw new Error(`no result for ${role}: exit ${run.exitCode}\n${run.stdout}\n${run.stderr}`)
  return Object.fromEntries(vm.steps.map((s) => [s.id, s.status]))
}

export function describeRun(run: DeployRun): string {
  return `exit ${run.exitCode} after ${run.ms} ms\nstdout: ${run.stdout.slice(-4000)}\nstderr: ${run.stderr.slice(-4000)}`
}

/** Runs a program on the host, never throwing: {code, stdout, stderr}. */
export function sh(cmd: string, args: string[], opts: {env?: Record<string, string>; timeoutMs?: number} = {}): Promise<{code: number; stdout: string; stderr: string}> {
  return new Promise((resolve) => {
    execFile(cmd, args, {timeout: opts.timeoutMs ?? 30_000, env: {PATH: process.env.PATH ?? '/usr/bin:/bin', ...opts.env}}, (err, stdout, stderr) => {
      const code = err ? (typeof (err as {code?: unknown}).code === 'number' ? (err as {code: number}).code : -1) : 0
      resolve({code, stdout: String(stdout), stderr: String(stderr)})
    })
  })
}
