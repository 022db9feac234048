import {execa} from 'execa'
import {existsSync} from 'node:fs'
import {mkdir, readdir, readFile, writeFile} from 'node:fs/promises'
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
    expect(files).toContain('docs/day-two.md')
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

    // Every link in the README and the docs, and every docs/ file named in a command's --help,
    // leads to a file (and heading) inside the installed package: they work from npx too.
    const pkg = path.join(app, 'node_modules/autolabs')
    const manifest = JSON.parse(await readFile(path.join(pkg, 'package.json'), 'utf8'))
    expect(manifest.repository?.url).toMatch(/^git\+https:\/\//)
    expect(manifest.homepage).toMatch(/^https:\/\//)
    expect(manifest.bugs?.url).toMatch(/^https:\/\//)
    const slug = (h: string) => h.trim().toLowerCase().replaceAll(/[^\w\- ]/g, '').replaceAll(' ', '-')
    const targets: Array<{from: string; to: string}> = []
    for (const doc of ['README.md', ...(await readdir(path.join(pkg, 'docs'))).map((f) => `docs/${f}`)]) {
      const text = await readFile(path.join(pkg, doc), 'utf8')
      for (const [, link] of text.matchAll(/\]\(([^)\s]+)\)/g)) if (!/^[a-z]+:/.test(link)) targets.push({from: doc, to: link.startsWith('#') ? `${doc}${link}` : path.join(path.dirname(doc), link)})
    }
    const ids = JSON.parse(await readFile(path.join(pkg, 'oclif.manifest.json'), 'utf8')).commands as Record<string, unknown>
    for (const id of ['', ...Object.keys(ids)]) {
      const help = await execa(bin, [...id.split(':').filter(Boolean), '--help'], {cwd: app})
      for (const [doc] of help.stdout.matchAll(/\bdocs\/[\w.-]+\.md\b/g)) targets.push({from: `autolabs ${id.replaceAll(':', ' ')} --help`, to: doc})
    }
    expect(targets.length).toBeGreaterThan(4)
    for (const {from, to} of targets) {
      const [file, anchor] = to.split('#')
      const target = file === '' ? from : file
      expect(existsSync(path.join(pkg, target)), `${from} → ${to}`).toBe(true)
      if (anchor) expect((await readFile(path.join(pkg, target), 'utf8')).split('\n').filter((l) => l.startsWith('#')).map((l) => slug(l.replace(/^#+/, '')))).toContain(anchor)
    }
  }, 300_000)
})
