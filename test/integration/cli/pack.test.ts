import {execa} from 'execa'
import {existsSync} from 'node:fs'
import {mkdir, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {removeDir, ROOT, tempDir} from '../../support/cli.js'

/** `npm pack` makes a package that installs and runs, with only what it needs inside. */
const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => removeDir(d))))

describe('the npm package', () => {
  it('installs from its tarball and runs the dry run', async () => {
    const dir = await tempDir('autolabs-pack-')
    dirs.push(dir)
    const packed = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {cwd: ROOT})
    const info = JSON.parse(packed.stdout)[0] as {filename: string; files: Array<{path: string}>}
    const files = info.files.map((f) => f.path)
    expect(files).toContain('bin/run.js')
    expect(files).toContain('oclif.manifest.json')
    expect(files).toContain('assets/terraform/providers.tf')
    expect(files).toContain('assets/stages/database.sh')
    expect(files.filter((f) => f.startsWith('test/') || f.startsWith('src/') || f.endsWith('.ts'))).toEqual([])

    const app = path.join(dir, 'app')
    await mkdir(app)
    await writeFile(path.join(app, 'package.json'), JSON.stringify({name: 'app', version: '1.0.0', private: true}))
    await execa('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', path.join(dir, info.filename)], {cwd: app, timeout: 240_000})
    const bin = path.join(app, 'node_modules/.bin/autolabs')
    expect(existsSync(bin)).toBe(true)
    const r = await execa(bin, ['init', '--dry-run', '--yes', '--json', '--dir', path.join(dir, 'ws')], {cwd: app, reject: false})
    expect(r.exitCode, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout).plan.vms).toHaveLength(3)
    expect(existsSync(path.join(dir, 'ws/terraform/k8s-vm.tf'))).toBe(true)
  }, 300_000)
})
