import {readFileSync} from 'node:fs'

import {describe, expect, it} from 'vitest'

import {collectStatus, type RemoteShell, type StatusDeps, type StatusPlan, type TlsPeer} from '../../../src/status/collect.js'
import {applySlow, evaluate, metricWarnings} from '../../../src/status/evaluate.js'
import {renderText, toRows} from '../../../src/status/format.js'
import {GITLAB_CA_IN_CONTAINER, gitlabReadyCmd, parseDf, parseGitlabReadiness, parseKube, parsePgLogin, parseRedisPing, parseRunnerVerify, pgLoginCmd, redisPingCmd} from '../../../src/status/probes.js'
import {type CheckResult, DEFAULT_THRESHOLDS} from '../../../src/status/types.js'

const check = (status: CheckResult['status'], extra: Partial<CheckResult> = {}): CheckResult => ({
  id: `database/x-${status}`,
  target: 'database',
  name: 'x',
  status,
  detail: '',
  durationMs: 10,
  ...extra,
})

describe('evaluate', () => {
  it('is healthy with exit 0 when everything is ok, warnings included', () => {
    expect(evaluate([check('ok'), check('warn'), check('skipped')])).toMatchObject({overall: 'healthy', exitCode: 0, summary: {ok: 1, warn: 1, skipped: 1}})
  })
  it('is degraded with exit 1 when a service is down', () => {
    expect(evaluate([check('ok'), check('fail'), check('warn')])).toMatchObject({overall: 'degraded', exitCode: 1})
  })
  it('is unreachable with exit 3 when anything could not be asked, even if something else failed', () => {
    expect(evaluate([check('fail'), check('unreachable')])).toMatchObject({overall: 'unreachable', exitCode: 3, summary: {fail: 1, unreachable: 1}})
  })
})

describe('thresholds (design document: CPU > 80 %, memory > 90 %, free disk < 20 %, answer > 5 s)', () => {
  it('warns strictly above the limits and not at them', () => {
    expect(metricWarnings({cpuPct: 80, memPct: 90, diskPct: 80}, DEFAULT_THRESHOLDS)).toEqual([])
    expect(metricWarnings({cpuPct: 80.5, memPct: 90.1, diskPct: 80.1}, DEFAULT_THRESHOLDS)).toEqual(['CPU 80.5 % > 80 %', 'memory 90.1 % > 90 %', 'free disk 19.9 % < 20 %'])
  })
  it('turns a slow ok into a warning and leaves failures alone', () => {
    expect(applySlow(check('ok', {durationMs: 5001}), DEFAULT_THRESHOLDS)).toMatchObject({status: 'warn', detail: expect.stringMatching(/^slow: answered in 5\.0 s/)})
    expect(applySlow(check('ok', {durationMs: 5000}), DEFAULT_THRESHOLDS).status).toBe('ok')
    expect(applySlow(check('fail', {durationMs: 9000}), DEFAULT_THRESHOLDS).status).toBe('fail')
  })
})

