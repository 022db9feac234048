import {spawn} from 'node:child_process'
import {existsSync} from 'node:fs'
import {readFile, stat} from 'node:fs/promises'
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

  it('stops on Ctrl+C with exit code 130 and writes no workspace', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const t = terminal(['init', '--dry-run', '--dir', dir])
    await t.answer('Environment name:', '\r')
    await t.answer('Proxmox VE URL', '\x03')
    expect(await t.exited).toBe(130)
    expect(existsSync(path.join(dir, 'autolabs.yaml'))).toBe(false)
  })

  it('keeps every answer through a mistake at each prompt and a Ctrl+C, and offers them on the next run', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const back = (n: number) => '\x7f'.repeat(n)
    // Given a first run with a wrong answer at each prompt, each corrected at the prompt
    const t = terminal(['init', '--dry-run', '--dir', dir])
    await t.answer('Environment name:', 'Lab 7\r')
    await t.answer('must be a DNS label', back(5) + 'lab7\r')
    await t.answer('Proxmox VE URL', 'ftp://pve\r')
    await t.answer('must use https://', back(9) + 'pve.school.lan\r')
    for (const q of ['Authenticate with:', 'API token id', 'Proxmox node:', 'Storage for VM disks:', 'Storage for the cloud image', 'Network bridge:']) await t.answer(q, '\r')
    await t.answer('VM subnet', '10.20.0.0/33\r')
    await t.answer('must be an IPv4 network', back(12) + '10.20.0.0/24\r')
    // The gateway's default follows the subnet, and Enter takes it
    await t.answer('Gateway: (10.20.0.1)', '\r')
    await t.answer('gitlab-vm IP: (10.20.0.10)', '10.20.0.1\r')
    await t.answer('is the gateway address', back(9) + '10.20.0.11\r')
    await t.answer('database-vm IP: (10.20.0.20)', '\r')
    await t.answer('k8s-vm IP: (10.20.0.30)', '\r')
    await t.answer('DNS servers', '1.1.1.1, 8.8.8\r')
    await t.answer('item 2: must be an IPv4 address', back(14) + '1.1.1.1, 8.8.8.8\r')
    // When the user presses Ctrl+C at the next prompt
    await t.answer('SSH public key', '\x03')
    expect(await t.exited).toBe(130)
    expect(t.output()).toContain('Your answers are kept in')
    expect(existsSync(path.join(dir, 'autolabs.yaml'))).toBe(false)
    expect(((await stat(path.join(dir, '.autolabs/answers.yaml'))).mode & 0o777).toString(8)).toBe('600')

    // Then the next run offers every answer as its default; Enter keeps them
    const again = terminal(['init', '--dry-run', '--dir', dir])
    await again.answer('Environment name: (lab7)', '\r')
    await again.answer('Proxmox VE URL (https://host:8006): (https://pve.school.lan:8006)', '\r')
    for (const q of ['Authenticate with:', 'API token id', 'Proxmox node:', 'Storage for VM disks:', 'Storage for the cloud image', 'Network bridge:']) await again.answer(q, '\r')
    await again.answer('VM subnet (CIDR): (10.20.0.0/24)', '\r')
    await again.answer('Gateway: (10.20.0.1)', '\r')
    await again.answer('gitlab-vm IP: (10.20.0.11)', '\r')
    await again.answer('database-vm IP: (10.20.0.20)', '\r')
    await again.answer('k8s-vm IP: (10.20.0.30)', '\r')
    await again.answer('DNS servers (comma-separated): (1.1.1.1,8.8.8.8)', '\r')
    await again.answer('SSH public key', '\r')
    await again.answer('Guest OS:', '\r')
    await again.answer('k8s-vm cores', back(2) + '20\r')
    await again.answer('outside the design table', back(2) + '6\r')
    // And memory is typed the way the flag takes it
    await again.answer('k8s-vm memory', '16G\r')
    expect(await again.exited, again.output()).toBe(0)
    const config = parse(await readFile(path.join(dir, 'autolabs.yaml'), 'utf8'))
    expect(config.name).toBe('lab7')
    expect(config.proxmox.url).toBe('https://pve.school.lan:8006')
    expect(config.network).toMatchObject({subnet: '10.20.0.0/24', gateway: '10.20.0.1', dns: ['1.1.1.1', '8.8.8.8']})
    expect(config.network.vms).toEqual({gitlab: {ip: '10.20.0.11'}, database: {ip: '10.20.0.20'}, k8s: {ip: '10.20.0.30'}})
    expect(config.vms.k8s).toMatchObject({cores: 6, memoryMiB: 16384})
    // The kept answers served their purpose
    expect(existsSync(path.join(dir, '.autolabs/answers.yaml'))).toBe(false)
  })

  it('never echoes the secret, and keeps it only in the 0600 secrets file when the host cannot be reached', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const secret = '0a1b2c3d-1111-4222-8333-444455556666'
    // Given a real run against a host that refuses connections (loopback, nothing listening)
    const t = terminal(['init', '--dir', dir])
    await t.answer('Environment name:', 'lab9\r')
    await t.answer('Proxmox VE URL', '127.0.0.1:9\r')
    await t.answer('Authenticate with:', '\r')
    await t.answer('API token id', '\r')
    await t.answer('API token secret:', secret + '\r')
    expect(await t.exited).not.toBe(0)
    // Then the screen never showed the secret, nor one mark per character
    expect(t.output()).not.toContain(secret)
    expect(t.output()).not.toContain('*'.repeat(8))
    // And the answers are kept; the secret only in the secrets file, readable by the owner only
    const answers = await readFile(path.join(dir, '.autolabs/answers.yaml'), 'utf8')
    expect(parse(answers).proxmox.url).toBe('https://127.0.0.1:9')
    expect(answers).not.toContain(secret)
    expect(parse(await readFile(path.join(dir, '.autolabs/secrets.yaml'), 'utf8')).proxmox.tokenSecret).toBe(secret)
    expect(((await stat(path.join(dir, '.autolabs/secrets.yaml'))).mode & 0o777).toString(8)).toBe('600')
    // And the next run offers them: the URL as its default, Enter keeps the saved secret
    const again = terminal(['init', '--dir', dir])
    await again.answer('Environment name: (lab9)', '\r')
    await again.answer('(https://127.0.0.1:9)', '\r')
    await again.answer('Authenticate with:', '\r')
    await again.answer('API token id', '\r')
    await again.answer('API token secret (Enter keeps the saved one):', '\r')
    expect(await again.exited).not.toBe(0)
    expect(again.output()).not.toContain(secret)
  })
})
