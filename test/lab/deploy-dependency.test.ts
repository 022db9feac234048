import {readFile} from 'node:fs/promises'

import {parse} from 'yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {configSchema} from '../../src/config/schema.js'
import {buildParams, envFileText} from '../../src/deploy/params.js'
import type {Secrets} from '../../src/workspace/secrets.js'
import type {Workspace} from '../../src/workspace/workspace.js'
import {labAvailable, startLab, type Lab} from '../support/lab/lab.js'
import {describeRun, labWorkspace, runDeploy, statuses, type DeployRun} from './deploy-support.js'

// gitlab/database_login, the step GitLab's start waits behind (DEPENDENCIES in
// src/steps/stages.ts), run for real on a gitlab-vm lab machine against the PostgreSQL that
// the real CLI deployed on a database-vm lab machine: the login is proved from where GitLab
// will connect, through database-vm's firewall and pg_hba. (The ordering across VMs is proved
// against fake sessions in test/unit/deploy/run.test.ts; GitLab itself cannot run here.)
const avail = labAvailable()
const SUBNET = 123
const GITLAB_IP = `10.99.${SUBNET}.10`
const DB_IP = `10.99.${SUBNET}.20`

describe.skipIf(!avail.ok)(`gitlab/database_login on lab machines${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, () => {
  let lab: Lab
  let ws: Workspace
  let secrets: Secrets
  let run: DeployRun
  let env: Record<string, string>

  /** Runs gitlab.sh's step on gitlab-vm with `over` on top of the deploy's own parameters. */
  const step = async (over: Record<string, string> = {}) => {
    const m = lab.machine('gitlab-vm')
    const file = '/var/lib/autolabs/test-params.env'
    const w = await m.exec(`umask 077 && cat > ${file}`, {input: envFileText({...env, ...over})})
    if (w.code !== 0) throw new Error(w.stderr)
    try {
      return await m.exec(`bash /var/lib/autolabs/stages/gitlab.sh ${file} database_login`, {timeoutMs: 300_000})
    } finally {
      await m.exec(`rm -f ${file}`)
    }
  }

  beforeAll(async () => {
    lab = await startLab({
      name: 'deploy-dependency',
      subnet: SUBNET,
      machines: [
        {name: 'gitlab-vm', ip: GITLAB_IP},
        {name: 'database-vm', ip: DB_IP},
      ],
      aptProxyInMachine: false,
    })
    ;({ws, secrets} = await labWorkspace(lab, {gitlab: GITLAB_IP, database: DB_IP}))
    // Both VMs in one deploy: database-vm all its stages, gitlab-vm its base stage and the
    // gitlab stage up to Docker's package source (unreachable here: it fails naming it).
    run = await runDeploy(ws, ['--only', 'gitlab,database'], 900_000)
    const config = configSchema.parse(parse(await readFile(ws.configFile, 'utf8')))
    // The lab's PostgreSQL 15 is below GitLab 19's minimum, so the workspace keeps GitLab's
    // bundled database; the step is run as an external-database deploy would run it.
    env = {...buildParams('gitlab', config, secrets, {gitlab: GITLAB_IP, database: DB_IP, k8s: `10.99.${SUBNET}.30`}), GITLAB_EXTERNAL_DB: 'true'}
  }, 900_000)

  afterAll(async () => {
    await lab?.stop()
  })

  it('the deploy got database-vm to its databases and stopped gitlab-vm at the unreachable Docker source', () => {
    const db = statuses(run, 'database')
    expect(db['database/postgres_databases'], describeRun(run)).toMatch(/^(changed|unchanged)$/)
    const g = statuses(run, 'gitlab')
    expect(g['base/firewall'], describeRun(run)).toMatch(/^(changed|unchanged)$/)
    expect(g['gitlab/docker_repo']).toBe('failed')
    expect(g['gitlab/database_login']).toBe('skipped')
  })

  it('logs in to the gitlab database from gitlab-vm (installing psql first), then finds it done', async () => {
    const first = await step()
    expect(first.stdout, first.stderr).toBe('AUTOLABS_STEP database_login changed\n')
    const again = await step()
    expect(again.stdout, again.stderr).toBe('AUTOLABS_STEP database_login unchanged\n')
  })

  it('a wrong password fails (bounded), naming the database, the user and the host, without the password', async () => {
    const r = await step({GITLAB_DB_PASSWORD: 'not-the-password-0123456789', DB_LOGIN_SECONDS: '3'})
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(new RegExp(`AUTOLABS_ERROR GitLab's database gitlab on ${DB_IP.replaceAll('.', '\\.')}:5432 does not accept user gitlab_user from this VM .*password authentication failed`))
    expect(r.stderr).not.toContain('not-the-password')
    expect(r.stderr).not.toContain(secrets.postgres.users.gitlab)
  })

  it('with the bundled database (externalDatabase: false) there is nothing to prove', async () => {
    const r = await step({GITLAB_EXTERNAL_DB: 'false', GITLAB_DB_PASSWORD: 'wrong'})
    expect(r.stdout, r.stderr).toBe('AUTOLABS_STEP database_login unchanged\n')
  })
})
