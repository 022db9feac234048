import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {afterEach, describe, expect, it} from 'vitest'

import {loadConfig} from '../../../src/config/load.js'
import {updateImage} from '../../../src/steps/image-update.js'
import {provision} from '../../../src/steps/provision.js'
import {loadSecrets} from '../../../src/workspace/secrets.js'
import {KEY} from '../../unit/render/fixtures.js'
import {type Env, setup} from './helpers.js'

let env: Env | undefined
let keyDir: string | undefined
afterEach(async () => {
  if (env) expect(env.sim.invalidRequests).toEqual([])
  await env?.cleanup()
  env = undefined
  if (keyDir) await rm(keyDir, {recursive: true, force: true})
})

const NEWER = {url: 'https://cloud-images.ubuntu.com/releases/jammy/release-20261201/ubuntu-22.04-server-cloudimg-amd64.img', checksum: 'd'.repeat(64), serial: '20261201'}

describe('autolabs image update', () => {
  it('pins the newer build, rebuilds the template from it so new VMs get it, and keeps the running VMs', async () => {
    // The workspace is re-rendered from autolabs.yaml: the SSH key must be a real file.
    keyDir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-key-'))
    await writeFile(path.join(keyDir, 'id_ed25519.pub'), `${KEY}\n`)
    env = await setup({ssh: {publicKeyFile: path.join(keyDir, 'id_ed25519.pub')}})
    await provision({workspace: env.ws, config: env.config, terraform: env.terraform(), yes: true})
    env.sim.state.downloads.set(NEWER.url, {size: 700 * 1024 * 1024, sha256: NEWER.checksum})
    const before = [110, 120, 130].map((id) => env!.sim.vm(id).config.vmgenid ?? env!.sim.vm(id).config.name)
    const secrets = (await loadSecrets(env.ws))!
    const logs: string[] = []
    const run = (check: boolean, config = env!.config) =>
      updateImage({
        ws: env!.ws,
        config,
        secrets,
        check,
        resolve: async () => NEWER,
        provision: (c) => provision({workspace: env!.ws, config: c, terraform: env!.terraform(), yes: true, rebuildTemplate: true}),
        log: (m) => logs.push(m),
      })

    // --check shows what will be rebuilt and changes nothing.
    const checked = await run(true)
    expect(checked).toMatchObject({changed: true, applied: false, rebuilds: ['cloud image jammy-server-cloudimg-amd64-20261201.qcow2 (downloaded by Proxmox, checksum verified)', 'template 9000 (rebuilt from the new image)']})
    expect(await readFile(env.ws.configFile, 'utf8')).not.toContain('release-20261201')

    const done = await run(false)
    expect(done.applied).toBe(true)
    expect(done.plan!.resources.map((r) => `${r.action} ${r.address}`)).toEqual(['replace proxmox_download_file.cloud_image', 'replace proxmox_virtual_environment_vm.template'])
    // Pinned in autolabs.yaml (URL and checksum together) and in the rendered values.
    const {config} = await loadConfig(env.ws)
    expect(config.image).toMatchObject({url: NEWER.url, checksum: NEWER.checksum})
    expect(JSON.parse(await readFile(env.ws.tfvarsFile, 'utf8')).image).toMatchObject({url: NEWER.url, checksum: NEWER.checksum, file_name: 'jammy-server-cloudimg-amd64-20261201.qcow2'})
    // The template's disk is imported from the new file; the old file is gone; the VMs are untouched.
    expect(env.sim.vm(9000).config.template).toBe('1')
    expect([...env.sim.state.volumes.keys()].filter((v) => v.startsWith('local:import/'))).toEqual(['local:import/jammy-server-cloudimg-amd64-20261201.qcow2'])
    expect([110, 120, 130].map((id) => env!.sim.vm(id).config.vmgenid ?? env!.sim.vm(id).config.name)).toEqual(before)
    expect(logs.join('\n')).toContain('Running VMs keep their disks')

    // Again: nothing newer, nothing done.
    const again = await run(false, config)
    expect(again).toMatchObject({changed: false, applied: false, rebuilds: []})
  })
})
