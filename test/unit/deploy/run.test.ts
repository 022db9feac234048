import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {configSchema} from '../../../src/config/schema.js'
import {deploy, formatDeploySummary, REMOTE_DIR} from '../../../src/deploy/run.js'
import {readStageScripts} from '../../../src/deploy/plan.js'
import {InterruptedError} from '../../../src/errors.js'
import {type ExecOptions, type ExecResult, type SshSession, SshStoppedError, type SshTarget} from '../../../src/ssh/session.js'
import {receive, resetInterrupts} from '../../../src/util/interrupt.js'
import {generateSecrets} from '../../../src/workspace/secrets.js'
import type {State} from '../../../src/workspace/state.js'
import {Workspace} from '../../../src/workspace/workspace.js'

// The orchestration against fake SSH sessions: what runs where, in which order, with which
// flags, what is recorded, and how one VM's failure stays its own. (Real machines: test/lab.)
interface Call {
  vm: string
  step: string
  force: boolean
}

/** `holdUntil`: the step does not end before this holds (polled, at most 5 s), so ordering is decided by events, not by timing. */
type Behaviour = {code?: number; stdout?: string; stderr?: string; throws?: Error; holdUntil?: () => boolean}

function fakeConnect(calls: Call[], behave: (vm: string, step: string, force: boolean) => Behaviour, events: string[] = [], refuse: string[] = [], scripts: string[] = []) {
  const uploads: Record<string, Record<string, {content: string; mode: number}>> = {}
  const batches: string[][] = []
  const connect = async (target: SshTarget): Promise<SshSession> => {
    if (refuse.includes(target.name)) throw new Error(`connect ECONNREFUSED ${target.host}:22`)
    uploads[target.name] = {}
    let open = true
    return {
      target,
      fingerprint: 'SHA256:x',
      firstContact: false,
      async exec(_script: string, opts: ExecOptions = {}): Promise<ExecResult> {
        const args = opts.args ?? []
        scripts.push(_script)
        if (args.length === 0) {
          const stdout = _script.includes('/etc/kubernetes/admin.conf') ? `apiVersion: v1\nclusters: [{cluster: {server: 'https://${target.host}:6443'}}]\n` : ''
          return {code: 0, stdout, stderr: '', durationMs: 1, stdoutBytes: 0}
        }
        const force = args[0] === '--force'
        // [--force] <env-file> <step>...: the real script runs them in order and stops at a failure.
        const ids = args.slice(force ? 2 : 1)
        batches.push(ids)
        let stdout = ''
        let stderr = ''
        for (const step of ids) {
          calls.push({vm: target.name, step, force})
          events.push(`${target.name} start ${step}`)
          const b = behave(target.name, step, force)
          for (let i = 0; b.holdUntil && !b.holdUntil() && i < 500; i++) {
            // As the real session does: a stop ends the command and exec throws.
            if (opts.stop?.aborted) {
              events.push(`${target.name} stopped ${step}`)
              throw new SshStoppedError(target, opts.label ?? step, opts.logFile)
            }
            await new Promise((r) => setTimeout(r, 10))
          }
          events.push(`${target.name} end ${step}`)
          if (b.throws) throw b.throws
          const out = b.stdout ?? `AUTOLABS_STEP ${step} ${force ? 'changed' : 'unchanged'}\n`
          for (const l of (b.stderr ?? '').split('\n').filter(Boolean)) opts.onStderr?.(l)
          for (const l of out.split('\n').filter(Boolean)) opts.onStdout?.(l)
          stdout += out
          stderr += b.stderr ?? ''
          if ((b.code ?? 0) !== 0) return {code: b.code!, stdout, stderr, durationMs: 1, stdoutBytes: 0}
        }
        return {code: 0, stdout, stderr, durationMs: 1, stdoutBytes: 0}
      },
      async upload(content: string | Buffer, remotePath: string, mode = 0o644) {
        uploads[target.name][remotePath] = {content: String(content), mode}
      },
      async reconnect() {},
      isConnected: () => open,
      async close() {
        open = false
      },
    }
  }
  return {connect, uploads, batches}
}

