import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {parse} from 'yaml'

import {BIN, removeDir, tempDir} from '../../support/cli.js'
import {missing} from '../../support/tools.js'

/**
 * The wizard as a person uses it: a real pseudo-terminal (util-linux `script`), keys typed
 * after each question appears. Answers are validated at the prompt; Ctrl+C exits 130 and
 * writes nothing.
 */
const hasScript = existsSync('/usr/bin/script')
const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => removeDir(d))))

// eslint-disable-next-line no-control-regex
const plain = (s: string) => s.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, '')

function terminal(args: string[]) {
  const env: Record<string, string | undefined> = {...process.env, NO_COLOR: '1'}
  delete env.CI
  for (const k of Object.keys(env)) if (k.startsWith('AUTOLABS_')) delete env[k]
  const child = spawn('script', ['-qfec', ['node', BIN, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'], {env})
  let out = ''
  child.stdout.on('data', (d) => (out += plain(String(d))))
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)))
  let seen = 0
  return {
    /** Wait for `text` to appear after what was already consumed, then type `keys`. */
    async answer(text: string, keys: string, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs
      while (!out.slice(seen).includes(text)) {
        if (Date.now() > until) throw new Error(`timed out waiting for "${text}"; screen:\n${out.slice(-800)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
      seen = out.indexOf(text, seen) + text.length
      child.stdin.write(keys)
    },
    output: () => out,
    exited,
  }
}

describe.skipIf(missing('script', hasScript))('the init wizard on a terminal', () => {
  it('asks every question with its default, validates at the prompt, and writes the answers', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const t = terminal(['init', '--dry-run', '--dir', dir])
    await t.answer('Environment name:', 'lab7\r')
    await t.answer('Proxmox VE URL', 'pve.school.lan\r')
    await t.answer('Authenticate with:', '\r')
    await t.answer('API token id', '\r')
    for (const q of ['Proxmox node:', 'Storage for VM disks:', 'Storage for the cloud image', 'Network bridge:', 'VM subnet', 'Gateway:']) await t.answer(q, '\r')
    await t.answer('gitlab-vm IP:', '10.0.0.5\r')
    await t.answer('is outside network.subnet 192.168.100.0/24', '\x7f'.repeat(8) + '192.168.100.11\r')
    await t.answer('database-vm IP:', '192.168.100.11\r')
    await t.answer('is already used by network.vms.gitlab.ip', '\x7f'.repeat(14) + '192.168.100.21\r')
    for (const q of ['k8s-vm IP:', 'DNS servers', 'SSH public key']) await t.answer(q, '\r')
    await t.answer('Guest OS:', '\x1b[B\r') // arrow down: Ubuntu 24.04
    await t.answer('k8s-vm cores', '\x7f\x7f20\r')
    await t.answer('outside the design table', '\x7f\x7f8\r')
    await t.answer('k8s-vm memory', '\r')
    expect(await t.exited, t.output()).toBe(0)
    const config = parse(await readFile(path.join(dir, 'autolabs.yaml'), 'utf8'))
    expect(config.name).toBe('lab7')
    expect(config.proxmox.url).toBe('https://pve.school.lan:8006')
    expect(config.network.vms).toEqual({gitlab: {ip: '192.168.100.11'}, database: {ip: '192.168.100.21'}, k8s: {ip: '192.168.100.30'}})
    expect(config.image.os).toBe('ubuntu-24.04')
    expect(config.vms.k8s.cores).toBe(8)
  })

  it('stops on Ctrl+C with exit code 130 and writes nothing', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const t = terminal(['init', '--dry-run', '--dir', dir])
    await t.answer('Environment name:', '\r')
    await t.answer('Proxmox VE URL', '\x03')
    expect(await t.exited).toBe(130)
    expect(existsSync(path.join(dir, 'autolabs.yaml'))).toBe(false)
  })
})
