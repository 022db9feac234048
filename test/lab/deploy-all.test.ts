import {existsSync, statSync} from 'node:fs'
import {readFile} from 'node:fs/promises'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {labAvailable, startLab, type Lab} from '../support/lab/lab.js'
import type {Workspace} from '../../src/workspace/workspace.js'
import {describeRun, labWorkspace, runDeploy, statuses, type DeployRun} from './deploy-support.js'

// All three VMs deployed at once by the real CLI. Here (no Internet) GitLab and Kubernetes stop
// where their package sources are unreachable, and must say so at once; the database VM goes on.
const avail = labAvailable()
const SUBNET = 41
const IPS = {gitlab: `10.99.${SUBNET}.10`, database: `10.99.${SUBNET}.20`, k8s: `10.99.${SUBNET}.30`}

describe.skipIf(!avail.ok)(`deploy: three VMs at once on lab machines${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let lab: Lab
  let ws: Workspace
  let run: DeployRun

  beforeAll(async () => {
    lab = await startLab({
      name: 'deploy-all',
      subnet: SUBNET,
      machines: [
        {name: 'gitlab-vm', ip: IPS.gitlab},
        {name: 'database-vm', ip: IPS.database},
        {name: 'k8s-vm', ip: IPS.k8s},
      ],
    })
    ;({ws} = await labWorkspace(lab, IPS))
    run = await runDeploy(ws)
  })
  afterAll(async () => {
    await lab?.stop()
  })

  const failedStep = (role: string) => run.json!.vms[role].steps.find((s) => s.status === 'failed')

  it('exits 1 and reports each VM separately', () => {
    expect(run.exitCode, describeRun(run)).toBe(1)
    expect(Object.keys(run.json!.vms).sort()).toEqual(['database', 'gitlab', 'k8s'])
    for (const role of ['gitlab', 'database', 'k8s']) {
      const st = statuses(run, role)
      for (const [id, s] of Object.entries(st)) if (id.startsWith('base/')) expect(s, `${role} ${id}\n${describeRun(run)}`).toMatch(/^(changed|unchanged)$/)
    }
  })

  it("gitlab-vm stops at Docker's package source, naming it and network.aptProxy, within seconds", () => {
    const s = failedStep('gitlab')!
    expect(s.id).toBe('gitlab/docker_repo')
    // The probe's own bound (curl --max-time) ended it: curl's error, not apt's retries.
    expect(s.error).toMatch(/^cannot reach https:\/\/download\.docker\.com\/linux\/debian\/gpg \(curl: .*\)\. .*network\.aptProxy/)
    const after = run.json!.vms.gitlab.steps.slice(run.json!.vms.gitlab.steps.indexOf(s) + 1)
    expect(after.map((x) => x.status)).toEqual(after.map(() => 'skipped'))
  })

  it('k8s-vm prepares the kernel settings, then stops where containerd ≥ 2.2 (Kubernetes 1.36) must come from an unreachable source', async () => {
    const st = statuses(run, 'k8s')
    expect(st['k8s/kernel']).toMatch(/^(changed|unchanged)$/)
    const s = failedStep('k8s')!
    expect(s.id).toBe('k8s/containerd')
    expect(s.error).toMatch(/^cannot reach https:\/\/download\.docker\.com\/linux\/debian\/gpg \(curl: .*network\.aptProxy/)
    const m = lab.machine('k8s-vm')
    const files = await m.exec('cat /etc/modules-load.d/autolabs-k8s.conf /etc/sysctl.d/90-autolabs-k8s.conf')
    expect(files.stdout).toContain('br_netfilter')
    expect(files.stdout).toContain('net.ipv4.ip_forward = 1')
  })

  it("a failure on one VM does not stop the others: database-vm's steps went on after gitlab-vm failed", async () => {
    const gitlabFailedAt = statSync(failedStep('gitlab')!.logPath!).mtimeMs
    const state = JSON.parse(await readFile(ws.stateFile, 'utf8')) as {steps: Record<string, Record<string, {finishedAt: string}>>}
    const dbSteps = state.steps['database-vm']
    expect(Date.parse(dbSteps['database/redis_config'].finishedAt)).toBeGreaterThan(gitlabFailedAt)
    expect(statuses(run, 'database')['database/postgres_databases']).toBe('changed')
    expect(failedStep('database')!.id).toBe('database/seaweedfs_install')
  })

  it('the summary on stderr names every failed step, why, and its log, which exists', () => {
    for (const role of ['gitlab', 'k8s', 'database']) {
      const s = failedStep(role)!
      expect(run.stderr).toContain(`${s.id} failed: cannot reach https://`)
      expect(run.stderr).toContain(`log: ${s.logPath}`)
      expect(existsSync(s.logPath!)).toBe(true)
    }
  })
})
