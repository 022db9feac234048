import {execa} from 'execa'
import {readFile, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {BIN, removeDir, ROOT, tempDir} from '../../support/cli.js'

/** Heavy libraries that only the commands that talk to servers may load, and only when they run. */
const HEAVY = ['node-ssh', 'ssh2', 'undici', 'proxmox-api', 'listr2', '@inquirer', 'execa', 'cli-table3']

/** Runs the CLI with the import tracer: its exit code and stderr, and every module it loaded. */
async function traced(args: string[], cwd?: string): Promise<{urls: string[]; exitCode?: number; stderr: string}> {
  const dir = await tempDir()
  const trace = path.join(dir, 'trace.txt')
  const r = await execa('node', ['--import', path.join(ROOT, 'test/support/trace-imports.mjs'), BIN, ...args], {
    env: {AUTOLABS_TRACE_IMPORTS: trace, NO_COLOR: '1'},
    cwd: cwd ?? dir,
    reject: false,
  })
  const text = await readFile(trace, 'utf8').catch(() => '')
  await rm(dir, {recursive: true, force: true})
  return {urls: text.split('\n').filter(Boolean), exitCode: r.exitCode, stderr: String(r.stderr)}
}
const modulesLoadedBy = async (args: string[]) => (await traced(args)).urls

const heavyIn = (urls: string[]) => HEAVY.filter((h) => urls.some((u) => u.includes(`/node_modules/${h}/`)))

describe('start-up stays lazy', () => {
  it('`autolabs --help` loads no SSH, HTTP, prompt or task-list library', async () => {
    const urls = await modulesLoadedBy(['--help'])
    expect(urls.length).toBeGreaterThan(0) // the tracer works
    expect(heavyIn(urls)).toEqual([])
  })

  it('`autolabs --version` loads none either', async () => {
    expect(heavyIn(await modulesLoadedBy(['--version']))).toEqual([])
  })

  it('`init --dry-run --yes` contacts nothing, so loads no SSH or HTTP library', async () => {
    const dir = await tempDir()
    const urls = await modulesLoadedBy(['init', '--dry-run', '--yes', '--json', '--dir', dir])
    await removeDir(dir)
    expect(heavyIn(urls).filter((h) => ['node-ssh', 'ssh2', 'undici', 'proxmox-api'].includes(h))).toEqual([])
  })
})

describe('day-two commands check the workspace before loading SSH or HTTP', () => {
  it.each(['status', 'backup list', 'backup now'])('`%s` on an invalid autolabs.yaml fails with exit 2 and loads neither', async (command) => {
    const cmd = command.split(' ')
    const dir = await tempDir()
    await writeFile(path.join(dir, 'autolabs.yaml'), 'proxmox:\n  url: not-a-url\n')
    const r = await traced(cmd, dir)
    await removeDir(dir)
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('proxmox.url')
    expect(heavyIn(r.urls).filter((h) => ['node-ssh', 'ssh2', 'undici', 'proxmox-api'].includes(h))).toEqual([])
  })
})

describe('the fast paths of bin/run.js', () => {
  it('print exactly what oclif prints for --help and --version', async () => {
    for (const flag of ['--help', '--version']) {
      const fast = await execa('node', [BIN, flag], {env: {COLUMNS: '80', NO_COLOR: '1'}})
      const slow = await execa('node', [BIN, flag], {env: {COLUMNS: '80', NO_COLOR: '1', AUTOLABS_NO_HELP_CACHE: '1'}})
      expect(fast.stdout).toBe(slow.stdout)
    }
    const v = await execa('node', [BIN, '--version'])
    expect(v.stdout).toMatch(/^autolabs\/\d+\.\d+\.\d+ \S+ node-v\d+/)
  })
})
