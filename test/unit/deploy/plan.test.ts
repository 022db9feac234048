import {describe, expect, it} from 'vitest'

import {configSchema} from '../../../src/config/schema.js'
import {buildParams, envFileText, pgPasswordVar, stepInputHash, stepInputs} from '../../../src/deploy/params.js'
import {planDeploy, readStageScripts} from '../../../src/deploy/plan.js'
import {chooseRenderer, formatDeploySummary, parseStepOutput} from '../../../src/deploy/run.js'
import {STAGES} from '../../../src/steps/stages.js'
import {generateSecrets} from '../../../src/workspace/secrets.js'
import {bashSync} from '../../support/bash.js'

const config = configSchema.parse({})
const secrets = generateSecrets(['autolabs', 'zitadel', 'gitlab'])
const ips = {gitlab: '192.168.100.10', database: '192.168.100.20', k8s: '192.168.100.30'}
const stage = (id: string) => STAGES.find((s) => s.id === id)!
const step = (s: string, id: string) => stage(s).steps.find((x) => x.id === id)!

describe('planDeploy (--only)', () => {
  it('runs base then the role stage on each of the three VMs by default', () => {
    const plan = planDeploy(config)
    expect(plan.map((v) => v.name)).toEqual(['gitlab-vm', 'database-vm', 'k8s-vm'])
    const db = plan.find((v) => v.role === 'database')!
    expect(db.steps[0].key).toBe('base/wait_boot')
    expect(db.steps.at(-1)!.key).toBe('database/seaweedfs_buckets')
    expect(new Set(db.steps.map((s) => s.stage.id))).toEqual(new Set(['base', 'database']))
  })
  it('selects a VM by name or role, a stage on every VM, or both (intersection)', () => {
    expect(planDeploy(config, ['database-vm']).map((v) => v.role)).toEqual(['database'])
    expect(planDeploy(config, ['k8s']).map((v) => v.role)).toEqual(['k8s'])
    const base = planDeploy(config, ['base'])
    expect(base.map((v) => v.role)).toEqual(['gitlab', 'database', 'k8s'])
    expect(base.every((v) => v.steps.length > 0 && v.steps.every((s) => s.stage.id === 'base'))).toBe(true)
    const both = planDeploy(config, ['database,base'])
    expect(both.map((v) => v.role)).toEqual(['database'])
    expect(both[0].steps.length).toBeGreaterThan(0)
    expect(both[0].steps.every((s) => s.stage.id === 'base')).toBe(true)
  })
  it('names the valid choices for an unknown --only value', () => {
    expect(() => planDeploy(config, ['postgres'])).toThrow(/--only postgres: no VM or stage has that name/)
  })
})

