import {afterEach, describe, expect, it} from 'vitest'

import {configSchema} from '../../../src/config/schema.js'
import {prepareTerraformToken} from '../../../src/proxmox/prepare.js'
import {clientFor} from '../../support/pve-sim/connect.js'
import {type PveSim, startPveSim} from '../../support/pve-sim/index.mjs'

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0)) await f()
})
async function setup(version: '9.1' | '8.4' = '9.1') {
  const sim: PveSim = await startPveSim({version, taskDurationMs: 5})
  const client = await clientFor(sim)
  cleanup.push(async () => {
    expect(sim.invalidRequests).toEqual([])
    await client.close()
    await sim.stop()
  })
  return {sim, client, config: configSchema.parse({proxmox: {url: sim.url}})}
}

describe('prepareTerraformToken (init, stage 1)', () => {
  it('creates the token on first run and says the secret is new', async () => {
    const {client, config} = await setup()
    const r = await prepareTerraformToken(client, config)
    expect(r).toMatchObject({tokenId: 'autolabs@pve!terraform', pveMajor: 9, secretIsNew: true})
    expect(r.changes.length).toBeGreaterThan(0)
  })

  it('reuses the stored secret on a re-run and changes nothing', async () => {
    const {client, config} = await setup()
    const first = await prepareTerraformToken(client, config)
    const again = await prepareTerraformToken(client, config, {storedTokenId: first.tokenId, storedSecret: first.secret})
    expect(again).toMatchObject({secret: first.secret, secretIsNew: false, changes: []})
  })

  it('refuses to silently replace a token whose secret is lost, and rotates it when asked', async () => {
    const {client, config} = await setup('8.4')
    const first = await prepareTerraformToken(client, config)
    await expect(prepareTerraformToken(client, config)).rejects.toThrow(/its secret is not in .autolabs\/secrets.yaml/)
    const rotated = await prepareTerraformToken(client, config, {rotateToken: true})
    expect(rotated.secretIsNew).toBe(true)
    expect(rotated.secret).not.toBe(first.secret)
    expect(rotated.pveMajor).toBe(8)
  })
})
