import {rm} from 'node:fs/promises'
import path from 'node:path'

import {afterEach, describe, expect, it} from 'vitest'

import {removeDir, runCli, tempDir} from '../../support/cli.js'

// The error paths a user reaches before `autolabs image update` contacts anything (the update
// itself runs against the simulator in test/integration/terraform/image-update.test.ts).
const dirs: string[] = []
afterEach(async () => Promise.all(dirs.splice(0).map((d) => removeDir(d))))

describe('autolabs image update', () => {
  it('outside a workspace: exit 2, naming init and --dir', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const r = await runCli(['image', 'update', '--check', '--dir', dir])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain(`No autolabs.yaml in ${dir}`)
    expect(r.stderr).toContain('autolabs init')
  })

  it('without the secrets: says so under --json, no stack trace', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    expect((await runCli(['init', '--dry-run', '--yes', '--dir', dir])).exitCode).toBe(0)
    await rm(path.join(dir, '.autolabs/secrets.yaml'))
    const r = await runCli(['image', 'update', '--check', '--json', '--dir', dir])
    expect(r.exitCode).toBe(1)
    expect(JSON.parse(r.stdout).error).toMatchObject({name: 'UserError', message: `No secrets in ${path.join(dir, '.autolabs/secrets.yaml')}.`})
    expect(r.stderr).not.toMatch(/\n\s+at /)
  })
})