describe('stage parameters and input hashes', () => {
  const p = buildParams('database', config, secrets, ips)
  const scripts = readStageScripts()
  const hash = (s: string, id: string, params = p, script = scripts.scripts[stage(s).script]) => stepInputHash(stage(s), step(s, id), params, script, scripts.lib)

  it('gives the database VM its passwords under shell-safe names, and nothing of other roles', () => {
    expect(p[pgPasswordVar('zitadel')]).toBe(secrets.postgres.users.zitadel)
    expect(pgPasswordVar('my-db')).toBe('PG_PASSWORD__my_db')
    expect(p.REDIS_PASSWORD).toBe(secrets.redis.password)
    expect(p.GITLAB_ROOT_PASSWORD).toBeUndefined()
    expect(p.BOOTSTRAP_TOKEN).toBeUndefined()
    expect(p.ROLE_PORTS).toBe('5432/tcp 6379/tcp 8333/tcp')
  })
  it('writes an env file bash reads back exactly, quotes included', () => {
    const text = envFileText({A: "it's", B: '$HOME `x` "y"'})
    const r = bashSync(['-c', `${text}\nprintf '%s|%s' "$A" "$B"`])
    expect(r.stdout).toBe(`it's|$HOME \`x\` "y"`)
  })
  it('a changed Redis password changes only the redis_config step’s hash', () => {
    const p2 = {...p, REDIS_PASSWORD: 'another-password-0123456789'}
    const changed = stage('database').steps.filter((s) => hash('database', s.id) !== hash('database', s.id, p2)).map((s) => s.id)
    expect(changed).toEqual(['redis_config'])
  })
  it('a changed database password changes only the step that sets passwords', () => {
    const p2 = {...p, [pgPasswordVar('gitlab')]: 'x'.repeat(30)}
    const changed = stage('database').steps.filter((s) => hash('database', s.id) !== hash('database', s.id, p2)).map((s) => s.id)
    expect(changed).toEqual(['postgres_databases'])
    expect(stepInputs(step('database', 'postgres_databases'), p).map(([k]) => k)).toContain('PG_PASSWORD__gitlab')
  })
  it('a changed script changes every step of its stage', () => {
    const edited = scripts.scripts['database.sh'] + '\n# edit\n'
    expect(stage('database').steps.every((s) => hash('database', s.id) !== hash('database', s.id, p, edited))).toBe(true)
  })
  it('every declared input exists in the parameters of a VM that runs the stage', () => {
    for (const s of STAGES) {
      const params = buildParams(s.roles[0], config, secrets, ips)
      for (const st of s.steps) for (const name of st.inputs ?? []) {
        if (name.endsWith('*')) expect(Object.keys(params).some((k) => k.startsWith(name.slice(0, -1))), `${s.id}/${st.id}: ${name}`).toBe(true)
        else expect(params, `${s.id}/${st.id}: ${name}`).toHaveProperty(name)
      }
    }
  })
})

describe('reading a step run', () => {
  it('finds the outcome line, errors and warnings', () => {
    const r = parseStepOutput('noise\nAUTOLABS_STEP redis_config changed\n', 'AUTOLABS_WARN slow disk\nother', 'redis_config')
    expect(r).toEqual({outcome: 'changed', errors: [], warnings: ['slow disk']})
    const f = parseStepOutput('', 'AUTOLABS_ERROR cannot reach https://x (timeout). set network.aptProxy', 'kube_repo')
    expect(f.outcome).toBeUndefined()
    expect(f.errors).toEqual(['cannot reach https://x (timeout). set network.aptProxy'])
  })
  it('does not take another step’s outcome line', () => {
    expect(parseStepOutput('AUTOLABS_STEP redis_install unchanged\n', '', 'redis').outcome).toBeUndefined()
  })
  it('chooses a silent renderer for --json and plain lines without a terminal', () => {
    expect(chooseRenderer({quiet: true, isTTY: true})).toBe('silent')
    expect(chooseRenderer({isTTY: false})).toBe('simple')
    expect(chooseRenderer({isTTY: true})).toBe('default')
  })
  it('summarises failures with the reason, the log tail and the log path', () => {
    const text = formatDeploySummary({
      ok: false,
      durationMs: 1,
      vms: {
        k8s: {
          name: 'k8s-vm',
          ip: '192.168.100.30',
          ok: false,
          steps: [
            {id: 'base/wait_boot', status: 'unchanged', durationMs: 5},
            {id: 'k8s/kube_repo', status: 'failed', durationMs: 9, error: 'cannot reach https://pkgs.k8s.io/…', tail: 'curl: (6)', logPath: '/w/.autolabs/logs/k8s-vm/k8s-kube_repo.log'},
            {id: 'k8s/kube_packages', status: 'skipped', durationMs: 0},
          ],
        },
      },
    })
    expect(text).toContain('✖ k8s-vm (192.168.100.30): 0 changed, 1 unchanged, 1 failed, 1 not run')
    expect(text).toContain('k8s/kube_repo failed: cannot reach https://pkgs.k8s.io/…')
    expect(text).toContain('| curl: (6)')
    expect(text).toContain('log: /w/.autolabs/logs/k8s-vm/k8s-kube_repo.log')
  })
})
