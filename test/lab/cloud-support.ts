import {execFileSync} from 'node:child_process'
import {mkdtemp, readFile, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {stringify} from 'yaml'

import {loadConfig} from '../../src/config/load.js'
import {type ReadyResult, waitForReady} from '../../src/ssh/readiness.js'
import {type Role, ROLES} from '../../src/config/schema.js'
import {renderCloudInit} from '../../src/render/cloud-init.js'
import {terraformVariables} from '../../src/render/terraform.js'
import {generateSecrets, saveSecrets, type Secrets} from '../../src/workspace/secrets.js'
import {Workspace} from '../../src/workspace/workspace.js'
import {APT_PROXY_PORT, type NoCloudSeed} from '../support/lab/lab.js'
import {seedFromTerraform} from '../support/lab/nocloud.js'

export interface CloudWorkspace {
  ws: Workspace
  secrets: Secrets
  /** The workspace's key pair (the lab machines get it only through their cloud-init seed). */
  keyPath: string
  publicKey: string
  /** startLab's `cloudInit`: the seed Proxmox would write for the machine's VM (by VM name). */
  cloudInit: (m: {name: string; mac: string}) => Promise<NoCloudSeed>
}

/**
 * A workspace for cloud-image lab machines, made before the lab so that each machine's NoCloud
 * seed comes from it: autolabs.yaml → terraformVariables (+ the rendered snippet in snippet
 * mode) → what Proxmox writes on the cidata drive (nocloud.ts).
 *
 * Lab-only values, each keeping every packet inside the lab: the VM subnet is the lower half of
 * 10.99.X.0/24; network.gateway is .3 and network.dns .2, addresses nobody holds (the seed's
 * default route and DNS lead nowhere: the machines have no way out); apt goes through the lab's
 * cache at .1 as network.aptProxy. Debian 12 and its PostgreSQL 15, as in the other lab tests.
 */
export async function cloudWorkspace(subnet: number, ips: Partial<Record<Role, string>>, mode: 'builtin' | 'snippet' = 'builtin'): Promise<CloudWorkspace> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-cloud-'))
  const base = `10.99.${subnet}`
  const keyPath = path.join(dir, 'id_ed25519')
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `autolabs-cloud-${subnet}`, '-f', keyPath])
  const publicKey = (await readFile(`${keyPath}.pub`, 'utf8')).trim()
  const config = {
    name: 'lab',
    image: {os: 'debian-12'},
    cloudInit: {mode},
    network: {
      subnet: `${base}.0/25`,
      gateway: `${base}.3`,
      dns: [`${base}.2`],
      searchDomain: 'lab.internal',
      adminCidrs: [`${base}.0/25`],
      aptProxy: `http://${base}.1:${APT_PROXY_PORT}`,
      vms: {
        gitlab: {ip: ips.gitlab ?? `${base}.100`},
        database: {ip: ips.database ?? `${base}.101`},
        k8s: {ip: ips.k8s ?? `${base}.102`},
      },
    },
    ssh: {publicKeyFile: `${keyPath}.pub`, privateKeyFile: keyPath},
    services: {
      postgres: {version: 15},
      // Debian's Redis 7.0.15: the default 7.2 comes from packages.redis.io, unreachable here.
      redis: {version: '7.0'},
      gitlab: {externalDatabase: false},
      kubernetes: {serviceCidr: '172.30.0.0/16'},
    },
  }
  await writeFile(path.join(dir, 'autolabs.yaml'), stringify(config))
  const ws = new Workspace(dir)
  const secrets = generateSecrets(['autolabs', 'zitadel', 'gitlab'])
  await saveSecrets(ws, secrets)
  const {config: loaded} = await loadConfig(ws)
  const vars = terraformVariables(loaded, secrets, [publicKey])
  const snippets = await renderCloudInit(loaded, [publicKey])
  return {
    ws,
    secrets,
    keyPath,
    publicKey,
    async cloudInit({name, mac}) {
      const role = ROLES.find((r) => loaded.vms[r].name === name)
      if (!role) throw new Error(`no VM named ${name} in the workspace`)
      return seedFromTerraform(vars, role, mac, mode === 'snippet' ? snippets[role] : undefined)
    },
  }
}

/** What `init` does once a VM answers: readiness (SSH, cloud-init, apt locks), pinning the host key in the workspace as init does. */
export async function readyAsInit(cw: CloudWorkspace, name: string, host: string): Promise<ReadyResult> {
  const [ready] = await waitForReady([{name, host, user: 'debian', privateKeyPath: cw.keyPath}], {
    knownHostsFile: cw.ws.knownHostsFile,
    backoff: {initialMs: 500, maxMs: 2000},
    cloudInitTimeoutMs: 600_000,
    aptLockTimeoutMs: 300_000,
  })
  return ready
}