describe('probes', () => {
  it('reads used disk % from df -P', () => {
    expect(parseDf('/dev/sda1 1000 750 250 75% /')).toBe(75)
    expect(parseDf('garbage')).toBeUndefined()
  })
  it('keeps passwords off the command line: they are read from stdin into the environment', () => {
    const pg = pgLoginCmd('10.0.0.2', 'autolabs', 'autolabs')
    const redis = redisPingCmd('10.0.0.2')
    for (const c of [pg, redis]) {
      expect(c.cmd).not.toContain('s3cr3t')
      expect(c.stdin('s3cr3t')).toBe('s3cr3t\n')
    }
    expect(pg.cmd).toMatch(/^IFS= read -r PGPASSWORD && export PGPASSWORD/)
    expect(redis.cmd).toMatch(/REDISCLI_AUTH/)
    expect(redis.cmd).not.toMatch(/ -a /)
  })
  it('judges psql, redis-cli and gitlab-runner answers', () => {
    expect(parsePgLogin(0, '1\n', '').status).toBe('ok')
    expect(parsePgLogin(2, '', 'psql: error: connection to server at "10.0.0.2", port 5432 failed: FATAL:  password authentication failed for user "autolabs"\n')).toMatchObject({status: 'fail', detail: expect.stringMatching(/password authentication failed/)})
    expect(parseRedisPing(0, 'PONG\n', '').status).toBe('ok')
    expect(parseRedisPing(0, 'NOAUTH Authentication required.\n', '')).toMatchObject({status: 'fail', detail: expect.stringMatching(/authentication refused/)})
    expect(parseRedisPing(1, '', 'Could not connect to Redis at 10.0.0.2:6379: Connection refused')).toMatchObject({status: 'fail', detail: expect.stringMatching(/Connection refused/)})
    expect(parseRunnerVerify(0, 'Runtime platform ...\nVerifying runner... is valid  runner=abc\n').status).toBe('ok')
    expect(parseRunnerVerify(0, 'Verifying runner... is not valid\n').status).toBe('fail')
  })
  it('reads node readiness, system pods, the ingress controller and namespaces from one kubectl list', () => {
    const list = {
      items: [
        {kind: 'Node', metadata: {name: 'k8s-vm'}, status: {conditions: [{type: 'Ready', status: 'True'}]}},
        ...['platform', 'labs', 'kube-system', 'ingress-nginx'].map((n) => ({kind: 'Namespace', metadata: {name: n}})),
        {kind: 'Pod', metadata: {name: 'etcd-k8s-vm', namespace: 'kube-system'}, status: {phase: 'Running', containerStatuses: [{ready: true}]}},
        {kind: 'Pod', metadata: {name: 'coredns-1', namespace: 'kube-system'}, status: {phase: 'Pending', containerStatuses: [{ready: false, state: {waiting: {reason: 'ContainerCreating'}}}]}},
        {kind: 'Pod', metadata: {name: 'job-done', namespace: 'kube-system'}, status: {phase: 'Succeeded'}},
        {kind: 'Pod', metadata: {name: 'nginx-ingress-x', namespace: 'ingress-nginx'}, status: {phase: 'Running', containerStatuses: [{ready: true}]}},
      ],
    }
    const v = parseKube(0, JSON.stringify(list), '', ['platform', 'labs', 'auth'])
    expect(v.node).toEqual({status: 'ok', detail: '1 node Ready'})
    expect(v.systemPods).toEqual({status: 'fail', detail: '1/2 not ready: coredns-1 (ContainerCreating)'})
    expect(v.ingress.status).toBe('ok')
    expect(v.namespaces).toEqual({status: 'fail', detail: 'missing: auth'})
    expect(v.networkPolicies).toEqual({status: 'ok', detail: '0 applied in 0 namespaces'})
    expect(parseKube(1, '', 'The connection to the server 10.0.0.3:6443 was refused', []).node).toEqual({status: 'fail', detail: 'kubectl: The connection to the server 10.0.0.3:6443 was refused'})
  })
  it('NetworkPolicies: each one autolabs applies must be there; one it made that the config no longer names warns', () => {
    const np = (ns: string, name: string, managed = true) => ({kind: 'NetworkPolicy', metadata: {name, namespace: ns, labels: managed ? {'app.kubernetes.io/managed-by': 'autolabs'} : {}}})
    const want = ['platform/default-deny-ingress', 'labs/labs-isolation']
    const list = (...items: object[]) => JSON.stringify({items})
    expect(parseKube(0, list(np('platform', 'default-deny-ingress'), np('labs', 'labs-isolation'), np('labs', 'teacher-own', false)), '', [], 'ingress-nginx', want).networkPolicies).toEqual({
      status: 'ok',
      detail: '2 applied in 2 namespaces',
    })
    expect(parseKube(0, list(np('platform', 'default-deny-ingress')), '', [], 'ingress-nginx', want).networkPolicies).toEqual({
      status: 'fail',
      detail: 'missing: labs/labs-isolation (autolabs deploy --only k8s applies them)',
    })
    expect(parseKube(0, list(np('platform', 'default-deny-ingress'), np('labs', 'labs-isolation'), np('auth', 'default-deny-ingress')), '', [], 'ingress-nginx', want).networkPolicies).toEqual({
      status: 'warn',
      detail: 'not in autolabs.yaml any more: auth/default-deny-ingress',
    })
  })
})

