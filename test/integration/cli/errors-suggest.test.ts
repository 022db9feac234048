import {describe, expect, it, afterAll} from 'vitest'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {parse} from 'yaml'

import {removeDir, runCli, snapshotTree, tempDir} from '../../support/cli.js'

/** Every error says what works: the command or flag meant, a value that is not the failing one. */
const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => removeDir(d))))
async function fresh() {
  const d = await tempDir()
  dirs.push(d)
  return d
}

describe('did you mean, help and version', () => {
  it.each([
    [['stauts'], 'Unknown command "autolabs stauts".', 'Did you mean `autolabs status`?'],
    [['backup', 'nwo'], 'Unknown command "autolabs backup nwo".', 'Did you mean `autolabs backup now`?'],
    [['init', '--dri'], 'Unknown flag --dri for `autolabs init`.', 'Did you mean --dry-run?'],
    [['init', '-yes', '--dry-run'], 'Unknown flag -yes for `autolabs init`.', 'Did you mean --yes?'],
    [['status', '--no-colour'], 'Unknown flag --no-colour for `autolabs status`.', 'Did you mean --no-color?'],
    [['status', 'extra'], '`autolabs status` takes no argument "extra".', 'See `autolabs status --help`.'],
  ])('%j: exit 2, in the CLI error format, with what was meant', async (args, message, suggestion) => {
    const r = await runCli(args)
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toBe(`Error: ${message}\n${r.stderr.split('\n')[1]}`)
    expect(r.stderr.split('\n')[1]).toContain(suggestion)
    expect(r.stderr).not.toContain('backup:nwo')
    expect(r.stderr).not.toMatch(/ › |See more help/)
  })

  it('puts parse errors and unknown commands in the --json error shape', async () => {
    for (const args of [['init', '--dri', '--json'], ['stauts', '--json'], ['init', '--k8s-cores', 'many', '--json']]) {
      const r = await runCli(args)
      expect(r.exitCode).toBe(2)
      const {error} = JSON.parse(r.stdout)
      expect(error.name, args.join(' ')).toBe('UsageError')
      expect(error.exitCode).toBe(2)
      expect(error.suggestion).toMatch(/autolabs/)
    }
  })

  it('has `autolabs help` and `autolabs version`', async () => {
    const help = await runCli(['help'])
    expect(help.exitCode).toBe(0)
    for (const c of ['init', 'status', 'backup', 'destroy']) expect(help.stdout).toContain(c)
    const helpInit = await runCli(['help', 'init'])
    expect(helpInit.stdout).toContain('--dry-run')
    const version = await runCli(['version'])
    expect(version.exitCode).toBe(0)
    expect(version.stdout).toMatch(/^autolabs\/\d+\.\d+\.\d+ /)
  })
})

describe('config errors suggest what works and blame what the user gave', () => {
  it('suggests a pod network that is not the failing value, and only keys that exist', async () => {
    // Given a workspace (its autolabs.yaml names the pod network 10.244.0.0/16)
    const dir = await fresh()
    expect((await runCli(['init', '--dry-run', '--yes', '--dir', dir])).exitCode).toBe(0)
    const before = await snapshotTree(dir)
    // When the subnet is moved onto it
    const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir, '--subnet', '10.244.0.0/24', '--gateway', '10.244.0.1', '--gitlab-ip', '10.244.0.10', '--database-ip', '10.244.0.20', '--k8s-ip', '10.244.0.30'])
    // Then the subnet (what was given) is blamed, with a free range as the way out
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('network.subnet: 10.244.0.0/24 overlaps services.kubernetes.podCidr 10.244.0.0/16')
    const fix = /set services\.kubernetes\.podCidr to e\.g\. (\S+) in autolabs\.yaml/.exec(r.stderr)
    expect(fix?.[1]).toBeDefined()
    expect(fix?.[1]).not.toBe('10.244.0.0/16')
    expect(r.stderr).toContain('Pass a valid value with --subnet')
    expect(r.stderr).not.toContain('matching flags')
    expect(await snapshotTree(dir)).toEqual(before)
  })

  it('moves the pod network default out of a new subnet instead of failing', async () => {
    const dir = await fresh()
    const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir, '--subnet', '10.244.0.0/24'])
    expect(r.exitCode, r.stderr).toBe(0)
    const config = parse(await readFile(path.join(dir, 'autolabs.yaml'), 'utf8'))
    expect(config.network.gateway).toBe('10.244.0.1')
    expect(config.network.vms.k8s.ip).toBe('10.244.0.30')
    expect(config.services.kubernetes.podCidr).not.toBe('10.244.0.0/16')
  })

  it('gives the other VMs free addresses when one takes a default address, and blames the later of two given', async () => {
    const dir = await fresh()
    const ok = await runCli(['init', '--dry-run', '--yes', '--json', '--dir', dir, '--gitlab-ip', '192.168.100.20'])
    expect(ok.exitCode, ok.stderr).toBe(0)
    expect(JSON.parse(ok.stdout).plan.vms.map((v: {ip: string}) => v.ip)).toEqual(['192.168.100.20', '192.168.100.21', '192.168.100.30'])
    const clash = await runCli(['init', '--dry-run', '--yes', '--dir', await fresh(), '--gitlab-ip', '192.168.100.20', '--k8s-ip', '192.168.100.20'])
    expect(clash.exitCode).toBe(2)
    expect(clash.stderr).toContain('network.vms.k8s.ip: 192.168.100.20 is already used by network.vms.gitlab.ip')
    expect(clash.stderr).not.toContain('network.vms.database.ip')
  })

  it('names the flag, not autolabs.yaml, for a bad --apt-proxy in an existing workspace', async () => {
    const dir = await fresh()
    expect((await runCli(['init', '--dry-run', '--yes', '--dir', dir])).exitCode).toBe(0)
    const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir, '--apt-proxy', 'not a url'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('Invalid value for --apt-proxy')
    expect(r.stderr).toContain('Pass a valid value with --apt-proxy')
    expect(r.stderr).not.toContain('in autolabs.yaml')
  })
})
