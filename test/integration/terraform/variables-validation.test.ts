import {spawnSync} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {copyFile, mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ASSETS_DIR} from '../../../src/render/cloud-init.js'
import {terraformVariables} from '../../../src/render/terraform.js'
import {customConfig, defaultConfig, KEY} from '../../unit/render/fixtures.js'
import {missing} from '../../support/tools.js'

/**
 * The real terraform evaluates variables.tf's types and validation rules against rendered
 * values. A configuration of only variables and one output needs no provider, so `init` and
 * `plan` run offline (CHECKPOINT_DISABLE keeps terraform from calling home).
 */
const env = {...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1'}
const hasTerraform = spawnSync('terraform', ['version'], {stdio: 'ignore', env}).status === 0
let dir: string

beforeAll(async () => {
  if (!hasTerraform) return
  dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-tfvars-'))
  await copyFile(path.join(ASSETS_DIR, 'terraform', 'variables.tf'), path.join(dir, 'variables.tf'))
  await writeFile(path.join(dir, 'echo.tf'), 'output "vms" {\n  value = var.vms\n}\n')
  const init = spawnSync('terraform', ['init', '-input=false', '-no-color'], {cwd: dir, env, encoding: 'utf8', timeout: 60_000})
  expect(init.status, init.stderr).toBe(0)
})
afterAll(async () => {
  if (dir) await rm(dir, {recursive: true, force: true})
})

function plan(vars: unknown): {status: number | null; out: string} {
  const file = path.join(dir, `v-${Math.random().toString(36).slice(2)}.tfvars.json`)
  writeFileSync(file, JSON.stringify(vars))
  const r = spawnSync('terraform', ['plan', '-input=false', '-no-color', '-lock=false', `-var-file=${file}`], {cwd: dir, env, encoding: 'utf8', timeout: 60_000})
  return {status: r.status, out: (r.stdout + r.stderr).replace(/[│╷╵]/g, ' ').replace(/\s+/g, ' ')}
}

describe.skipIf(missing('terraform', hasTerraform))('variables.tf under the real terraform (skipped: no `terraform` on PATH)', () => {
  it('accepts the values rendered for the default and a customised config', () => {
    for (const config of [defaultConfig(), customConfig()]) {
      const r = plan(terraformVariables(config, undefined, [KEY]))
      expect(r.status, r.out).toBe(0)
    }
  })

  it('refuses a missing SSH key with the message that names ssh.publicKeyFile', () => {
    const r = plan(terraformVariables(defaultConfig(), undefined, []))
    expect(r.status).toBe(1)
    expect(r.out).toMatch(/ssh_public_keys must hold at least one OpenSSH public key \(set ssh\.publicKeyFile/)
  })

  it('refuses duplicate VM addresses, a wrong image file name and a bad endpoint, each with its own message', () => {
    const v = terraformVariables(defaultConfig(), undefined, [KEY])
    const dupIp = plan({...v, vms: {...v.vms, k8s: {...v.vms.k8s, ip: v.vms.gitlab.ip}}})
    expect(dupIp.out).toContain('vms.*.ip must be three distinct IPv4 addresses.')
    const img = plan({...v, image: {...v.image, file_name: 'jammy.img'}})
    expect(img.out).toMatch(/image\.file_name must end in \.qcow2, \.raw or \.vmdk/)
    const url = plan({...v, proxmox_endpoint: 'http://pve:8006/api2/json'})
    expect(url.out).toContain('proxmox_endpoint must be an https URL')
    for (const r of [dupIp, img, url]) expect(r.status).toBe(1)
  })

  it('refuses a token that does not look like user@realm!tokenid=uuid, and a missing required value', () => {
    const v = terraformVariables(defaultConfig(), undefined, [KEY])
    expect(plan({...v, proxmox_api_token: 'root@pam!x=not-a-uuid'}).out).toContain('proxmox_api_token must look like')
    const {vms: _omit, ...rest} = v
    expect(plan(rest).out).toMatch(/No value for required variable[\s\S]*"vms"/)
  })
})