// ---- collectStatus with fakes: concurrency, deadlines, verdict per check

const plan = (over: Partial<StatusPlan> = {}): StatusPlan => ({
  node: 'pve',
  vms: [
    {role: 'gitlab', name: 'gitlab-vm', vmid: 110, ip: '10.0.0.10'},
    {role: 'database', name: 'database-vm', vmid: 120, ip: '10.0.0.20'},
    {role: 'k8s', name: 'k8s-vm', vmid: 130, ip: '10.0.0.30'},
  ],
  postgresUsers: {autolabs: {user: 'autolabs_user', password: 'pw-autolabs-0123456789'}, zitadel: {user: 'zitadel_user', password: 'pw-zitadel-0123456789'}},
  redisPassword: 'pw-redis-0123456789',
  objectStoragePort: 8333,
  registryPort: 5050,
  gitlabExternalUrl: 'http://10.0.0.10',
  namespaces: ['platform'],
  connectTimeoutMs: 300,
  checkTimeoutMs: 600,
  ...over,
})

const kubeOk = JSON.stringify({
  items: [
    {kind: 'Node', metadata: {name: 'k8s-vm'}, status: {conditions: [{type: 'Ready', status: 'True'}]}},
    {kind: 'Namespace', metadata: {name: 'platform'}},
    {kind: 'Pod', metadata: {name: 'a', namespace: 'kube-system'}, status: {phase: 'Running', containerStatuses: [{ready: true}]}},
    {kind: 'Pod', metadata: {name: 'b', namespace: 'ingress-nginx'}, status: {phase: 'Running', containerStatuses: [{ready: true}]}},
  ],
})

function fakeShell(answer: (cmd: string, stdin?: string) => {code: number; stdout?: string; stderr?: string} | 'hang', seen: string[] = []): RemoteShell {
  return {
    exec: (cmd, {stdin, signal}) => {
      seen.push(cmd)
      const a = answer(cmd, stdin)
      if (a === 'hang') return new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))))
      return Promise.resolve({code: a.code, stdout: a.stdout ?? '', stderr: a.stderr ?? ''})
    },
    close: () => undefined,
  }
}

const healthy = (cmd: string, stdin?: string) => {
  if (cmd.startsWith('df')) return {code: 0, stdout: '/dev/sda1 1000 500 500 50% /'}
  if (cmd.includes('PGPASSWORD')) return stdin?.startsWith('pw-') ? {code: 0, stdout: '1\n'} : {code: 2, stderr: 'password authentication failed'}
  if (cmd.includes('REDISCLI_AUTH')) return {code: 0, stdout: 'PONG\n'}
  if (cmd.includes('readiness')) return {code: 0, stdout: '{"status":"ok"}'}
  if (cmd.includes('gitlab-runner verify')) return {code: 0, stdout: 'Verifying runner... is valid'}
  if (cmd.includes('kubectl')) return {code: 0, stdout: kubeOk}
  return {code: 127, stderr: `unexpected ${cmd}`}
}

const deps = (over: Partial<StatusDeps> = {}): StatusDeps => ({
  vmStatus: async () => ({status: 'running', uptime: 7200, cpu: 0.25, mem: 1, maxmem: 4, disk: 0, maxdisk: 100}),
  connect: async () => fakeShell(healthy),
  httpStatus: async (url) => (url.endsWith('/healthz') ? 200 : url.endsWith('/v2/') ? 401 : 404),
  ...over,
})

