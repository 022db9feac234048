import {existsSync} from 'node:fs'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {parse, stringify} from 'yaml'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {labAvailable, startLab, type Lab} from '../support/lab/lab.js'
import type {Secrets} from '../../src/workspace/secrets.js'
import type {Workspace} from '../../src/workspace/workspace.js'
import {describeRun, labWorkspace, runDeploy, sh, statuses, type DeployRun} from './deploy-support.js'
import {must} from './backup-support.js'

// The database VM's stages (base + database) run by the real CLI (`node bin/run.js deploy`)
// against a real Debian 12 systemd machine over SSH; then the result is checked from the host
// over TCP, as a client of the platform would see it.
const avail = labAvailable()
const hasClients = existsSync('/usr/bin/psql') && existsSync('/usr/bin/redis-cli')
const SUBNET = 40
const DB_IP = `10.99.${SUBNET}.20`
// Same bridge, but outside the VM subnet the config allows (10.99.40.0/25).
const OUTSIDER_IP = `10.99.${SUBNET}.200`
const OUTSIDER_NS = `al${SUBNET}-outsider`

const reason = !avail.ok ? avail.reason : !hasClients ? 'needs psql and redis-cli on the host (apt-get install postgresql-client redis-tools)' : ''

describe.skipIf(!avail.ok || !hasClients)(`deploy: database-vm on a lab machine${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let lab: Lab
  let ws: Workspace
  let secrets: Secrets
  let first: DeployRun
  let resumed: DeployRun
  let again: DeployRun
  let killedDuring: string | undefined

  beforeAll(async () => {
    // A fresh cloud VM has no apt proxy: the product's network.aptProxy option must set it.
    lab = await startLab({name: 'deploy-database', subnet: SUBNET, machines: [{name: 'database-vm', ip: DB_IP}], aptProxyInMachine: false})
    ;({ws, secrets} = await labWorkspace(lab, {database: DB_IP}))

    // First deploy, cut in the middle of a step by killing sshd's sessions.
    let finished = false
    const running = runDeploy(ws, ['--only', 'database']).finally(() => {
      finished = true
    })
    const log = ws.logFile('database-vm', 'database-postgres_install.log')
    const until = Date.now() + 300_000
    while (!existsSync(log) && !finished && Date.now() < until) await new Promise((r) => setTimeout(r, 200))
    if (existsSync(log) && !finished) {
      await new Promise((r) => setTimeout(r, 1500))
      killedDuring = 'database/postgres_install'
      await lab.killSshd('database-vm', 'sessions')
    }
    first = await running
    resumed = await runDeploy(ws, ['--only', 'database'])
    again = await runDeploy(ws, ['--only', 'database'])

    await sh('ip', ['netns', 'del', OUTSIDER_NS])
    await sh('ip', ['link', 'del', `alv${SUBNET}out`])
    for (const args of [
      ['netns', 'add', OUTSIDER_NS],
      ['link', 'add', `alv${SUBNET}out`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', OUTSIDER_NS],
      ['link', 'set', `alv${SUBNET}out`, 'master', lab.bridge],
      ['link', 'set', `alv${SUBNET}out`, 'up'],
      ['-n', OUTSIDER_NS, 'addr', 'add', `${OUTSIDER_IP}/24`, 'dev', 'eth0'],
      ['-n', OUTSIDER_NS, 'link', 'set', 'eth0', 'up'],
    ]) {
      const r = await sh('ip', args)
      if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`)
    }
  })

  afterAll(async () => {
    await sh('ip', ['netns', 'del', OUTSIDER_NS])
    await sh('ip', ['link', 'del', `alv${SUBNET}out`])
    await lab?.stop()
  })

  it('the interrupted deploy failed on database-vm naming the lost connection; nothing after it ran', () => {
    expect(killedDuring, 'the step to interrupt never started').toBeDefined()
    expect(first.exitCode, describeRun(first)).toBe(1)
    const st = statuses(first, 'database')
    const failed = Object.entries(st).filter(([, s]) => s === 'failed')
    expect(failed.map(([id]) => id)).toEqual([killedDuring])
    const vm = first.json!.vms.database
    expect(vm.steps.find((s) => s.id === killedDuring)!.error).toMatch(/SSH connection to database-vm was lost/)
    const after = vm.steps.slice(vm.steps.findIndex((s) => s.id === killedDuring) + 1)
    expect(after.length).toBeGreaterThan(0)
    expect(after.every((s) => s.status === 'skipped')).toBe(true)
  })

  it('the next deploy resumes: what finished before is unchanged, nothing is done twice', async () => {
    const before = statuses(first, 'database')
    const now = statuses(resumed, 'database')
    for (const [id, s] of Object.entries(before)) if (s === 'changed' || s === 'unchanged') expect(now[id], id).toBe('unchanged')
    // Every package was installed by exactly one apt run (interrupted runs finish, not repeat).
    const m = lab.machine('database-vm')
    const hist = await m.exec("grep -h '^Install:' /var/log/apt/history.log")
    for (const pkg of ['postgresql-15:', 'redis-server:', 'qemu-guest-agent:', 'ufw:']) {
      const n = hist.stdout.split('\n').filter((l) => l.includes(` ${pkg}`) || l.includes(`Install: ${pkg}`)).length
      expect(n, `${pkg} install runs:\n${hist.stdout}`).toBe(1)
    }
  })

  it('the resumed deploy completes everything up to object storage, whose download source is unreachable here: it fails at once, naming the source and network.aptProxy', () => {
    const st = statuses(resumed, 'database')
    const notOk = Object.entries(st).filter(([, s]) => s !== 'changed' && s !== 'unchanged')
    expect(notOk, describeRun(resumed)).toEqual([
      ['database/seaweedfs_install', 'failed'],
      ['database/seaweedfs_config', 'skipped'],
      ['database/seaweedfs_buckets', 'skipped'],
    ])
    const step = resumed.json!.vms.database.steps.find((s) => s.id === 'database/seaweedfs_install')!
    // Ended by the probe's own bound (curl --max-time): curl's error is in the message.
    expect(step.error).toMatch(/cannot reach https:\/\/github\.com\/seaweedfs\/seaweedfs\/releases\/download\/\S+ \(curl: .*network\.aptProxy/)
    expect(step.logPath && existsSync(step.logPath)).toBe(true)
    expect(resumed.stderr).toMatch(/database\/seaweedfs_install failed/)
    expect(resumed.stderr).toContain(step.logPath!)
  })

  it('each database accepts its own user with the generated password over TCP', async () => {
    for (const db of ['autolabs', 'zitadel', 'gitlab']) {
      const r = await sh('psql', ['-X', '-h', DB_IP, '-U', `${db}_user`, '-d', db, '-tAc', 'select current_user, current_database()'], {
        env: {PGPASSWORD: secrets.postgres.users[db], PGCONNECT_TIMEOUT: '5'},
      })
      expect(r.stderr).toBe('')
      expect(r.stdout.trim()).toBe(`${db}_user|${db}`)
    }
  })

  it('refuses a wrong password and another database’s user', async () => {
    const wrong = await sh('psql', ['-X', '-h', DB_IP, '-U', 'autolabs_user', '-d', 'autolabs', '-c', 'select 1'], {env: {PGPASSWORD: 'not-the-password', PGCONNECT_TIMEOUT: '5'}})
    expect(wrong.code).not.toBe(0)
    expect(wrong.stderr).toMatch(/password authentication failed for user "autolabs_user"/)
    const cross = await sh('psql', ['-X', '-h', DB_IP, '-U', 'autolabs_user', '-d', 'zitadel', '-c', 'select 1'], {
      env: {PGPASSWORD: secrets.postgres.users.autolabs, PGCONNECT_TIMEOUT: '5'},
    })
    expect(cross.code).not.toBe(0)
    expect(cross.stderr).toMatch(/no pg_hba\.conf entry .*user "autolabs_user", database "zitadel"/)
  })

  /** psql from outside the VM subnet as autolabs, with the right password. */
  const outsiderPsql = (connectTimeoutS: number) =>
    sh('ip', ['netns', 'exec', OUTSIDER_NS, 'psql', '-X', '-h', DB_IP, '-U', 'autolabs_user', '-d', 'autolabs', '-c', 'select 1'], {
      env: {PGPASSWORD: secrets.postgres.users.autolabs, PGCONNECT_TIMEOUT: String(connectTimeoutS)},
      timeoutMs: 20_000,
    })

  it('the firewall is enforced: a client outside the VM subnet is dropped before PostgreSQL or Redis sees it', async () => {
    const m = lab.machine('database-vm')
    const st = await m.exec('ufw status')
    expect(st.stdout).toMatch(/^Status: active/m)
    expect(st.stdout).toMatch(new RegExp(`^5432/tcp\\s+ALLOW\\s+10\\.99\\.${SUBNET}\\.0/25\\s*$`, 'm'))
    const pg = await outsiderPsql(3)
    expect(pg.code).not.toBe(0)
    expect(pg.stderr).toMatch(/timeout expired/) // dropped, not refused: no TCP answer at all
    const redis = await sh('ip', ['netns', 'exec', OUTSIDER_NS, 'timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${DB_IP}/6379`], {timeoutMs: 20_000})
    expect(redis.code).toBe(124)
  })

  it('and behind the firewall, pg_hba alone still refuses that client, even with the right password', async () => {
    const m = lab.machine('database-vm')
    must(await m.exec('ufw disable'), 'ufw disable')
    try {
      const r = await outsiderPsql(5)
      expect(r.code).not.toBe(0)
      expect(r.stderr).toMatch(new RegExp(`no pg_hba\\.conf entry for host "${OUTSIDER_IP.replaceAll('.', '\\.')}"`))
    } finally {
      must(await m.exec('ufw --force enable'), 'ufw enable')
    }
  })

  it('Redis refuses commands without AUTH and answers with it; it listens on the VM address', async () => {
    const anon = await sh('redis-cli', ['-h', DB_IP, 'ping'])
    expect(anon.stdout + anon.stderr).toMatch(/NOAUTH Authentication required/)
    const authed = await sh('redis-cli', ['--no-auth-warning', '-h', DB_IP, 'ping'], {env: {REDISCLI_AUTH: secrets.redis.password}})
    expect(authed.stdout.trim()).toBe('PONG')
    const wrong = await sh('redis-cli', ['--no-auth-warning', '-h', DB_IP, 'ping'], {env: {REDISCLI_AUTH: 'wrong-password-123456'}})
    expect(wrong.stdout + wrong.stderr).toMatch(/WRONGPASS|invalid password/)
  })

  it('PostgreSQL uses scram-sha-256, archives WAL, allows GitLab\'s 400 connections, and stores no plain password', async () => {
    const m = lab.machine('database-vm')
    const r = await m.exec(
      "runuser -u postgres -- psql -XtA -c \"select setting from pg_settings where name in ('password_encryption','archive_mode','listen_addresses','max_connections') order by name\" -c \"select rolname, left(rolpassword, 14) from pg_authid where rolname in ('autolabs_user','zitadel_user','gitlab_user') order by 1\"",
    )
    expect(r.stdout.trim().split('\n')).toEqual([
      'on',
      `localhost,${DB_IP}`,
      '400',
      'scram-sha-256',
      'autolabs_user|SCRAM-SHA-256$',
      'gitlab_user|SCRAM-SHA-256$',
      'zitadel_user|SCRAM-SHA-256$',
    ])
  })

  it('a second deploy reports every step unchanged (object storage still stops at its unreachable source)', () => {
    const st = statuses(again, 'database')
    for (const [id, s] of Object.entries(st)) {
      if (id.startsWith('database/seaweedfs_')) continue
      expect(s, `${id}\n${describeRun(again)}`).toBe('unchanged')
    }
    expect(st['database/seaweedfs_install']).toBe('failed')
  })

  it('a changed input re-runs only the step it affects: a new Redis password re-runs redis_config alone, and Redis takes it', async () => {
    const file = ws.secretsFile
    const doc = parse(await readFile(file, 'utf8')) as Secrets
    const old = doc.redis.password
    doc.redis.password = 'rotated-Redis-password-0123456789'
    await writeFile(file, stringify(doc), {mode: 0o600})
    const run = await runDeploy(ws, ['--only', 'database'])
    const st = statuses(run, 'database')
    const rerun = Object.entries(st).filter(([id, s]) => s !== 'unchanged' && !id.startsWith('database/seaweedfs_'))
    expect(rerun, describeRun(run)).toEqual([['database/redis_config', 'changed']])
    const withNew = await sh('redis-cli', ['--no-auth-warning', '-h', DB_IP, 'ping'], {env: {REDISCLI_AUTH: doc.redis.password}})
    expect(withNew.stdout.trim()).toBe('PONG')
    const withOld = await sh('redis-cli', ['--no-auth-warning', '-h', DB_IP, 'ping'], {env: {REDISCLI_AUTH: old}})
    expect(withOld.stdout + withOld.stderr).toMatch(/WRONGPASS|invalid password/)
  })

  it('keeps secrets out of the logs, the JSON output and the VM (the parameter file is removed)', async () => {
    const texts = [first.stdout, first.stderr, resumed.stdout, resumed.stderr, again.stdout, again.stderr]
    for (const vm of Object.values(resumed.json!.vms)) for (const s of vm.steps) if (s.logPath && existsSync(s.logPath)) texts.push(await readFile(s.logPath, 'utf8'))
    const all = texts.join('\n')
    for (const secret of [secrets.redis.password, secrets.postgres.users.autolabs, secrets.objectStorage.secretKey]) expect(all).not.toContain(secret)
    const m = lab.machine('database-vm')
    expect((await m.exec('test -e /var/lib/autolabs/params.env; echo $?')).stdout.trim()).toBe('1')
    expect(path.dirname(ws.stateFile)).toBe(ws.stateDir)
  })
})
