import {execFile} from 'node:child_process'
import {existsSync, readFileSync} from 'node:fs'
import {mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'

import {execa} from 'execa'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {parse, stringify} from 'yaml'

import {BIN, ROOT} from '../../support/cli.js'
import {type PveSim, startPveSim} from '../../support/pve-sim/index.mjs'
import {IMAGE_URL} from '../terraform/helpers.js'

/**
 * SIGINT / SIGTERM / SIGHUP sent to the built CLI in each phase of a real `init` (the Proxmox
 * simulator, the fake terraform): the run stops at the next safe point with 130 / 143 / 129,
 * nothing is started after the signal (no Proxmox request, no terraform command), no temp file
 * is left, the workspace is whole, and the next run completes.
 */
const FAKE_TERRAFORM = path.join(ROOT, 'test/support/fake-terraform/terraform')
const CODES = {SIGINT: 130, SIGTERM: 143, SIGHUP: 129} as const
type Sig = keyof typeof CODES

let sim: PveSim
let keyDir: string
const dirs: string[] = []
beforeAll(async () => {
  keyDir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-sig-key-'))
  await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test', '-f', path.join(keyDir, 'id')])
})
afterAll(async () => {
  await rm(keyDir, {recursive: true, force: true})
  await Promise.all(dirs.map((d) => rm(d, {recursive: true, force: true})))
})
afterEach(async () => {
  expect(sim.invalidRequests).toEqual([])
  await sim.stop()
})

async function workspace(): Promise<{dir: string; calls: string}> {
  sim = await startPveSim({version: '9.1'})
  sim.setStorage('local', {content: ['iso', 'vztmpl', 'backup', 'import', 'snippets']})
  sim.state.downloads.set(IMAGE_URL, {size: 700 * 1024 * 1024, sha256: 'c0ffee'.padEnd(64, '0')})
  const dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-sig-'))
  dirs.push(dir)
  await writeFile(
    path.join(dir, 'autolabs.yaml'),
    stringify({
      name: 'sig',
      proxmox: {url: sim.url, node: sim.node, tokenId: sim.adminTokenId, fingerprint: sim.fingerprint},
      // A pinned dated build: init contacts no publisher (nothing outside loopback).
      image: {url: IMAGE_URL, checksum: 'c0ffee'.padEnd(64, '0')},
      ssh: {publicKeyFile: path.join(keyDir, 'id.pub'), privateKeyFile: path.join(keyDir, 'id')},
      // Loopback addresses: the readiness phase must never send traffic to the planned 192.168.100.x.
      network: {subnet: '127.0.0.0/24', gateway: '127.0.0.1', adminCidrs: ['127.0.0.0/24'], vms: {gitlab: {ip: '127.0.0.2'}, database: {ip: '127.0.0.3'}, k8s: {ip: '127.0.0.4'}}},
    }),
  )
  return {dir, calls: path.join(dir, '..', `${path.basename(dir)}.tf-calls`)}
}

/** Start `init`; when `when(stderr)` is true, send `signal`; resolve with the outcome. */
async function initWithSignal(dir: string, calls: string, signal: Sig, when: (stderr: string) => boolean, extraEnv: Record<string, string> = {}) {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AUTOLABS_') && v !== undefined) env[k] = v
  const child = execa('node', [BIN, 'init', '--yes', '--skip-deploy', '--dir', dir], {
    env: {
      ...env,
      NO_COLOR: '1',
      AUTOLABS_PROXMOX_TOKEN_SECRET: sim.adminTokenSecret,
      AUTOLABS_TERRAFORM: FAKE_TERRAFORM,
      AUTOLABS_TERRAFORM_PASS_ENV: 'FAKE_TF_CALLS,FAKE_TF_AGENT_WAIT_MS,FAKE_TF_PROGRESS_MS,FAKE_TF_SLOW_MS',
      FAKE_TF_CALLS: calls,
      FAKE_TF_AGENT_WAIT_MS: '200',
      FAKE_TF_PROGRESS_MS: '50',
      ...extraEnv,
    },
    extendEnv: false,
    reject: false,
    input: '',
    timeout: 280_000,
  })
  let stderr = ''
  let sent: {requests: number; at: number} | undefined
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  // Polled, not only on output: some phases print nothing while they work.
  const poll = setInterval(() => {
    if (!sent && when(stderr)) {
      sent = {requests: sim.requests.length, at: Date.now()}
      child.kill(signal)
    }
  }, 20)
  const r = await child.finally(() => clearInterval(poll))
  return {exitCode: r.exitCode, stderr, sent, requestsAfter: sent ? sim.requests.slice(sent.requests) : []}
}

const tfCommands = async (calls: string) => (existsSync(calls) ? (await readFile(calls, 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as {argv: string[]}).argv[0]) : [])

async function expectCleanWorkspace(dir: string) {
  for (const d of [dir, path.join(dir, '.autolabs'), path.join(dir, 'terraform')])
    for (const name of existsSync(d) ? await readdir(d) : []) expect(name, `temp file left in ${d}`).not.toMatch(/\.tmp$|autolabs-tmp$/)
}

/**
 * The next run continues: it provisions everything (the VMs exist in the simulator, Terraform's
 * outputs were read) and reaches the readiness phase — no machine answers SSH at the loopback
 * addresses, so it is stopped there with SIGINT, which is the last phase's signal test too.
 */
async function expectNextRunCompletes(dir: string, calls: string) {
  sim.setResponseDelay(0)
  const r = await initWithSignal(dir, calls, 'SIGINT', () => sim.state.vms.size === 4 && readFileSync(calls, 'utf8').includes('"output"'))
  expect(r.exitCode, r.stderr).toBe(130)
  expect(r.stderr).not.toMatch(/This is a bug/)
  expect([...sim.state.vms.values()].map((v) => v.config.name).sort()).toEqual(['database-vm', 'gitlab-vm', 'k8s-vm', 'sig-ubuntu-2204-template'])
  await expectCleanWorkspace(dir)
  // The workspace is whole: the tfvars use the token secrets.yaml holds.
  const secrets = parse(await readFile(path.join(dir, '.autolabs/secrets.yaml'), 'utf8'))
  const tfvars = JSON.parse(await readFile(path.join(dir, 'terraform/terraform.tfvars.json'), 'utf8'))
  expect(tfvars.proxmox_api_token).toBe(`${secrets.proxmox.terraformTokenId}=${secrets.proxmox.terraformTokenSecret}`)
}

describe('stop signals during init', () => {
  it.each(['SIGINT', 'SIGTERM', 'SIGHUP'] as const)('%s after the workspace is written (preflight): nothing is created, exit code documented', {timeout: 600_000}, async (signal) => {
    const {dir, calls} = await workspace()
    sim.setResponseDelay(150)
    const r = await initWithSignal(dir, calls, signal, (s) => s.includes('Workspace updated'))
    expect(r.exitCode, r.stderr).toBe(CODES[signal])
    expect(r.stderr).toMatch(new RegExp(`Interrupted \\(${signal}\\)`))
    expect(r.stderr).not.toMatch(/This is a bug/)
    // No token, user or role was created, and terraform never planned anything.
    expect(sim.requests.filter((q) => q.method !== 'GET')).toEqual([])
    expect(r.requestsAfter.filter((q) => q.status !== 0 && q.method !== 'GET')).toEqual([])
    expect(await tfCommands(calls)).not.toContain('init')
    await expectCleanWorkspace(dir)
    if (signal === 'SIGINT') await expectNextRunCompletes(dir, calls) // once: a full run is slow here
  })

  it('SIGTERM during token creation: the new secret is saved, nothing after it is asked, the next run continues', {timeout: 600_000}, async () => {
    const {dir, calls} = await workspace()
    sim.setResponseDelay(150)
    const r = await initWithSignal(dir, calls, 'SIGTERM', () => sim.requests.some((q) => q.method === 'POST' && q.path.endsWith('/token/terraform')))
    expect(r.exitCode, r.stderr).toBe(143)
    // After the token POST: no ACL was set, terraform never ran.
    expect(r.requestsAfter.filter((q) => q.method !== 'GET')).toEqual([])
    expect(sim.requests.some((q) => q.path.startsWith('/api2/json/access/acl') && q.method === 'PUT')).toBe(false)
    expect(await tfCommands(calls)).not.toContain('init')
    const secrets = parse(await readFile(path.join(dir, '.autolabs/secrets.yaml'), 'utf8'))
    expect(secrets.proxmox.terraformTokenSecret).toMatch(/^[0-9a-f-]{36}$/)
    await expectCleanWorkspace(dir)
    // No --rotate-token needed: the secret was kept.
    await expectNextRunCompletes(dir, calls)
  })

  it('SIGINT during terraform apply: terraform is interrupted gracefully and waited for, nothing runs after it', {timeout: 600_000}, async () => {
    const {dir, calls} = await workspace()
    const r = await initWithSignal(dir, calls, 'SIGINT', () => existsSync(calls) && readFileSync(calls, 'utf8').includes('"apply"'), {FAKE_TF_SLOW_MS: '700'})
    expect(r.exitCode, r.stderr).toBe(130)
    expect(r.stderr).toMatch(/Terraform apply was interrupted and stopped after saving its state/)
    const cmds = await tfCommands(calls)
    expect(cmds.at(-1)).toBe('apply') // no output/show/readiness after the interrupted apply
    // terraform saved its state: the next run continues from it.
    expect(existsSync(path.join(dir, 'terraform/terraform.tfstate'))).toBe(true)
    await expectCleanWorkspace(dir)
    await expectNextRunCompletes(dir, calls)
  })

  it('a second signal stops at once', async () => {
    const {dir, calls} = await workspace()
    sim.setResponseDelay(2000)
    const env: Record<string, string> = {}
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('AUTOLABS_') && v !== undefined) env[k] = v
    const child = execa('node', [BIN, 'init', '--yes', '--skip-deploy', '--dir', dir], {
      env: {...env, AUTOLABS_PROXMOX_TOKEN_SECRET: sim.adminTokenSecret, AUTOLABS_TERRAFORM: FAKE_TERRAFORM},
      extendEnv: false,
      reject: false,
      input: '',
    })
    let stderr = ''
    let first = 0
    let second = 0
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString()
      if (!first && sim.requests.length > 0) {
        first = Date.now()
        child.kill('SIGINT')
      } else if (first && !second && stderr.includes('stopping at the next safe point')) {
        second = Date.now()
        child.kill('SIGINT')
      }
    })
    const r = await child
    expect(r.exitCode).toBe(130)
    expect(stderr).toContain('received again: stopped at once')
    // It did not wait for the 2 s answer in flight.
    expect(sim.requests.every((q) => q.status === 0 || q.method === 'GET')).toBe(true)
    await expectCleanWorkspace(dir)
    void calls
  })
})
