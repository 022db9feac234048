import {mkdtemp, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {Terraform} from '../../../src/terraform/terraform.js'
import {terraformEnv} from '../../../src/util/child-env.js'
import {FAKE_TERRAFORM} from './helpers.js'

const ADMIN_SECRET = 'aaaaaaaa-1111-4222-8333-444444444444'
const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => rm(d, {recursive: true, force: true}))))

describe("Terraform's environment (the fake terraform records the one it got)", () => {
  it("never gets the administrator's secret or any AUTOLABS_* value, but what it needs to run", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-tfenv-'))
    dirs.push(dir)
    const log = path.join(dir, 'env.jsonl')
    const saved = {...process.env}
    try {
      Object.assign(process.env, {
        AUTOLABS_PROXMOX_TOKEN_SECRET: ADMIN_SECRET,
        AUTOLABS_PROXMOX_PASSWORD: 'hunter2-admin-password',
        AWS_SECRET_ACCESS_KEY: 'not-for-terraform',
        TF_VAR_proxmox_api_token: 'root@pam!x=override',
        TF_PLUGIN_CACHE_DIR: '/var/cache/tf',
        HTTPS_PROXY: 'http://proxy.lab:3128',
        FAKE_TF_ENV_LOG: log,
        AUTOLABS_TERRAFORM_PASS_ENV: 'FAKE_TF_ENV_LOG,AUTOLABS_PROXMOX_TOKEN_SECRET',
      })
      await new Terraform({cwd: dir, logsDir: dir, bin: FAKE_TERRAFORM, env: {SSL_CERT_FILE: '/tmp/ca.pem'}}).version()
    } finally {
      process.env = saved
    }
    const seen = JSON.parse((await readFile(log, 'utf8')).trim().split('\n')[0]) as {env: Record<string, string>}
    const text = JSON.stringify(seen.env)
    expect(text).not.toContain(ADMIN_SECRET)
    expect(text).not.toContain('hunter2-admin-password')
    expect(Object.keys(seen.env).filter((k) => k.startsWith('AUTOLABS_'))).toEqual([])
    expect(seen.env.AWS_SECRET_ACCESS_KEY).toBeUndefined()
    expect(seen.env.TF_VAR_proxmox_api_token).toBeUndefined()
    expect(seen.env).toMatchObject({TF_PLUGIN_CACHE_DIR: '/var/cache/tf', HTTPS_PROXY: 'http://proxy.lab:3128', SSL_CERT_FILE: '/tmp/ca.pem', TF_IN_AUTOMATION: '1', PATH: process.env.PATH})
  })

  it('is an allow-list: an unknown variable is not passed unless named in AUTOLABS_TERRAFORM_PASS_ENV', () => {
    expect(terraformEnv({PATH: '/bin', SOMETHING: 'x'})).not.toHaveProperty('SOMETHING')
    expect(terraformEnv({PATH: '/bin', SOMETHING: 'x', AUTOLABS_TERRAFORM_PASS_ENV: 'SOMETHING'})).toHaveProperty('SOMETHING', 'x')
  })
})
