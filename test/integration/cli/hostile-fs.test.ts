import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {mkdir, readFile, readdir, symlink, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {GITIGNORE} from '../../../src/steps/render-workspace.js'
import {removeDir, runCli, tempDir} from '../../support/cli.js'

/** A clumsy user's (and a careful attacker's) file system, against the built CLI. */
const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => removeDir(d))))
const fresh = async () => {
  const d = await tempDir('autolabs-hostile-')
  dirs.push(d)
  return d
}
const dryRun = (dir: string, extra: string[] = []) => runCli(['init', '--dry-run', '--yes', '--dir', dir, ...extra])

describe('file-system faults are user errors, never "This is a bug"', () => {
  it('--dir that is a file: exit 2, naming it', async () => {
    const d = await fresh()
    const file = path.join(d, 'afile')
    await writeFile(file, 'x')
    const r = await dryRun(file)
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain(`--dir ${file} is not a directory`)
    expect(r.stderr).not.toMatch(/This is a bug/)
  })

  it.each([
    ['a directory', async (f: string) => mkdir(f), /is a directory/],
    ['a FIFO (would hang)', async (f: string) => void execFileSync('mkfifo', [f]), /named pipe \(FIFO\)/],
    ['a link to /dev/zero (would read forever)', async (f: string) => symlink('/dev/zero', f), /is a device/],
  ])('autolabs.yaml that is %s', async (_what, make, message) => {
    const d = await fresh()
    await make(path.join(d, 'autolabs.yaml'))
    const r = await runCli(['status', '--dir', d], {timeoutMs: 30_000})
    expect(r.exitCode).toBeGreaterThan(0)
    expect(r.exitCode).toBeLessThan(3)
    expect(r.stderr).toMatch(message)
    expect(r.stderr).not.toMatch(/This is a bug/)
  })

  it('an alias bomb in autolabs.yaml is refused by size of expansion', async () => {
    const d = await fresh()
    const lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for (let i = 1; i < 9; i++) lines.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill(`*${String.fromCharCode(96 + i)}`).join(',')}]`)
    await writeFile(path.join(d, 'autolabs.yaml'), lines.join('\n') + '\n')
    const r = await runCli(['status', '--dir', d], {timeoutMs: 30_000})
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/alias/i)
  })

  it('an empty autolabs.yaml is not silently "every default"', async () => {
    const d = await fresh()
    await writeFile(path.join(d, 'autolabs.yaml'), '# nothing here\n')
    const r = await runCli(['status', '--dir', d])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/is empty: it holds no settings/)
  })

  it('a read-only file system: which path, exit 1, the workspace unchanged', async () => {
    // root ignores permissions: a tmpfs remounted read-only is what a non-root user's read-only disk is.
    if (process.getuid?.() !== 0) return
    const d = await fresh()
    const ro = path.join(d, 'ro')
    await mkdir(ro)
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', ro])
    try {
      expect((await dryRun(path.join(ro, 'ws'))).exitCode).toBe(0)
      execFileSync('mount', ['-o', 'remount,ro', ro])
      const r = await dryRun(path.join(ro, 'ws'), ['--name', 'changed'])
      expect(r.exitCode).toBe(1)
      expect(r.stderr).toMatch(/is on a read-only file system/)
      expect(r.stderr).not.toMatch(/This is a bug/)
    } finally {
      execFileSync('umount', [ro])
    }
  })
})

describe('private workspace paths never follow a symlink', () => {
  it.each(['.autolabs', 'terraform', '.autolabs/logs', 'terraform/terraform.tfvars.json', '.autolabs/secrets.yaml'])('refuses a workspace whose %s is a link, naming it, writing nothing there', async (rel) => {
    const d = await fresh()
    const ws = path.join(d, 'ws')
    const elsewhere = path.join(d, 'elsewhere')
    await mkdir(elsewhere)
    if (rel.includes('/')) await mkdir(path.join(ws, path.dirname(rel)), {recursive: true})
    else await mkdir(ws)
    await symlink(rel.endsWith('.json') || rel.endsWith('.yaml') ? path.join(elsewhere, 'file') : elsewhere, path.join(ws, rel))
    const r = await dryRun(ws)
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toContain(`${path.join(ws, rel)} is a symbolic link`)
    expect(await readdir(elsewhere)).toEqual([])
  })
})

describe('temp files', () => {
  it('are covered by the workspace .gitignore, and a run removes those a killed run left', async () => {
    const d = await fresh()
    const first = await dryRun(d)
    expect(first.exitCode, first.stderr).toBe(0)
    // What a run killed mid-write leaves: a dead pid's temp file, and the old naming.
    const dead = path.join(d, 'terraform', '.terraform.tfvars.json.999999.0123456789ab.autolabs-tmp')
    const legacy = path.join(d, 'terraform', '.terraform.tfvars.json.0123456789ab.tmp')
    await writeFile(dead, '{"proxmox_api_token": "x"}')
    await writeFile(legacy, '{"proxmox_api_token": "x"}')
    execFileSync('git', ['init', '-q', d])
    const ignored = execFileSync('git', ['-C', d, 'check-ignore', path.relative(d, dead)], {encoding: 'utf8'}).trim()
    expect(ignored).toBe(path.relative(d, dead))
    expect(GITIGNORE).toContain('*.autolabs-tmp')
    const second = await dryRun(d)
    expect(second.exitCode, second.stderr).toBe(0)
    expect(existsSync(dead)).toBe(false)
    expect(existsSync(legacy)).toBe(false)
    expect(await readFile(path.join(d, '.gitignore'), 'utf8')).toContain('*.autolabs-tmp')
  })
})

describe('public keys are parsed as public keys', () => {
  it('refuses a private key given as --ssh-public-key without copying it anywhere', async () => {
    const d = await fresh()
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(d, 'id')])
    const r = await dryRun(path.join(d, 'ws'), ['--ssh-public-key', path.join(d, 'id')])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/is a PRIVATE key/)
    expect(existsSync(path.join(d, 'ws', 'terraform', 'terraform.tfvars.json'))).toBe(false)
    expect(r.stdout + r.stderr).not.toContain('PRIVATE KEY-----\nb3Bl')
  })

  it('accepts the .pub file of the pair', async () => {
    const d = await fresh()
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'me@lab', '-f', path.join(d, 'id')])
    const r = await dryRun(path.join(d, 'ws'), ['--ssh-public-key', path.join(d, 'id.pub')])
    expect(r.exitCode, r.stderr).toBe(0)
    const tfvars = JSON.parse(await readFile(path.join(d, 'ws', 'terraform', 'terraform.tfvars.json'), 'utf8'))
    expect(tfvars.ssh_public_keys).toEqual([(await readFile(path.join(d, 'id.pub'), 'utf8')).trim()])
  })
})

describe('a damaged secrets.yaml', () => {
  it.each([
    ['broken YAML', (t: string) => t.replace(/bootstrapToken: (\S+)/, 'bootstrapToken: "$1\n  : ]['), /not valid YAML at line \d+, column \d+/],
    ['a wrong value', (t: string) => t.replace(/bootstrapToken: (\S+)/, 'bootstrapToken: [$1]'), /kubernetes\.bootstrapToken is not a string \(line \d+\)/],
  ])('is reported by line and key, never with a secret (%s)', async (_what, damage, message) => {
    const d = await fresh()
    expect((await dryRun(d)).exitCode).toBe(0)
    const file = path.join(d, '.autolabs', 'secrets.yaml')
    const text = await readFile(file, 'utf8')
    const token = /bootstrapToken: (\S+)/.exec(text)![1]
    const superuser = /superuser: (\S+)/.exec(text)![1]
    await writeFile(file, damage(text), {mode: 0o600})
    const r = await runCli(['init', '--dry-run', '--yes', '--json', '--dir', d])
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(message)
    expect(r.stderr).not.toMatch(/This is a bug/)
    for (const s of [token, superuser]) expect(r.stdout + r.stderr).not.toContain(s)
  })
})
