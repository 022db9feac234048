import {afterEach, describe, expect, it} from 'vitest'

import {provisionWorkspace} from '../../../src/steps/provision.js'
import {type Env, FAKE_TERRAFORM, setup} from './helpers.js'

let env: Env | undefined
const saved = {...process.env}
afterEach(async () => {
  process.env = {...saved}
  if (env) expect(env.sim.invalidRequests).toEqual([])
  await env?.cleanup()
  env = undefined
})

describe('provisionWorkspace (what init calls)', () => {
  it('shows the plan and one line per resource, trusting the pinned certificate on its own', async () => {
    env = await setup()
    process.env.AUTOLABS_TERRAFORM = FAKE_TERRAFORM
    process.env.FAKE_TF_AGENT_WAIT_MS = '200'
    // Terraform's environment is an allow-list (src/util/child-env.ts): name the fake's knob.
    process.env.AUTOLABS_TERRAFORM_PASS_ENV = 'FAKE_TF_AGENT_WAIT_MS'
    const lines: string[] = []
    const result = await provisionWorkspace({workspace: env.ws, config: env.config, yes: true, interactive: false, log: (m) => lines.push(m)})
    expect(result.applied).toBe(true)
    const text = lines.join('\n')
    expect(text).toContain('Plan: 5 to add, 0 to change, 0 to destroy.')
    expect(text).toContain('  cloud image: created in')
    expect(text).toContain('  template VM: created in')
    expect(text).toContain('  VM k8s: created in')
    expect(text).toContain('  + proxmox_virtual_environment_vm.gitlab (gitlab-vm): create')
    expect(text).not.toContain(env.sim.adminTokenSecret)
  })
})
