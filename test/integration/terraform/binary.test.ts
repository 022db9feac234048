import {chmod, mkdir, readFile, symlink, writeFile} from 'node:fs/promises'
import {existsSync} from 'node:fs'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {UserError} from '../../../src/errors.js'
import {probeTerraform, resolveTerraformBin} from '../../../src/terraform/binary.js'
import {removeDir, runCli, tempDir} from '../../support/cli.js'
import {FAKE_TERRAFORM} from './helpers.js'

/**
 * One name for the Terraform executable, honoured by every command that runs it (init, preflight,
 * destroy): --terraform, else AUTOLABS_TERRAFORM, else its alias AUTOLABS_TERRAFORM_BIN, else
 * `terraform` on PATH, else `tofu` (OpenTofu). The fake terraform plays both: invoked as `tofu`
 * it reports itself as OpenTofu. PATH is /usr/bin:/bin plus the test's own directories, so the
 * real terraform in /usr/local/bin is out of reach.
 */
let dir: string
let onlyTofu: string // a PATH directory holding `tofu` (the fake) and nothing else
let onlyTerraform: string
let neither: string
const BASE_PATH = '/usr/bin:/bin'
const SECRET = '11111111-1111-4111-8111-111111111111'
const FINGERPRINT = Array.from({length: 32}, () => 'AB').join(':')

beforeAll(async () => {
  dir = await tempDir('autolabs-tfbin-')
  onlyTofu = path.join(dir, 'tofu-bin')
  onlyTerraform = path.join(dir, 'terraform-bin')
  neither = path.join(dir, 'empty-bin')
  for (const d of [onlyTofu, onlyTerraform, neither]) await mkdir(d)
  await symlink(FAKE_TERRAFORM, path.join(onlyTofu, 'tofu'))
  await symlink(FAKE_TERRAFORM, path.join(onlyTerraform, 'terraform'))
  // Both on PATH: terraform wins.
  await symlink(FAKE_TERRAFORM, path.join(onlyTerraform, 'tofu'))
})
afterAll(async () => removeDir(dir))

const pathWith = (d: string) => `${d}:${BASE_PATH}`

describe('resolveTerraformBin', () => {
  it('takes the named executable first: the flag, then AUTOLABS_TERRAFORM, then AUTOLABS_TERRAFORM_BIN', () => {
    const env = {PATH: pathWith(onlyTerraform), AUTOLABS_TERRAFORM: '/opt/a/terraform', AUTOLABS_TERRAFORM_BIN: '/opt/b/terraform'}
    expect(resolveTerraformBin('/opt/flag/tofu', env)).toBe('/opt/flag/tofu')
    expect(resolveTerraformBin(undefined, env)).toBe('/opt/a/terraform')
    expect(resolveTerraformBin(undefined, {...env, AUTOLABS_TERRAFORM: ''})).toBe('/opt/b/terraform')
  })

  it('else terraform on PATH, else tofu, else terraform (whose absence is then reported)', () => {
    expect(resolveTerraformBin(undefined, {PATH: pathWith(onlyTerraform)})).toBe('terraform')
    expect(resolveTerraformBin(undefined, {PATH: pathWith(onlyTofu)})).toBe('tofu')
    expect(resolveTerraformBin(undefined, {PATH: pathWith(neither)})).toBe('terraform')
  })
})

describe('probeTerraform with the fake under both names', () => {
  it('tells Terraform from OpenTofu and reads the version', async () => {
    expect(await probeTerraform(path.join(onlyTerraform, 'terraform'))).toEqual({bin: path.join(onlyTerraform, 'terraform'), flavor: 'terraform', version: '1.11.4'})
    expect(await probeTerraform(path.join(onlyTofu, 'tofu'))).toEqual({bin: path.join(onlyTofu, 'tofu'), flavor: 'opentofu', version: '1.10.10'})
  })

  it('refuses something that is neither, naming it', async () => {
    const other = path.join(dir, 'not-terraform')
    await writeFile(other, '#!/bin/sh\necho "Packer v1.11.0"\n')
    await chmod(other, 0o755)
    const err = await probeTerraform(other).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UserError)
    expect((err as UserError).message).toContain(`\`${other}\` is not Terraform or OpenTofu`)
  })
})

