import {execFileSync} from 'node:child_process'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import fc from 'fast-check'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'
import {parse, stringify} from 'yaml'

import {UserError} from '../../../src/errors.js'
import {prepareWorkspace, type InitAnswersFlags} from '../../../src/steps/init.js'
import {Workspace} from '../../../src/workspace/workspace.js'
import {snapshotTree} from '../../support/cli.js'

/**
 * Property: for ANY autolabs.yaml and flags (hostile strings, wrong types, huge numbers), the
 * workspace step behind `init` either succeeds with a consistent workspace, or refuses with a
 * user error (exit 2, or 1 for a file-system fault) that carries no stack trace and no secret —
 * and then leaves the workspace byte-for-byte as it was.
 *
 * CI runs a fixed seed (PROPERTY_SEED, default 20261130) and PROPERTY_RUNS (default 60) cases;
 * `npm run test:property` runs 2000 with a random seed (printed on failure, to replay).
 */
const SEED = Number(process.env.PROPERTY_SEED ?? 20261130)
const RUNS = Number(process.env.PROPERTY_RUNS ?? 60)

let keyDir: string
beforeAll(async () => {
  keyDir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-prop-key-'))
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'prop', '-f', path.join(keyDir, 'id')])
})
afterAll(async () => rm(keyDir, {recursive: true, force: true}))

// Strings a careful attacker and a clumsy user type: control characters, quotes, shell and
// apt.conf syntax, paths, huge and unicode text — mixed with plausible values.
const hostile = fc.oneof(
  fc.string(),
  fc.string({unit: 'binary', maxLength: 40}),
  fc.constantFrom('local\n$(id)', '../../etc', '";APT::Update::Pre-Invoke {"id";};//', 'javascript:alert(1)', 'file:///etc/passwd', '\u001b[2J', 'a b', '', ' ', '😀', 'x'.repeat(300)),
  fc.constantFrom('local-lvm', 'vmbr0', 'pve', '10.0.0.5', 'http://10.0.0.5:3142', 'https://pve.lan:8006', 'lab.example.edu', '02:00', 'https://root:pw@pve:8006/api2/json?x#y', 'pve.lan:99999'),
)
const anyValue = fc.oneof(hostile, fc.integer(), fc.double(), fc.constant(9007199254740991), fc.boolean(), fc.constant(null), fc.array(hostile, {maxLength: 4}))
const PATHS = [
  'name', 'proxmox.url', 'proxmox.node', 'proxmox.vmStorage', 'proxmox.imageStorage', 'proxmox.bridge', 'proxmox.tokenId', 'proxmox.templateVmid',
  'network.subnet', 'network.gateway', 'network.dns', 'network.searchDomain', 'network.aptProxy', 'network.vms.gitlab.ip',
  'vms.k8s.cores', 'vms.k8s.memoryMiB', 'vms.gitlab.diskGiB', 'vms.database.name', 'backup.schedule', 'backup.storage',
  'services.gitlab.externalUrl', 'image.url', 'cloudInit.snippetStorage', 'ssh.user', 'unknownKey',
]
const config = fc.oneof({weight: 1, arbitrary: fc.constant({})}, {weight: 2, arbitrary: fc.dictionary(fc.constantFrom(...PATHS), anyValue, {maxKeys: 3})})
// Mostly absent, so that whole valid cases come up too.
const flagValue = fc.oneof({weight: 5, arbitrary: fc.constant(undefined)}, {weight: 1, arbitrary: hostile})
const flags = fc.record(
  {
    name: flagValue,
    proxmoxUrl: flagValue,
    vmStorage: flagValue,
    imageStorage: flagValue,
    bridge: flagValue,
    subnet: flagValue,
    gateway: flagValue,
    aptProxy: flagValue,
    dns: fc.oneof({weight: 5, arbitrary: fc.constant(undefined)}, {weight: 1, arbitrary: fc.array(hostile, {maxLength: 4})}),
    k8sCores: fc.oneof({weight: 4, arbitrary: fc.constant(undefined)}, fc.integer({min: 4, max: 16}), fc.integer({min: -5, max: 100000})),
    k8sMemory: flagValue,
    os: fc.oneof({weight: 4, arbitrary: fc.constant(undefined)}, fc.constantFrom('ubuntu-22.04', 'debian-12'), hostile),
    sshPublicKey: fc.constantFrom(undefined, undefined, 'id.pub', 'id', 'missing.pub', '.'),
  },
  {requiredKeys: []},
)

