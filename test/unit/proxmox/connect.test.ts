import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {configSchema} from '../../../src/config/schema.js'
import {resolveAuth} from '../../../src/proxmox/connect.js'
import {redact} from '../../../src/util/redact.js'
import type {Secrets} from '../../../src/workspace/secrets.js'

const A = '11111111-1111-4111-8111-111111111111'
const B = '22222222-2222-4222-8222-222222222222'
const C = '33333333-3333-4333-8333-333333333333'
let tmp: string
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'autolabs-auth-'))
})
afterAll(async () => {
  await rm(tmp, {recursive: true, force: true})
})
const secrets = (tokenSecret?: string, password?: string) => ({proxmox: {tokenSecret, password}}) as unknown as Secrets

describe('resolveAuth', () => {
  const config = configSchema.parse({proxmox: {tokenId: 'root@pam!autolabs'}})

  it('takes the secret file first, then the environment, then secrets.yaml', async () => {
    const file = path.join(tmp, 'secret')
    await writeFile(file, `${A}\n`)
    expect(await resolveAuth(config, {tokenSecretFile: file, env: {AUTOLABS_PROXMOX_TOKEN_SECRET: B}, secrets: secrets(C)})).toEqual({type: 'token', tokenId: 'root@pam!autolabs', secret: A})
    expect(await resolveAuth(config, {env: {AUTOLABS_PROXMOX_TOKEN_SECRET: B}, secrets: secrets(C)})).toMatchObject({secret: B})
    expect(await resolveAuth(config, {env: {}, secrets: secrets(C)})).toMatchObject({secret: C})
    expect(await resolveAuth(config, {env: {}})).toBeUndefined()
  })

  it('registers the secret so no log line can show it', async () => {
    await resolveAuth(config, {env: {AUTOLABS_PROXMOX_TOKEN_SECRET: B}})
    expect(redact(`token is ${B}`)).toBe('token is ********')
  })

  it('reads the password for password auth', async () => {
    const pw = configSchema.parse({proxmox: {auth: 'password', username: 'admin@pve'}})
    expect(await resolveAuth(pw, {env: {AUTOLABS_PROXMOX_PASSWORD: 'correct horse battery'}})).toEqual({type: 'password', username: 'admin@pve', password: 'correct horse battery'})
  })

  it('names an unreadable secret file', async () => {
    await expect(resolveAuth(config, {tokenSecretFile: path.join(tmp, 'missing'), env: {}})).rejects.toThrow(/The token secret file .*missing does not exist/)
  })
})
