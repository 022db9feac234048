import {writeFile} from 'node:fs/promises'

import {afterEach, describe, expect, it} from 'vitest'
import {stringify} from 'yaml'

import {provision} from '../../../src/steps/provision.js'
import {runCli} from '../../support/cli.js'
import {type Env, FAKE_TERRAFORM, setup} from './helpers.js'

let env: Env | undefined
afterEach(async () => {
  if (env) expect(env.sim.invalidRequests).toEqual([])
  await env?.cleanup()
  env = undefined
})

describe('autolabs destroy (the built CLI, the fake terraform, the simulator)', () => {
  it('refuses without a terminal unless --yes, then destroys and prints the result as JSON', async () => {
    env = await setup({name: 'lab-one'})
    await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true})
    await writeFile(env.ws.configFile, stringify({name: 'lab-one', proxmox: {url: env.config.proxmox.url, node: env.config.proxmox.node, tokenId: env.config.proxmox.tokenId, fingerprint: env.config.proxmox.fingerprint}}))
    const cliEnv = {AUTOLABS_TERRAFORM: FAKE_TERRAFORM, FAKE_TF_AGENT_WAIT_MS: '200', AUTOLABS_TERRAFORM_PASS_ENV: 'FAKE_TF_AGENT_WAIT_MS'}

    const refused = await runCli(['destroy', '--dir', env.ws.root], {env: cliEnv})
    expect(refused.exitCode, refused.stderr).toBe(2)
    expect(refused.stderr).toContain('--yes')
    expect(env.sim.state.vms.size).toBe(4)

    const r = await runCli(['destroy', '--dir', env.ws.root, '--yes', '--json'], {env: cliEnv})
    expect(r.exitCode, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout) as {environment: string; destroyed: Array<{address: string; name?: string}>; kept: string[]}
    expect(out.environment).toBe('lab-one')
    expect(out.destroyed.map((d) => d.name).filter(Boolean)).toEqual(expect.arrayContaining(['gitlab-vm', 'database-vm', 'k8s-vm']))
    expect(out.kept).toContain(env.ws.secretsFile)
    expect(env.sim.state.vms.size).toBe(0)
    expect(r.stdout + r.stderr).not.toContain(env.sim.adminTokenSecret)
    // The destroy command never loaded the secrets file, yet its logs are masked too.
    const {readdir, readFile} = await import('node:fs/promises')
    for (const f of await readdir(env.ws.logsDir)) expect(await readFile(`${env.ws.logsDir}/${f}`, 'utf8')).not.toContain(env.sim.adminTokenSecret)
  })
})
