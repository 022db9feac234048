import {execFileSync, spawnSync} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {renderTerraform, writeTerraform} from '../../../src/render/terraform.js'
import {customConfig, defaultConfig, KEY, secretsWith, TOKEN_SECRET} from '../../unit/render/fixtures.js'
import {missing} from '../../support/tools.js'

const has = (bin: string) => spawnSync(bin, ['--version'], {stdio: 'ignore'}).status === 0
const hasTerraform = has('terraform')
const hasCloudInit = spawnSync('cloud-init', ['--version'], {stdio: 'ignore'}).status === 0

const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => rm(d, {recursive: true, force: true}))))

async function rendered(config = defaultConfig()): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-tf-'))
  dirs.push(dir)
  await writeTerraform(dir, await renderTerraform(config, secretsWith({tokenSecret: TOKEN_SECRET}), {sshPublicKeys: [KEY]}))
  return dir
}

describe.skipIf(missing('terraform', hasTerraform))('terraform fmt (skipped: no `terraform` on PATH)', () => {
  it('finds the rendered directory already formatted, for the default and a customised config', async () => {
    for (const config of [defaultConfig(), customConfig()]) {
      const dir = await rendered(config)
      const r = spawnSync('terraform', ['fmt', '-check', '-recursive', '-diff', dir], {encoding: 'utf8'})
      expect(r.stdout + r.stderr.replace(/[╷│╵][^\n]*\n?/g, '')).not.toMatch(/\.tf/)
      expect(r.status).toBe(0)
    }
  })
})

describe.skipIf(missing('cloud-init', hasCloudInit))('cloud-init schema (skipped: Debian package cloud-init not installed)', () => {
  it('accepts every rendered user-data file', async () => {
    const dir = await rendered(customConfig())
    for (const role of ['gitlab', 'database', 'k8s']) {
      const out = execFileSync('cloud-init', ['schema', '--config-file', path.join(dir, 'cloud-init', `${role}.user-data.yaml`)], {encoding: 'utf8'})
      expect(out).toMatch(/Valid/)
    }
  })
})