describe('GitLab readiness probe', () => {
  it('asks 127.0.0.1 inside the container on the external URL\'s port (the monitoring whitelist), keeping the host name over HTTPS', () => {
    expect(gitlabReadyCmd('http://10.0.0.10')).toBe("sudo -n docker exec gitlab curl -sS --max-time 5 'http://127.0.0.1:80/-/readiness'")
    expect(gitlabReadyCmd('http://gitlab.lab:8929/')).toContain("'http://127.0.0.1:8929/-/readiness'")
    expect(gitlabReadyCmd('https://gitlab.lab')).toContain("--resolve 'gitlab.lab:443:127.0.0.1' 'https://gitlab.lab:443/-/readiness'")
    expect(gitlabReadyCmd('https://gitlab.lab')).not.toContain('--cacert')
    // A private CA is the one the gitlab stage installed (gitlab.sh TLS_CA), verified, never -k.
    expect(gitlabReadyCmd('https://gitlab.lab', {privateCa: true})).toContain("--cacert /etc/gitlab/trusted-certs/autolabs-ca.crt --resolve 'gitlab.lab:443:127.0.0.1'")
    expect(gitlabReadyCmd('http://gitlab.lab', {privateCa: true})).not.toContain('--cacert')
    expect(readFileSync('assets/stages/gitlab.sh', 'utf8')).toContain(`TLS_CA=${GITLAB_CA_IN_CONTAINER.replace('/etc/gitlab/', '')}\n`)
  })
  it('is ready only when the top-level status is ok, not when a nested check is', () => {
    expect(parseGitlabReadiness(0, '{"status":"ok","master_check":[{"status":"ok"}]}', '')).toEqual({status: 'ok', detail: 'ready'})
    expect(parseGitlabReadiness(0, '{"status":"failed","master_check":[{"status":"ok"}],"db_check":[{"status":"failed"}]}', '')).toEqual({status: 'fail', detail: 'not ready: status "failed"'})
    expect(parseGitlabReadiness(7, '', 'curl: (7) Failed to connect to 127.0.0.1 port 80')).toEqual({status: 'fail', detail: 'curl: (7) Failed to connect to 127.0.0.1 port 80'})
    expect(parseGitlabReadiness(1, '', 'Error response from daemon: No such container: gitlab').status).toBe('fail')
  })
})