describe('every command honours the one name', () => {
  let ws: string
  beforeAll(async () => {
    ws = path.join(dir, 'ws')
    const key = path.join(dir, 'id.pub')
    await writeFile(key, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin@ws\n')
    const init = await runCli(['init', '--dry-run', '--yes', '--dir', ws, '--ssh-public-key', key], {env: {PATH: pathWith(neither)}})
    expect(init.exitCode, init.stderr).toBe(0)
  })

  const terraformCheck = async (args: string[], env: Record<string, string>) => {
    const r = await runCli(['preflight', '--dir', ws, '--json', ...args], {env: {PATH: pathWith(neither), ...env}})
    const checks = JSON.parse(r.stdout).checks as Array<{id: string; status: string; title: string; detail: string}>
    return checks.find((c) => c.id === 'terraform')
  }

  it('preflight: --terraform, AUTOLABS_TERRAFORM, the alias AUTOLABS_TERRAFORM_BIN and --terraform-bin name the executable', async () => {
    const fake = path.join(onlyTerraform, 'terraform')
    const pass = {status: 'pass', title: 'Terraform', detail: `Terraform 1.11.4 (${fake})`}
    const [flag, env, alias, aliasFlag, both] = await Promise.all([
      terraformCheck(['--terraform', fake], {}),
      terraformCheck([], {AUTOLABS_TERRAFORM: fake}),
      terraformCheck([], {AUTOLABS_TERRAFORM_BIN: fake}),
      terraformCheck(['--terraform-bin', fake], {}),
      terraformCheck(['--terraform', path.join(onlyTofu, 'tofu')], {AUTOLABS_TERRAFORM: fake}),
    ])
    for (const c of [flag, env, alias, aliasFlag]) expect(c).toMatchObject(pass)
    // The flag wins over the environment.
    expect(both).toMatchObject({title: 'OpenTofu'})
  })

  it('preflight: falls back to tofu when terraform is absent, and says which it found; neither fails with both names', async () => {
    const [tofu, terraform, none] = await Promise.all([terraformCheck([], {PATH: pathWith(onlyTofu)}), terraformCheck([], {PATH: pathWith(onlyTerraform)}), terraformCheck([], {})])
    expect(tofu).toMatchObject({status: 'pass', title: 'OpenTofu', detail: 'OpenTofu 1.10.10 (tofu)'})
    expect(terraform).toMatchObject({status: 'pass', detail: 'Terraform 1.11.4 (terraform)'})
    expect(none).toMatchObject({status: 'fail', detail: 'Neither `terraform` nor `tofu` (OpenTofu) was found on PATH.'})
  })

  it('init checks Terraform before the first question: nothing is asked, written or contacted without it', async () => {
    const target = path.join(dir, 'ws-init')
    const r = await runCli(['init', '--yes', '--dir', target, '--proxmox-url', 'https://127.0.0.1:9', '--proxmox-fingerprint', FINGERPRINT], {env: {PATH: pathWith(neither), AUTOLABS_PROXMOX_TOKEN_SECRET: SECRET}})
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toContain('Error: Neither `terraform` nor `tofu` (OpenTofu) was found on PATH.')
    expect(r.stderr).not.toContain('127.0.0.1:9')
    expect(existsSync(target)).toBe(false)
    // Named with the flag or the environment: that executable, and a missing one is named.
    const flag = await runCli(['init', '--yes', '--dir', target, '--terraform', '/nonexistent/terraform'], {env: {PATH: pathWith(onlyTerraform), AUTOLABS_PROXMOX_TOKEN_SECRET: SECRET}})
    expect(flag.stderr).toContain('Terraform was not found: `/nonexistent/terraform` does not exist.')
    const env = await runCli(['init', '--yes', '--dir', target], {env: {PATH: pathWith(onlyTerraform), AUTOLABS_TERRAFORM: '/nonexistent/tofu', AUTOLABS_PROXMOX_TOKEN_SECRET: SECRET}})
    expect(env.stderr).toContain('`/nonexistent/tofu` does not exist.')
    expect(existsSync(target)).toBe(false)
  })

  it('init with OpenTofu found on PATH goes on to the Proxmox connection, having said which tool it uses', async () => {
    const target = path.join(dir, 'ws-init-tofu')
    const r = await runCli(['init', '--yes', '--dir', target, '--proxmox-url', 'https://127.0.0.1:9', '--proxmox-fingerprint', FINGERPRINT], {env: {PATH: pathWith(onlyTofu), AUTOLABS_PROXMOX_TOKEN_SECRET: SECRET}})
    expect(r.stderr).toContain('Using OpenTofu 1.10.10 (tofu).')
    expect(r.stderr).toContain('Cannot reach Proxmox at https://127.0.0.1:9')
  })

  it('destroy runs the named executable (flag or AUTOLABS_TERRAFORM), and tofu when only tofu is on PATH', async () => {
    // A state file: destroy asks Terraform what it manages (an empty state: nothing to destroy).
    await writeFile(path.join(ws, 'terraform', 'terraform.tfstate'), JSON.stringify({version: 4, terraform_version: '1.10.10', serial: 1, lineage: 'l', outputs: {}, resources: []}))
    const calls = path.join(dir, 'calls.jsonl')
    const flag = await runCli(['destroy', '--yes', '--dir', ws, '--terraform', '/nonexistent/terraform'], {env: {PATH: pathWith(onlyTofu)}})
    expect(flag.exitCode).toBe(1)
    expect(flag.stderr).toContain('`/nonexistent/terraform` does not exist.')
    const env = await runCli(['destroy', '--yes', '--dir', ws], {env: {PATH: pathWith(onlyTofu), AUTOLABS_TERRAFORM: '/nonexistent/terraform2'}})
    expect(env.stderr).toContain('`/nonexistent/terraform2` does not exist.')

    const tofu = await runCli(['destroy', '--yes', '--dir', ws], {env: {PATH: pathWith(onlyTofu), FAKE_TF_CALLS: calls, AUTOLABS_TERRAFORM_PASS_ENV: 'FAKE_TF_CALLS'}})
    expect(tofu.exitCode, tofu.stderr).toBe(0)
    expect(tofu.stderr).toContain('Terraform manages nothing in this workspace')
    const argv = (await readFile(calls, 'utf8')).trim().split('\n').map((l) => (JSON.parse(l) as {argv: string[]}).argv[0])
    expect(argv).toEqual(['version', 'init', 'show'])
    // OpenTofu's provider comes from its own registry: "bpg/proxmox" resolves there.
    expect(await readFile(path.join(ws, 'terraform', '.terraform.lock.hcl'), 'utf8')).toContain('provider "registry.opentofu.org/bpg/proxmox"')
  })
})
