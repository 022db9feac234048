import {existsSync, readFileSync} from 'node:fs'
import {mkdir, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {execa} from 'execa'
import {stringify} from 'yaml'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'

import type {StatusReport} from '../../../src/status/types.js'
import {generateSecrets, saveSecrets} from '../../../src/workspace/secrets.js'
import {Workspace} from '../../../src/workspace/workspace.js'
import {BIN, removeDir, runCli, tempDir} from '../../support/cli.js'
import {type PveSim, startPveSim} from '../../support/pve-sim/index.mjs'
import {missing} from '../../support/tools.js'

// The built CLI against the Proxmox simulator, with VMs on loopback addresses where nothing
// answers SSH on port 2 (closed): every VM is unreachable over SSH, the API answers.
describe('autolabs status (CLI)', () => {
  let sim: PveSim
  let dir: string
  let ws: Workspace

  beforeAll(async () => {
    sim = await startPveSim({version: '9.1', taskDurationMs: 5})
    sim.addVm(110, {name: 'gitlab-vm', status: 'running', config: {memory: '8192', cores: '4'}})
    sim.addVm(120, {name: 'database-vm', status: 'running', config: {memory: '4096', cores: '2'}})
    sim.addVm(130, {name: 'k8s-vm', status: 'stopped', config: {memory: '8192', cores: '4'}})
    dir = await tempDir()
    ws = new Workspace(dir)
    await writeFile(
      ws.configFile,
      stringify({
        proxmox: {url: sim.url, fingerprint: sim.fingerprint, tokenId: sim.adminTokenId},
        network: {subnet: '127.0.0.0/24', gateway: '127.0.0.1', adminCidrs: ['127.0.0.0/24'], vms: {gitlab: {ip: '127.0.0.2'}, database: {ip: '127.0.0.3'}, k8s: {ip: '127.0.0.4'}}},
        ssh: {publicKeyFile: path.join(dir, 'id.pub'), privateKeyFile: path.join(dir, 'id'), user: 'debian'},
      }),
    )
    await mkdir(ws.stateDir, {recursive: true})
    // state.json from Terraform says where the VMs really are: port 2 on loopback (closed).
    await writeFile(ws.stateFile, JSON.stringify({version: 1, vms: {gitlab: {name: 'gitlab-vm', vmid: 110, ip: '127.0.0.2'}, database: {name: 'database-vm', vmid: 120, ip: '127.0.0.3'}, k8s: {name: 'k8s-vm', vmid: 130, ip: '127.0.0.4'}}}))
    await writeFile(path.join(dir, 'id'), 'not a key\n', {mode: 0o600})
    await saveSecrets(ws, generateSecrets(['autolabs', 'zitadel', 'gitlab']))
  })
  afterEach(() => {
    expect(sim.invalidRequests).toEqual([])
  })
  afterAll(async () => {
    await sim?.stop()
    await removeDir(dir)
  })

  it('--json: the documented shape, VM metrics from the API, SSH unreachable → exit 3', async () => {
    const r = await runCli(['status', '--json', '--dir', dir, '--connect-timeout', '2'], {env: {AUTOLABS_PROXMOX_TOKEN_SECRET: sim.adminTokenSecret}})
    expect(r.exitCode, r.stderr).toBe(3)
    const rep = JSON.parse(r.stdout) as StatusReport
    expect(Object.keys(rep)).toEqual(['schemaVersion', 'checkedAt', 'durationMs', 'overall', 'exitCode', 'summary', 'vms', 'checks'])
    expect(rep).toMatchObject({schemaVersion: 1, overall: 'unreachable', exitCode: 3})
    expect(rep.vms.map((v) => [v.name, v.vmid, v.ip, v.state])).toEqual([
      ['gitlab-vm', 110, '127.0.0.2', 'running'],
      ['database-vm', 120, '127.0.0.3', 'running'],
      ['k8s-vm', 130, '127.0.0.4', 'stopped'],
    ])
    expect(rep.vms[1]).toMatchObject({cpuPct: 5, memPct: 40})
    expect(rep.checks.find((c) => c.id === 'k8s/vm')).toMatchObject({status: 'fail', detail: 'VM is stopped'})
    expect(rep.checks.find((c) => c.id === 'database/ssh')).toMatchObject({status: 'unreachable', detail: expect.stringMatching(/^SSH to 127\.0\.0\.3/)})
    expect(rep.checks.length).toBeGreaterThan(0)
    for (const c of rep.checks) expect(Object.keys(c).sort()).toEqual(expect.arrayContaining(['detail', 'durationMs', 'id', 'name', 'status', 'target']))
    // No secret in the output.
    expect(r.stdout + r.stderr).not.toContain(sim.adminTokenSecret)
  })

  it('prints one screen of text on stdout without --json, with the verdict in the last line', async () => {
    const r = await runCli(['status', '--dir', dir, '--connect-timeout', '1'], {env: {AUTOLABS_PROXMOX_TOKEN_SECRET: sim.adminTokenSecret}})
    expect(r.exitCode).toBe(3)
    expect(r.stdout).toMatch(/^VM\s+VMID\s+IP\s+STATE/)
    expect(r.stdout).toMatch(/k8s-vm\s+130\s+127\.0\.0\.4\s+stopped/)
    expect(r.stdout.trim().split('\n').at(-1)).toMatch(/^UNREACHABLE \(exit 3\): \d+ ok, 0 warnings, \d+ failed, \d+ unreachable/)
  })

  it('refuses --watch without a terminal (exit 2), naming the alternative', async () => {
    const r = await runCli(['status', '--watch', '--dir', dir])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/--watch redraws a terminal/)
    expect(r.stderr).toMatch(/autolabs status --json/)
  })

  it.skipIf(missing('script', existsSync('/usr/bin/script')))('--watch redraws in place on a terminal until Ctrl+C, then exits with the last verdict', async () => {
    // script(1) gives the CLI a pseudo-terminal; the Ctrl+C (SIGINT) goes to the CLI once it has
    // drawn its second frame (an event, not a fixed wait, so a slow machine draws as many).
    const pidFile = path.join(dir, 'watch.pid')
    const child = execa('script', ['-qec', `sh -c 'echo $$ > ${pidFile}; exec node ${BIN} status --watch --interval 1 --connect-timeout 1 --dir ${dir}'`, '/dev/null'], {reject: false, timeout: 120_000, env: {AUTOLABS_PROXMOX_TOKEN_SECRET: sim.adminTokenSecret}})
    let seen = ''
    let interrupted = false
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString()
      if (!interrupted && seen.split('\u001B[H').length - 1 >= 2 && seen.endsWith('Ctrl+C to stop)')) {
        interrupted = true
        process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGINT')
      }
    })
    const r = await child
    expect(interrupted).toBe(true)
    const out = r.stdout
    expect(out.startsWith('\u001B[2J')).toBe(true)
    const frames = out.split('\u001B[H').length - 1
    expect(frames).toBeGreaterThanOrEqual(2)
    expect(out.match(/\(every 1 s; Ctrl\+C to stop\)/g)?.length).toBe(frames)
    expect(out).toMatch(/k8s-vm\s+130\s+127\.0\.0\.4\s+stopped/)
    expect(r.exitCode).toBe(3)
  })

  it('without Proxmox credentials the VM rows are skipped, not failed', async () => {
    const r = await runCli(['status', '--json', '--dir', dir, '--connect-timeout', '1'])
    const rep = JSON.parse(r.stdout) as StatusReport
    expect(rep.checks.filter((c) => c.id.endsWith('/vm')).map((c) => c.status)).toEqual(['skipped', 'skipped', 'skipped'])
  })
})