function nest(flat: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, any> = {}
  for (const [k, v] of Object.entries(flat)) {
    const parts = k.split('.')
    let cur = out
    for (const p of parts.slice(0, -1)) cur = cur[p] = typeof cur[p] === 'object' && cur[p] ? cur[p] : {}
    cur[parts.at(-1)!] = v
  }
  return out
}

describe('property: init never half-writes, never crashes, never leaks', () => {
  it(`holds for ${RUNS} generated configs and flag sets (seed ${SEED})`, {timeout: 600_000}, async () => {
    // One workspace that already exists (with secrets), reused: a refused case must leave it as it was.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-prop-'))
    const ws = new Workspace(dir)
    const ctx = {interactive: false, yes: true}
    const base = {ssh: {publicKeyFile: path.join(keyDir, 'id.pub')}}
    await prepareWorkspace(ws, {}, ctx, {dryRun: true}).catch(() => undefined)
    await writeFile(ws.configFile, stringify(base))
    await prepareWorkspace(ws, {}, ctx, {dryRun: true})
    const secretsText = await readFile(ws.secretsFile, 'utf8')
    const secrets = [...secretsText.matchAll(/: (\S{16,})$/gm)].map((m) => m[1])
    expect(secrets.length).toBeGreaterThan(5)

    const seen = {accepted: 0, refused: 0}
    try {
      await fc.assert(
        fc.asyncProperty(config, flags, async (flat, f) => {
          const yamlText = stringify({...base, ...nest(flat)})
          await writeFile(ws.configFile, yamlText)
          const before = await snapshotTree(dir)
          const answers: InitAnswersFlags = {...f, sshPublicKey: f.sshPublicKey && path.join(keyDir, f.sshPublicKey)}
          try {
            const {config: cfg} = await prepareWorkspace(ws, answers, ctx, {dryRun: true})
            // Success: the files agree with each other.
            const yaml = parse(await readFile(ws.configFile, 'utf8'))
            const tfvars = JSON.parse(await readFile(ws.tfvarsFile, 'utf8'))
            expect(tfvars.vms.k8s.cores).toBe(yaml.vms.k8s.cores)
            expect(tfvars.vm_datastore).toBe(yaml.proxmox.vmStorage)
            expect(tfvars.network.search_domain ?? null).toBe(yaml.network.searchDomain ?? null)
            expect(cfg.name).toBe(yaml.name)
            expect(await readFile(ws.secretsFile, 'utf8')).toBe(secretsText)
            seen.accepted++
          } catch (error) {
            if (!(error instanceof UserError)) throw error
            seen.refused++
            if (process.env.PROPERTY_DEBUG) console.log(error.message.split('\n').slice(0, 3).join(' | '))
            expect([1, 2]).toContain(error.exitCode)
            const text = `${error.message}\n${error.suggestion ?? ''}`
            expect(text).not.toMatch(/\n\s+at /)
            for (const s of secrets) expect(text).not.toContain(s)
            expect(await snapshotTree(dir)).toEqual(before)
          }
        }),
        {seed: SEED, numRuns: RUNS, endOnFailure: true},
      )
      // Both sides were exercised (the generators mix plausible values in).
      expect(seen.accepted, JSON.stringify(seen)).toBeGreaterThan(0)
      expect(seen.refused, JSON.stringify(seen)).toBeGreaterThan(0)
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})
