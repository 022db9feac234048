import {afterAll, describe, expect, it} from 'vitest'

import {colorLevel} from '../../../src/ui/output.js'
import path from 'node:path'

import {removeDir, ROOT, runCli, tempDir} from '../../support/cli.js'

/** Output people like to read: the plan fits 80 columns, the dry run names the next command, colour only where wanted. */
const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => removeDir(d))))
const ESC = '\u001B['

describe('the dry run for a person', () => {
  it('fits the plan in 80 columns, plans no apt proxy when there is none, and ends with the next command', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir])
    expect(r.exitCode, r.stderr).toBe(0)
    const long = r.stdout.split('\n').filter((l) => l.length > 80 && !/^\s*https:\/\/\S+$/.test(l))
    expect(long).toEqual([])
    expect(r.stdout).toMatch(/^gitlab-vm\s+110\s+4\s+8 GB\s+100 GB\s+192\.168\.100\.10\s+GitLab CE/m)
    expect(r.stdout).not.toContain('Configure the apt proxy')
    expect(r.stdout).toContain('Set apt timeouts (no apt proxy)')
    expect(r.stderr.trim().split('\n').at(-1)).toBe(`Next: \`autolabs init --dir ${path.relative(ROOT, dir)} --proxmox-url <your Proxmox host>\` creates the VMs.`)
    const proxied = await runCli(['init', '--dry-run', '--yes', '--dir', dir, '--apt-proxy', 'http://10.0.0.5:3142', '--proxmox-url', 'pve.lan'])
    expect(proxied.stdout).toContain('Configure the apt proxy')
    expect(proxied.stderr).toContain('`autolabs preflight --dir')
  })
})

describe('colour', () => {
  it('is off without a terminal, on with FORCE_COLOR, and off again with NO_COLOR or --no-color', async () => {
    const plain = await runCli(['stauts'], {env: {NO_COLOR: ''}})
    expect(plain.stderr).not.toContain(ESC)
    const forced = await runCli(['stauts'], {env: {NO_COLOR: '', FORCE_COLOR: '1'}})
    expect(forced.stderr).toContain(`${ESC}31m`)
    expect(forced.stderr.replaceAll(/\u001B\[[0-9;]*m/g, '')).toBe(plain.stderr)
    expect((await runCli(['stauts'], {env: {NO_COLOR: '1', FORCE_COLOR: '1'}})).stderr).not.toContain(ESC)
    expect((await runCli(['init', '--dri', '--no-color'], {env: {NO_COLOR: '', FORCE_COLOR: '1'}})).stderr).not.toContain(ESC)
  })

  it('decides by flag, NO_COLOR, then what chalk sees (FORCE_COLOR, the terminal)', () => {
    expect(colorLevel('stderr', {NO_COLOR: '1'}, [])).toBe(0)
    expect(colorLevel('stderr', {}, ['--no-color'])).toBe(0)
    expect(colorLevel('stderr', {NO_COLOR: ''}, [])).toBe(colorLevel('stderr', {}, []))
  })
})