describe('deploy (orchestration over fake SSH sessions)', () => {
  let dir: string
  let ws: Workspace
  const config = configSchema.parse({ssh: {privateKeyFile: 'key'}})
  const secrets = generateSecrets(['autolabs', 'zitadel', 'gitlab'])
  const scripts = readStageScripts()

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'al-deploy-'))
    ws = new Workspace(dir)
    await writeFile(path.join(dir, 'key'), 'not really a key', {mode: 0o600})
  })
  afterEach(async () => {
    await rm(dir, {recursive: true, force: true})
  })
  const state = async () => JSON.parse(await readFile(ws.stateFile, 'utf8')) as State

  it('runs every VM’s steps in order, uploads scripts and a 0600 parameter file, and records each finished step', async () => {
    const calls: Call[] = []
    const {connect, uploads} = fakeConnect(calls, () => ({}))
    const r = await deploy({ws, config, secrets, quiet: true, connect, scripts, only: ['database']})
    expect(r.ok).toBe(true)
    expect(calls.map((c) => c.step)).toEqual([...['wait_boot', 'apt_proxy', 'packages', 'guest_agent', 'time_sync', 'firewall'], ...scripts.scripts['database.sh'].match(/^check_(\w+)\(\)/gm)!.map((m) => m.slice(6, -2))])
    const up = uploads['database-vm']
    expect(up[`${REMOTE_DIR}/params.env`].mode).toBe(0o600)
    expect(up[`${REMOTE_DIR}/params.env`].content).toContain(`REDIS_PASSWORD='${secrets.redis.password}'`)
    expect(up[`${REMOTE_DIR}/stages/database.sh`].mode).toBe(0o755)
    expect(up[`${REMOTE_DIR}/stages/gitlab.sh`]).toBeUndefined()
    const st = await state()
    expect(Object.keys(st.steps!['database-vm'])).toHaveLength(16)
    expect(st.steps!['database-vm']['database/redis_config'].inputHash).toMatch(/^sha256:[0-9a-f]{64}$/)
  })

  it('forces a step whose inputs changed since it finished, and only that one', async () => {
    const calls: Call[] = []
    await deploy({ws, config, secrets, quiet: true, connect: fakeConnect(calls, () => ({})).connect, scripts, only: ['database']})
    calls.length = 0
    const rotated = {...secrets, redis: {password: 'rotated-password-0123456789'}}
    const fake = fakeConnect(calls, () => ({}))
    const r = await deploy({ws, config, secrets: rotated, quiet: true, connect: fake.connect, scripts, only: ['database']})
    expect(calls.filter((c) => c.force).map((c) => c.step)).toEqual(['redis_config'])
    // Steps expected to be done are checked in one call per stage; the changed one alone.
    expect(fake.batches).toEqual([
      ['wait_boot', 'apt_proxy', 'packages', 'guest_agent', 'time_sync', 'firewall'],
      ['postgres_repo', 'postgres_install', 'postgres_config', 'postgres_wal_archive', 'postgres_databases', 'redis_install'],
      ['redis_config'],
      ['seaweedfs_install', 'seaweedfs_config', 'seaweedfs_buckets'],
    ])
    expect(r.vms.database!.steps.every((s) => s.status === (s.id === 'database/redis_config' ? 'changed' : 'unchanged'))).toBe(true)
    expect(r.vms.database!.steps.find((s) => s.id === 'database/redis_config')!.status).toBe('changed')
  })

  it('--force forces every selected step', async () => {
    const calls: Call[] = []
    await deploy({ws, config, secrets, quiet: true, force: true, connect: fakeConnect(calls, () => ({})).connect, scripts, only: ['k8s,base']})
    expect(calls.length).toBe(6)
    expect(calls.every((c) => c.force && c.vm === 'k8s-vm')).toBe(true)
  })

  it('a failing step stops its VM only; the others finish; the failure carries the reason, tail and log path', async () => {
    const calls: Call[] = []
    const {connect} = fakeConnect(calls, (vm, step) =>
      vm === 'gitlab-vm' && step === 'docker_repo'
        ? {code: 1, stdout: '', stderr: 'trying\nAUTOLABS_ERROR cannot reach https://download.docker.com/linux/ubuntu/gpg (curl: (28) timeout). set network.aptProxy\n'}
        : {},
    )
    const r = await deploy({ws, config, secrets, quiet: true, connect, scripts})
    expect(r.ok).toBe(false)
    expect(r.vms.database!.ok).toBe(true)
    expect(r.vms.k8s!.ok).toBe(true)
    const g = r.vms.gitlab!.steps
    const failed = g.find((s) => s.status === 'failed')!
    expect(failed.id).toBe('gitlab/docker_repo')
    expect(failed.error).toBe('cannot reach https://download.docker.com/linux/ubuntu/gpg (curl: (28) timeout). set network.aptProxy')
    expect(failed.tail).toContain('trying')
    expect(failed.logPath).toBe(ws.logFile('gitlab-vm', 'gitlab-docker_repo.log'))
    expect(g.slice(g.indexOf(failed) + 1).every((s) => s.status === 'skipped')).toBe(true)
    expect(calls.filter((c) => c.vm === 'gitlab-vm').map((c) => c.step)).not.toContain('gitlab_compose')
    // Not recorded: the next deploy runs it again.
    expect((await state()).steps!['gitlab-vm']['gitlab/docker_repo']).toBeUndefined()
  })

  it('in a batched re-run, a step that fails is the one reported; the ones before it count as done', async () => {
    await deploy({ws, config, secrets, quiet: true, connect: fakeConnect([], () => ({})).connect, scripts, only: ['database-vm']})
    const calls: Call[] = []
    const {connect} = fakeConnect(calls, (_vm, step) => (step === 'postgres_config' ? {code: 1, stdout: '', stderr: 'AUTOLABS_ERROR PostgreSQL does not answer'} : {}))
    const r = await deploy({ws, config, secrets, quiet: true, connect, scripts, only: ['database-vm']})
    const st = Object.fromEntries(r.vms.database!.steps.map((s) => [s.id, s.status]))
    expect(st['database/postgres_install']).toBe('unchanged')
    expect(st['database/postgres_config']).toBe('failed')
    expect(st['database/postgres_wal_archive']).toBe('skipped')
    expect(r.vms.database!.steps.find((s) => s.id === 'database/postgres_config')!.error).toBe('PostgreSQL does not answer')
  })

  it("copies the cluster's admin.conf into the workspace (0600) after the kubeconfig step, once", async () => {
    const {stat} = await import('node:fs/promises')
    const first = await deploy({ws, config, secrets, quiet: true, connect: fakeConnect([], () => ({})).connect, scripts, only: ['k8s']})
    expect(first.vms.k8s!.steps.find((s) => s.id === 'k8s/kubeconfig')!.status).toBe('changed')
    expect(await readFile(ws.kubeconfigFile, 'utf8')).toContain("server: 'https://192.168.100.30:6443'")
    expect((await stat(ws.kubeconfigFile)).mode & 0o777).toBe(0o600)
    const again = await deploy({ws, config, secrets, quiet: true, connect: fakeConnect([], () => ({})).connect, scripts, only: ['k8s']})
    expect(again.vms.k8s!.steps.find((s) => s.id === 'k8s/kubeconfig')!.status).toBe('unchanged')
  })

  it('a step whose output lacks the outcome line counts as failed, not done', async () => {
    const calls: Call[] = []
    const {connect} = fakeConnect(calls, (_vm, step) => (step === 'packages' ? {code: 0, stdout: 'nothing\n'} : {}))
    const r = await deploy({ws, config, secrets, quiet: true, connect, scripts, only: ['database-vm']})
    expect(r.vms.database!.steps.find((s) => s.id === 'base/packages')!.status).toBe('failed')
  })

  it('an unreadable SSH key is a user error naming ssh.privateKeyFile', async () => {
    const c = configSchema.parse({ssh: {privateKeyFile: 'missing-key'}})
    await expect(deploy({ws, config: c, secrets, quiet: true, connect: fakeConnect([], () => ({})).connect, scripts})).rejects.toThrow(/missing-key cannot be read/)
  })

  describe('stop signals (src/util/interrupt.ts)', () => {
    afterEach(() => resetInterrupts())

    it('the first signal lets the running step finish and be recorded, starts nothing after it, and says where it stopped', async () => {
      const events: string[] = []
      let signalled = false
      const {connect} = fakeConnect([], (_vm, step) => {
        if (step !== 'packages') return {}
        // The signal arrives while packages runs on the VM.
        receive('SIGINT', {exit: () => undefined})
        signalled = true
        return {holdUntil: () => signalled, stdout: 'AUTOLABS_STEP packages changed\n'}
      }, events)
      const err = await deploy({ws, config, secrets, quiet: true, connect, scripts, only: ['database-vm']}).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(InterruptedError)
      const e = err as InterruptedError
      expect(e.exitCode).toBe(130)
      expect(e.message).toBe(
        'Interrupted (SIGINT): the running steps finished, nothing new was started.\n  database-vm: finished 3 steps, the last base/packages; not started: base/guest_agent and 12 more',
      )
      expect(e.suggestion).toMatch(/^Run `autolabs deploy` again to continue where it stopped/)
      expect(e.detail).toEqual({vms: {'database-vm': {done: ['base/wait_boot', 'base/apt_proxy', 'base/packages'], stopped: [], failed: [], notStarted: expect.arrayContaining(['base/guest_agent']) as unknown}}})
      expect(events.at(-1)).toBe('database-vm end packages')
      expect(Object.keys((await state()).steps!['database-vm'])).toEqual(['base/wait_boot', 'base/apt_proxy', 'base/packages'])
    })

    it('a step that failed on its own meanwhile is reported as failed with its log, not as not started', async () => {
      const {connect} = fakeConnect([], (vm, step) => {
        if (vm !== 'gitlab-vm' || step !== 'packages') return {}
        receive('SIGINT', {exit: () => undefined})
        return {code: 1, stdout: '', stderr: 'AUTOLABS_ERROR apt broke\n'}
      })
      const err = (await deploy({ws, config, secrets, quiet: true, connect, scripts, only: ['gitlab-vm']}).catch((e: unknown) => e)) as InterruptedError
      expect(err).toBeInstanceOf(InterruptedError)
      expect(err.detail).toMatchObject({vms: {'gitlab-vm': {done: ['base/wait_boot', 'base/apt_proxy'], failed: ['base/packages'], stopped: []}}})
      expect(err.message).toContain(`gitlab-vm: finished 2 steps, the last base/apt_proxy; base/packages failed (${ws.logFile('gitlab-vm', 'base-packages.log')}); not started: base/guest_agent and`)
    })

    it('a second signal stops the running step on the VM, records it as not done, removes the parameter file, then lets the process exit', async () => {
      const events: string[] = []
      const ran: string[] = []
      const exits: number[] = []
      const exit = (code: number) => {
        events.push('exit')
        exits.push(code)
      }
      const {connect} = fakeConnect([], (_vm, step) => {
        if (step !== 'packages') return {}
        receive('SIGTERM', {exit})
        receive('SIGTERM', {exit})
        return {holdUntil: () => false}
      }, events, [], ran)
      const err = await deploy({ws, config, secrets, quiet: true, connect, scripts, only: ['database-vm']}).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(InterruptedError)
      expect((err as InterruptedError).message).toBe(
        'Interrupted (SIGTERM): stopped at once.\n  database-vm: finished 2 steps, the last base/apt_proxy; stopped base/packages on the VM (SIGTERM): not recorded as done; not started: base/guest_agent and 12 more',
      )
      expect((err as InterruptedError).detail).toMatchObject({vms: {'database-vm': {stopped: ['base/packages']}}})
      // The process exits (code 143) only after the step was stopped and the secrets file removed.
      await new Promise((r) => setImmediate(r))
      expect(exits).toEqual([143])
      expect(events.slice(-2)).toEqual(['database-vm stopped packages', 'exit'])
      expect(ran.at(-1)).toBe(`rm -f ${REMOTE_DIR}/params.env`)
      expect(Object.keys((await state()).steps!['database-vm'])).toEqual(['base/wait_boot', 'base/apt_proxy'])
    })
  })

  describe('steps that wait for steps on other VMs (DEPENDENCIES)', () => {
    const at = (events: string[], e: string) => {
      const i = events.indexOf(e)
      if (i < 0) throw new Error(`no event "${e}" in ${events.join(', ')}`)
      return i
    }

    it('GitLab’s database login waits for the databases on database-vm, while the VMs otherwise run concurrently', async () => {
      const events: string[] = []
      // The databases take until gitlab-vm has written its Compose project and k8s-vm is done:
      // only a deploy that runs the VMs concurrently gets there.
      const others = () => events.includes('gitlab-vm end gitlab_compose') && events.includes('k8s-vm end kubeconfig')
      const {connect} = fakeConnect([], (vm, step) => (vm === 'database-vm' && step === 'postgres_databases' ? {holdUntil: others} : {}), events)
      const r = await deploy({ws, config, secrets, quiet: true, connect, scripts})
      expect(r.ok).toBe(true)
      expect(at(events, 'gitlab-vm start database_login')).toBeGreaterThan(at(events, 'database-vm end postgres_databases'))
      expect(at(events, 'gitlab-vm start gitlab_up')).toBeGreaterThan(at(events, 'gitlab-vm end database_login'))
      // Nothing else waits: gitlab-vm wrote its Compose project and k8s-vm finished meanwhile.
      expect(at(events, 'gitlab-vm end gitlab_compose')).toBeLessThan(at(events, 'database-vm end postgres_databases'))
      expect(at(events, 'k8s-vm end kubeconfig')).toBeLessThan(at(events, 'database-vm end postgres_databases'))
    })

    it('a failed dependency skips the waiting step and the VM’s later steps, with the reason; what came before ran', async () => {
      const calls: Call[] = []
      const {connect} = fakeConnect(calls, (vm, step) =>
        vm === 'database-vm' && step === 'postgres_databases' ? {code: 1, stdout: '', stderr: 'AUTOLABS_ERROR role creation failed'} : {},
      )
      const r = await deploy({ws, config, secrets, quiet: true, connect, scripts})
      expect(r.ok).toBe(false)
      expect(r.vms.k8s!.ok).toBe(true)
      const g = Object.fromEntries(r.vms.gitlab!.steps.map((s) => [s.id, s]))
      expect(g['gitlab/gitlab_compose'].status).toBe('unchanged')
      expect(g['gitlab/database_login'].status).toBe('skipped')
      expect(g['gitlab/database_login'].reason).toMatch(/^waits for database\/postgres_databases on database-vm \(.+\), which did not finish: database-vm: database\/postgres_databases failed$/)
      expect(g['gitlab/gitlab_up'].status).toBe('skipped')
      expect(g['gitlab/gitlab_up'].reason).toBe('not run: gitlab/database_login did not run')
      expect(calls.filter((c) => c.vm === 'gitlab-vm').map((c) => c.step)).not.toContain('database_login')
      expect(calls.filter((c) => c.vm === 'gitlab-vm').map((c) => c.step)).not.toContain('gitlab_up')
      expect(r.vms.gitlab!.error).toBeUndefined()
      const text = formatDeploySummary(r)
      expect(text).toContain('gitlab/database_login not run: waits for database/postgres_databases on database-vm')
      expect(text).not.toContain('gitlab/gitlab_up not run')
    })

    it('a dependency whose VM cannot be reached skips the waiting step, naming the VM', async () => {
      const {connect} = fakeConnect([], () => ({}), [], ['database-vm'])
      const r = await deploy({ws, config, secrets, quiet: true, connect, scripts})
      const login = r.vms.gitlab!.steps.find((s) => s.id === 'gitlab/database_login')!
      expect(login.status).toBe('skipped')
      expect(login.reason).toContain('which did not finish: database-vm could not be reached')
      expect(r.vms.database!.error).toContain('ECONNREFUSED')
    })

    it('waits for nothing when database-vm is not part of the deploy (--only gitlab): the step’s own check proves the login', async () => {
      const calls: Call[] = []
      const r = await deploy({ws, config, secrets, quiet: true, connect: fakeConnect(calls, () => ({})).connect, scripts, only: ['gitlab']})
      expect(r.ok).toBe(true)
      expect(calls.map((c) => c.step)).toContain('database_login')
    })

    it('does not wait when GitLab keeps its bundled database (services.gitlab.externalDatabase: false)', async () => {
      const bundled = configSchema.parse({ssh: {privateKeyFile: 'key'}, services: {gitlab: {externalDatabase: false}}})
      const events: string[] = []
      const gitlabDone = () => events.includes('gitlab-vm end runner_register')
      const {connect} = fakeConnect([], (vm, step) => (vm === 'database-vm' && step === 'postgres_databases' ? {holdUntil: gitlabDone} : {}), events)
      const r = await deploy({ws, config: bundled, secrets, quiet: true, connect, scripts})
      expect(r.ok).toBe(true)
      expect(at(events, 'gitlab-vm end runner_register')).toBeLessThan(at(events, 'database-vm end postgres_databases'))
    })

    it('a re-run batches the finished checks but starts a new batch at the waiting step', async () => {
      await deploy({ws, config, secrets, quiet: true, connect: fakeConnect([], () => ({})).connect, scripts, only: ['gitlab']})
      const fake = fakeConnect([], () => ({}))
      await deploy({ws, config, secrets, quiet: true, connect: fake.connect, scripts, only: ['gitlab']})
      const gitlabBatches = fake.batches.filter((b) => b.includes('docker_repo') || b.includes('database_login'))
      expect(gitlabBatches).toEqual([
        ['docker_repo', 'docker_install', 'registry_trust', 'gitlab_compose'],
        ['database_login', 'gitlab_up', 'gitlab_ready', 'runner_install', 'runner_register'],
      ])
    })
  })
})
