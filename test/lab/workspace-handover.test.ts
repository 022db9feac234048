import {createHash} from 'node:crypto'
import {mkdir, readFile, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {parse, stringify} from 'yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {BackupManifest} from '../../src/backup/manifest.js'
import type {StatusReport} from '../../src/status/types.js'
import {Workspace} from '../../src/workspace/workspace.js'
import {runCli} from '../support/cli.js'
import {type Lab, labAvailable, startLab} from '../support/lab/lab.js'
import {must} from './backup-support.js'
import {labWorkspace, sh} from './deploy-support.js'

// The workstation is lost; the environment is not. Real machines (systemd-nspawn, sshd) stand
// in for the VMs: `backup now` leaves an encrypted copy of the private state on database-vm,
// that copy is fetched back and imported into a fresh clone of the Git part, and the clone
// manages the same machines with the host keys pinned by the first workstation. An export
// handed to another folder does the same.
const avail = labAvailable()
const SUBNET = 190
const IP = {gitlab: `10.99.${SUBNET}.10`, database: `10.99.${SUBNET}.20`, k8s: `10.99.${SUBNET}.30`}

describe.skipIf(!avail.ok)(`the workspace outlives the workstation${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let lab: Lab
  let ws: Workspace
  let scratch: string
  let keyFile: string

  beforeAll(async () => {
    lab = await startLab({name: 'workspace-handover', subnet: SUBNET, machines: [{name: 'gitlab-vm', ip: IP.gitlab}, {name: 'database-vm', ip: IP.database}, {name: 'k8s-vm', ip: IP.k8s}]})
    ;({ws} = await labWorkspace(lab, IP))
    scratch = `${ws.root}-elsewhere`
    await mkdir(scratch)
    keyFile = path.join(scratch, 'admin.agekey')
    const kg = await runCli(['workspace', 'keygen', keyFile, '--json'])
    expect(kg.exitCode, kg.stderr).toBe(0)
    const config = parse(await readFile(ws.configFile, 'utf8')) as Record<string, unknown>
    await writeFile(ws.configFile, stringify({...config, backup: {recipients: [(JSON.parse(kg.stdout) as {recipient: string}).recipient]}}))
  })
  afterAll(async () => {
    await lab?.stop()
    if (ws) await sh('rm', ['-rf', ws.root, scratch])
  })

  const sshChecks = async (dir: string) => {
    const r = await runCli(['status', '--json', '--dir', dir, '--connect-timeout', '10'], {timeoutMs: 120_000})
    const rep = JSON.parse(r.stdout) as StatusReport
    return Object.fromEntries(rep.checks.filter((c) => c.id.endsWith('/ssh')).map((c) => [c.id, c.status]))
  }
  const allSshOk = {'gitlab/ssh': 'ok', 'database/ssh': 'ok', 'k8s/ssh': 'ok'}

  it('backup now keeps an encrypted copy on database-vm (root-only, bounded); it restores a fresh clone that manages the same machines', async () => {
    expect(await sshChecks(ws.root)).toEqual(allSshOk) // first contact: the three host keys are pinned
    const pinned = await readFile(ws.knownHostsFile, 'utf8')
    expect(pinned.trim().split('\n').length).toBeGreaterThanOrEqual(3)

    const ids: string[] = []
    for (let i = 0; i < 2; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 1100)) // a new backup id
      const r = await runCli(['backup', 'now', '--only', 'workspace', '--keep-daily', '1', '--keep-weekly', '0', '--json', '--dir', ws.root], {timeoutMs: 120_000})
      expect(r.exitCode, r.stderr + r.stdout).toBe(0)
      const m = (JSON.parse(r.stdout) as {manifest: BackupManifest}).manifest
      expect(m.parts[0].details?.copies).toEqual([{to: `database-vm:/var/backups/autolabs/workspace/${m.id}.tar.age`, ok: true}])
      ids.push(m.id)
    }
    const db = lab.machine('database-vm')
    // Only the newest copy is kept (keep-daily 1 + keep-weekly 0), root-only.
    expect(must(await db.exec('stat -c "%a %U %n" /var/backups/autolabs/workspace /var/backups/autolabs/workspace/*'), 'stat').trim().split('\n')).toEqual([
      '700 root /var/backups/autolabs/workspace',
      `600 root /var/backups/autolabs/workspace/${ids[1]}.tar.age`,
    ])
    const local = await readFile(path.join(ws.backupsDir, ids[1], 'workspace.tar.age'))
    const remoteSum = must(await db.exec(`sha256sum /var/backups/autolabs/workspace/${ids[1]}.tar.age`), 'sha256sum').split(' ')[0]
    expect(remoteSum).toBe(createHash('sha256').update(local).digest('hex'))

    // The workstation is gone: fetch the copy as the runbook says (ssh … sudo cat), clone the Git part, import.
    const fetched = path.join(scratch, 'from-database-vm.tar.age')
    // (OpenSSH reads autolabs' known_hosts: the host key is checked here too.)
    await sh('bash', ['-c', `ssh -i "$1" -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$3" ${db.user}@${IP.database} sudo cat /var/backups/autolabs/workspace/${ids[1]}.tar.age > "$2"`, 'x', lab.keyPath, fetched, ws.knownHostsFile])
    const clone = new Workspace(path.join(scratch, 'clone'))
    await mkdir(clone.root)
    await writeFile(clone.configFile, await readFile(ws.configFile))
    const im = await runCli(['workspace', 'import', fetched, '--dir', clone.root, '--identity-file', keyFile, '--json'])
    expect(im.exitCode, im.stderr).toBe(0)
    expect(await readFile(clone.knownHostsFile, 'utf8')).toBe(pinned)
    expect(await readFile(clone.secretsFile, 'utf8')).toBe(await readFile(ws.secretsFile, 'utf8'))
    expect((await stat(clone.secretsFile)).mode & 0o777).toBe(0o600)
    expect(await sshChecks(clone.root)).toEqual(allSshOk)
    // Pinned, not re-learned: the clone's known_hosts is the first workstation's, untouched.
    expect(await readFile(clone.knownHostsFile, 'utf8')).toBe(pinned)
  })

  it('workspace export → import into an empty folder manages the same machines', async () => {
    const file = path.join(scratch, 'handover.tar.age')
    const ex = await runCli(['workspace', 'export', file, '--dir', ws.root, '--json'])
    expect(ex.exitCode, ex.stderr).toBe(0)
    const other = path.join(scratch, 'colleague')
    const im = await runCli(['workspace', 'import', file, '--dir', other, '--json'], {env: {AUTOLABS_AGE_IDENTITY_FILE: keyFile}})
    expect(im.exitCode, im.stderr).toBe(0)
    expect(await sshChecks(other)).toEqual(allSshOk)
    expect(await readFile(new Workspace(other).knownHostsFile, 'utf8')).toBe(await readFile(ws.knownHostsFile, 'utf8'))
  })
})