describe('collectStatus', () => {
  it('reports a healthy platform with every expected check and the VM metrics', async () => {
    const r = await collectStatus(plan(), deps())
    expect(r.overall).toBe('healthy')
    expect(r.exitCode).toBe(0)
    expect(r.checks.map((c) => c.id).sort()).toEqual(
      [
        'gitlab/vm', 'gitlab/ssh', 'gitlab/gitlab-readiness', 'gitlab/registry', 'gitlab/runner',
        'database/vm', 'database/ssh', 'database/postgres-login/autolabs', 'database/postgres-login/zitadel', 'database/redis', 'database/object-storage',
        'k8s/vm', 'k8s/ssh', 'k8s/k8s-node', 'k8s/k8s-systempods', 'k8s/k8s-ingress', 'k8s/k8s-namespaces', 'k8s/k8s-networkpolicies',
      ].sort(),
    )
    expect(r.checks.every((c) => c.status === 'ok')).toBe(true)
    expect(r.vms[1]).toMatchObject({name: 'database-vm', state: 'running', cpuPct: 25, memPct: 25, diskPct: 50, diskSource: 'guest', uptimeSec: 7200})
  })

  it('answers within the connect timeout when a VM never answers, marking it unreachable (exit 3)', async () => {
    // The connection that never answers ends only when status aborts it at its bound.
    let aborted = 0
    const r = await collectStatus(
      plan(),
      deps({
        connect: async (vm, signal) =>
          vm.role === 'k8s'
            ? new Promise((_, rej) =>
                signal.addEventListener('abort', () => {
                  aborted++
                  rej(new Error('aborted'))
                }),
              )
            : fakeShell(healthy),
      }),
    )
    expect(aborted).toBe(1)
    expect(r.overall).toBe('unreachable')
    expect(r.exitCode).toBe(3)
    const k8s = r.checks.filter((c) => c.target === 'k8s' && c.id !== 'k8s/vm')
    expect(k8s.length).toBeGreaterThan(0)
    expect(k8s.every((c) => c.status === 'unreachable')).toBe(true)
    expect(k8s[0].detail).toMatch(/SSH to 10\.0\.0\.30: no answer within 0\.3 s/)
    expect(r.checks.filter((c) => c.target === 'database').every((c) => c.status === 'ok')).toBe(true)
  })

  it('bounds each check separately: one hanging service fails, the others still answer', async () => {
    const r = await collectStatus(plan(), deps({connect: async () => fakeShell((cmd, stdin) => (cmd.includes('REDISCLI_AUTH') ? 'hang' : healthy(cmd, stdin)))}))
    expect(r.checks.find((c) => c.id === 'database/redis')).toMatchObject({status: 'fail', detail: 'no answer within 0.6 s'})
    expect(r.overall).toBe('degraded')
    expect(r.exitCode).toBe(1)
    expect(r.checks.filter((c) => c.status === 'fail')).toHaveLength(1)
  })

  it('warns on thresholds but stays healthy (exit 0)', async () => {
    const r = await collectStatus(
      plan(),
      deps({
        vmStatus: async (_n, vmid) => ({status: 'running', uptime: 60, cpu: vmid === 130 ? 0.93 : 0.1, mem: 1, maxmem: 2}),
        connect: async (vm) => fakeShell((cmd, stdin) => (cmd.startsWith('df') && vm.role === 'database' ? {code: 0, stdout: '/dev/sda1 1000 850 150 85% /'} : healthy(cmd, stdin))),
      }),
    )
    expect(r.checks.find((c) => c.id === 'k8s/vm')).toMatchObject({status: 'warn', detail: 'CPU 93 % > 80 %'})
    expect(r.checks.find((c) => c.id === 'database/ssh')).toMatchObject({status: 'warn', detail: 'free disk 15 % < 20 %'})
    expect(r).toMatchObject({overall: 'healthy', exitCode: 0, summary: {warn: 2}})
  })

  it('fails a stopped VM and a refused database login, and says which user', async () => {
    const r = await collectStatus(
      plan({postgresUsers: {autolabs: {user: 'autolabs_user', password: 'wrong-password-0123'}}}),
      deps({vmStatus: async (_n, vmid) => ({status: vmid === 110 ? 'stopped' : 'running', cpu: 0, mem: 0, maxmem: 1})}),
    )
    expect(r.checks.find((c) => c.id === 'gitlab/vm')).toMatchObject({status: 'fail', detail: 'VM is stopped'})
    expect(r.checks.find((c) => c.id === 'database/postgres-login/autolabs')).toMatchObject({status: 'fail', detail: 'password authentication failed'})
  })

  it('marks the VM rows unreachable when the Proxmox API does not answer', async () => {
    const r = await collectStatus(plan(), deps({vmStatus: async () => Promise.reject(new TypeError('fetch failed', {cause: {code: 'ECONNREFUSED'}}))}))
    expect(r.checks.find((c) => c.id === 'database/vm')).toMatchObject({status: 'unreachable', detail: expect.stringMatching(/^Proxmox API: fetch failed \(ECONNREFUSED\)/)})
    expect(r.exitCode).toBe(3)
  })

  it('falls back to the S3 root when /healthz is unknown, and treats a refused port as down', async () => {
    const r1 = await collectStatus(plan(), deps({httpStatus: async (url) => (url.endsWith('/healthz') ? 404 : 403)}))
    expect(r1.checks.find((c) => c.id === 'database/object-storage')).toMatchObject({status: 'ok', detail: 'GET /: HTTP 403'})
    const r2 = await collectStatus(plan(), deps({httpStatus: async () => Promise.reject(new TypeError('fetch failed', {cause: {code: 'ECONNREFUSED'}}))}))
    expect(r2.checks.find((c) => c.id === 'database/object-storage')).toMatchObject({status: 'fail', detail: expect.stringMatching(/10\.0\.0\.20:8333: fetch failed \(ECONNREFUSED\)/)})
    expect(r2.checks.find((c) => c.id === 'gitlab/registry')?.status).toBe('fail')
  })

  it('skips (does not fail) the login checks when the workspace has no secrets', async () => {
    const r = await collectStatus(plan({postgresUsers: {}, redisPassword: undefined}), deps())
    expect(r.checks.find((c) => c.id === 'database/postgres-login')).toMatchObject({status: 'skipped', detail: expect.stringMatching(/secrets\.yaml/)})
    expect(r.checks.find((c) => c.id === 'database/redis')).toMatchObject({status: 'skipped'})
    expect(r.exitCode).toBe(0)
  })

  it("checks GitLab's HTTPS certificate as served: end date, trust and a network error", async () => {
    const day = 86_400_000
    const queries: unknown[] = []
    const https = plan({gitlabTls: {servername: 'gitlab.lab', port: 8443, ca: 'CA-PEM'}})
    const peer = (p: TlsPeer) => deps({tlsPeer: async (q) => (queries.push(q), p)})
    const cert = async (d: StatusDeps) => (await collectStatus(https, d)).checks.find((c) => c.id === 'gitlab/gitlab-certificate')
    expect(await cert(peer({validTo: new Date(Date.now() + 200 * day), authorized: true}))).toMatchObject({status: 'ok', detail: expect.stringMatching(/^valid until \d{4}-\d\d-\d\d \((199|200) days\)$/)})
    expect(queries).toEqual([{host: '10.0.0.10', port: 8443, servername: 'gitlab.lab', ca: 'CA-PEM'}])
    expect(await cert(peer({validTo: new Date(Date.now() + 10 * day), authorized: true}))).toMatchObject({status: 'warn', detail: expect.stringMatching(/in (9|10) days$/)})
    expect(await cert(peer({validTo: new Date(Date.now() + 200 * day), authorized: false, authorizationError: 'ERR_TLS_CERT_ALTNAME_INVALID'}))).toMatchObject({
      status: 'fail',
      detail: 'not trusted for gitlab.lab: ERR_TLS_CERT_ALTNAME_INVALID',
    })
    expect(await cert(peer({validTo: new Date(Date.now() - day), authorized: false, authorizationError: 'CERT_HAS_EXPIRED'}))).toMatchObject({status: 'fail', detail: expect.stringMatching(/^expired on /)})
    expect(await cert(deps({tlsPeer: () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED 10.0.0.10:8443'), {code: 'ECONNREFUSED'}))}))).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('10.0.0.10:8443: connect ECONNREFUSED'),
    })
    // Plain http: no certificate check at all.
    expect((await collectStatus(plan(), peer({validTo: new Date(), authorized: true}))).checks.some((c) => c.id === 'gitlab/gitlab-certificate')).toBe(false)
  })

  it('formats rows and text: one row per VM and per check, with the verdict in the footer', async () => {
    const r = await collectStatus(plan(), deps())
    const rows = toRows(r)
    expect(rows.vms).toHaveLength(4)
    expect(rows.vms[2]).toEqual(['database-vm', '120', '10.0.0.20', 'running', '2h 0m', '25 %', '25 %', '50 %'])
    expect(rows.checks).toHaveLength(r.checks.length + 1)
    expect(rows.footer).toMatch(/^HEALTHY \(exit 0\): 18 ok, 0 warnings, 0 failed, 0 unreachable/)
    const text = renderText(r)
    expect(text).not.toMatch(/\u001B\[/)
    expect(text).toContain('PostgreSQL login zitadel')
    expect(renderText(r, {color: true})).toMatch(/\u001B\[32mok/)
  })

  it('never cuts a detail: it wraps inside the terminal width, goes below its check when narrow, stays one line in a pipe', async () => {
    const r = await collectStatus(plan(), deps())
    const cause = 'connect ECONNREFUSED 10.0.0.10:8443 (GitLab is not listening: sudo gitlab-ctl status on gitlab-vm shows which service is down)'
    r.checks[0] = {...r.checks[0], status: 'fail', detail: `GitLab's readiness endpoint did not answer: ${cause}`}
    const words = (t: string) => t.split(/\s+/).filter(Boolean).join(' ')
    for (const width of [80, 100]) {
      const text = renderText(r, {width})
      // The check lines and the footer (the VM table has fixed columns of about 60).
      const checkLines = text.slice(text.indexOf('\n\n')).split('\n')
      for (const line of checkLines) expect(line.length, `${width}: ${line}`).toBeLessThanOrEqual(width)
      expect(words(text)).toContain(words(cause))
    }
    // 50 columns leave less than 30 for DETAIL: the detail is on its own indented lines, within 50.
    const narrow = renderText(r, {width: 50})
    expect(narrow).toMatch(/\n {4}GitLab's readiness endpoint/)
    for (const line of narrow.split('\n').filter((l) => l.startsWith('    '))) expect(line.length).toBeLessThanOrEqual(50)
    expect(words(narrow)).toContain(words(cause))
    const piped = renderText(r)
    expect(piped.split('\n').find((l) => l.includes('readiness endpoint'))).toContain(cause)
  })
})
