import {type ProxmoxAuth, ProxmoxClient, type ProxmoxClientOptions} from '../../../src/proxmox/client.js'
import type {PveSim} from './index.mjs'

/** A ProxmoxClient for the simulator: admin token, certificate pinned, fast retries. */
export async function clientFor(sim: PveSim, overrides: Partial<ProxmoxClientOptions> & {auth?: ProxmoxAuth} = {}): Promise<ProxmoxClient> {
  return ProxmoxClient.connect({
    url: sim.url,
    auth: {type: 'token', tokenId: sim.adminTokenId, secret: sim.adminTokenSecret},
    tls: {fingerprint: sim.fingerprint},
    timeoutMs: 5_000,
    ...overrides,
  })
}
