import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {EventEmitter} from 'node:events'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {type Config, configSchema, type ConfigInput} from '../../../src/config/schema.js'
import {renderTerraform, writeTerraform} from '../../../src/render/terraform.js'
import {Terraform} from '../../../src/terraform/terraform.js'
import {terraformTlsEnv} from '../../../src/terraform/tls.js'
import {ensureDir} from '../../../src/workspace/fs.js'
import {saveSecrets} from '../../../src/workspace/secrets.js'
import {Workspace} from '../../../src/workspace/workspace.js'
import {type PveSim, startPveSim} from '../../support/pve-sim/index.mjs'
import {KEY, secretsWith} from '../../unit/render/fixtures.js'

/** The checksum the tests pin; the simulator verifies downloads it knows against it. */
export const IMAGE_SHA256 = 'c0ffee'.padEnd(64, '0')
/** A dated (immutable) Ubuntu build, as init pins it. */
export const IMAGE_URL = 'https://cloud-images.ubuntu.com/releases/jammy/release-20261120/ubuntu-22.04-server-cloudimg-amd64.img'

export const FAKE_TERRAFORM = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../support/fake-terraform/terraform')

export interface Env {
  sim: PveSim
  ws: Workspace
  config: Config
  signals: EventEmitter
  terraform: (env?: Record<string, string>) => Terraform
  cleanup: () => Promise<void>
}

/** A simulator with an import-capable storage, and a workspace rendered for it. */
export async function setup(input: ConfigInput = {}, opts: {actualSha256?: string} = {}): Promise<Env> {
  const sim = await startPveSim({version: '9.1'})
  sim.setStorage('local', {content: ['iso', 'vztmpl', 'backup', 'import', 'snippets']})
  // What the publisher's image really hashes to, as Proxmox would compute it after the download.
  sim.state.downloads.set(IMAGE_URL, {size: 700 * 1024 * 1024, sha256: opts.actualSha256 ?? IMAGE_SHA256})
  const dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-tf-it-'))
  const ws = new Workspace(dir)
  const config = configSchema.parse({
    ...input,
    image: {url: IMAGE_URL, checksum: IMAGE_SHA256, ...input.image},
    proxmox: {url: sim.url, node: sim.node, tokenId: sim.adminTokenId, fingerprint: sim.fingerprint, ...input.proxmox},
  })
  const secrets = secretsWith({tokenSecret: sim.adminTokenSecret})
  await ensureDir(ws.stateDir, 0o700)
  await saveSecrets(ws, secrets)
  await writeFile(ws.configFile, 'version: 1\n')
  await writeTerraform(ws.terraformDir, await renderTerraform(config, secrets, {sshPublicKeys: [KEY]}))
  const tlsEnv = await terraformTlsEnv(ws, config)
  const signals = new EventEmitter()
  const terraform = (env: Record<string, string> = {}) =>
    new Terraform({
      cwd: ws.terraformDir,
      logsDir: ws.logsDir,
      bin: FAKE_TERRAFORM,
      signals,
      env: {...tlsEnv, FAKE_TF_AGENT_WAIT_MS: '200', FAKE_TF_PROGRESS_MS: '100', ...env},
    })
  return {
    sim,
    ws,
    config,
    signals,
    terraform,
    cleanup: async () => {
      await sim.stop()
      await rm(dir, {recursive: true, force: true})
    },
  }
}
