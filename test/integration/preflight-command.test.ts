import {execFile} from 'node:child_process'
import {chmod, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'
import {parseDocument} from 'yaml'

import {configSchema} from '../../src/config/schema.js'
import {versionSupportCheck} from '../../src/steps/preflight.js'
import {makeLeaf} from '../support/certs.js'
import {removeDir, runCli, tempDir} from '../support/cli.js'
import {type PveSim, startPveSim} from '../support/pve-sim/index.mjs'

/** `autolabs preflight` as a user runs it: the built CLI against the simulator over HTTPS. */
let sim: PveSim
let dir: string
let fakeTerraform: string
const keyFile = () => path.join(dir, 'id_ed25519.pub')

beforeAll(async () => {
  sim = await startPveSim({authFailureDelayMs: 10})
  dir = await tempDir('autolabs-preflight-cli-')
  await promisify(execFile)('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test', '-f', path.join(dir, 'id_ed25519')])
  fakeTerraform = path.join(dir, 'terraform')
  await writeFile(fakeTerraform, `#!/bin/sh\nprintf 'Terraform v1.11.4\\non linux_amd64\\n'\n`)
  await chmod(fakeTerraform, 0o755)
  const init = await runCli(['init', '--dry-run', '--yes', '--dir', path.join(dir, 'ws'), '--proxmox-url', sim.url, '--proxmox-fingerprint', sim.fingerprint, '--ssh-public-key', keyFile()])
  expect(init.exitCode, init.stderr).toBe(0)
})
afterEach(() => {
  expect(sim.invalidRequests).toEqual([])
})
afterAll(async () => {
  await sim.stop()
  await removeDir(dir)
})

const run = (args: string[], env: Record<string, string> = {AUTOLABS_PROXMOX_TOKEN_SECRET: sim.adminTokenSecret}) =>
  runCli(['preflight', '--dir', path.join(dir, 'ws'), '--terraform-bin', fakeTerraform, ...args], {env})

describe('autolabs preflight', () => {
  it('fails (exit 1) when the image storage lacks "import", printing each check and the fix', async () => {
    sim.setStorage('local', {content: ['iso', 'vztmpl', 'backup']})
    const r = await run([])
    expect(r.exitCode).toBe(1)
    expect(r.stdout).toContain('PASS  Proxmox VE version: PVE 9.1.3')
    expect(r.stdout).toMatch(/FAIL {2}Image storage local: lacks the content type "import"/)
    expect(r.stdout).toContain('fix: Run `autolabs preflight --enable-import`')
    expect(r.stdout).toContain('Preflight failed: 1 check to fix before autolabs creates anything.')
  })

  it('enables "import" with --enable-import and then passes (exit 0), with --json on stdout', async () => {
    sim.setStorage('local', {content: ['iso', 'vztmpl', 'backup']})
    const r = await run(['--enable-import', '--json'])
    expect(r.exitCode, r.stderr).toBe(0)
    const result = JSON.parse(r.stdout)
    expect(result.ok).toBe(true)
    expect(result.checks.find((c: {id: string}) => c.id === 'image-storage')).toMatchObject({status: 'pass', detail: 'content type "import" enabled now'})
    expect(sim.state.storages.get('local')!.content.has('import')).toBe(true)
  })

  it('reports wrong credentials as a failed check without ever printing the secret', async () => {
    const secret = '0badc0de-0000-4000-8000-000000000000'
    const r = await run(['--json'], {AUTOLABS_PROXMOX_TOKEN_SECRET: secret})
    expect(r.exitCode).toBe(1)
    const result = JSON.parse(r.stdout)
    expect(result.checks[0]).toMatchObject({id: 'proxmox-connection', status: 'fail'})
    expect(r.stdout + r.stderr).not.toContain(secret)
  })

  it('refuses a server whose certificate does not match the pinned fingerprint', async () => {
    const r = await run(['--json', '--proxmox-fingerprint', 'AB:'.repeat(31) + 'AB'])
    expect(r.exitCode).toBe(1)
    const c = JSON.parse(r.stdout).checks[0]
    expect(c).toMatchObject({id: 'proxmox-connection', status: 'fail'})
    expect(c.detail).toContain(`got:      ${sim.fingerprint}`)
  })

  it('runs the workstation checks and warns when no credentials are given', async () => {
    const r = await run(['--json'], {})
    const result = JSON.parse(r.stdout)
    // The version check follows today's date against the support table: computed here on the same clock.
    const versions = versionSupportCheck(configSchema.parse({}), new Date()).status
    expect(result.checks.map((c: {id: string; status: string}) => `${c.id}:${c.status}`)).toEqual(['proxmox-connection:warn', 'terraform:pass', 'ssh-key:pass', 'ssh-route:pass', `version-support:${versions}`])
    expect(r.exitCode).toBe(0)
  })

  it("checks GitLab's HTTPS certificate on the workstation: a key that is not the certificate's fails before anything is created", async () => {
    const ws = path.join(dir, 'ws')
    makeLeaf(ws, 'gitlab', {san: 'DNS:gitlab.lab'})
    makeLeaf(ws, 'stray', {san: 'DNS:gitlab.lab'})
    const yaml = path.join(ws, 'autolabs.yaml')
    const before = await readFile(yaml, 'utf8')
    const tls = (keyFile: string) => {
      const doc = parseDocument(before)
      doc.setIn(['services', 'gitlab', 'externalUrl'], 'https://gitlab.lab')
      doc.setIn(['services', 'gitlab', 'tls'], {certFile: 'gitlab.crt', keyFile, caFile: 'gitlab.crt', letsencrypt: false})
      return doc.toString()
    }
    try {
      await writeFile(yaml, tls('stray.key'))
      const bad = await run([], {})
      expect(bad.exitCode).toBe(1)
      expect(bad.stdout).toContain('FAIL  GitLab HTTPS certificate: services.gitlab.tls.keyFile: is not the private key of certFile')
      await writeFile(yaml, tls('gitlab.key'))
      const good = await run(['--json'], {})
      expect(JSON.parse(good.stdout).checks.find((c: {id: string}) => c.id === 'gitlab-tls')).toMatchObject({id: 'gitlab-tls', status: 'pass', detail: expect.stringMatching(/^for gitlab\.lab, valid until .*, private CA$/)})
    } finally {
      await writeFile(yaml, before)
    }
  })
})
