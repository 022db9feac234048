import {type ChildProcess, spawn, spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {validateConfig} from '../../../src/config/load.js'
import {loadGitlabTls} from '../../../src/config/tls.js'
import {buildParams, envFileText} from '../../../src/deploy/params.js'
import {generateSecrets} from '../../../src/workspace/secrets.js'
import {type CertFiles, makeCa, makeLeaf} from '../../support/certs.js'
import {freePort} from '../../support/net.js'

// The certificate's whole way, for real except GitLab: autolabs.yaml → loadGitlabTls → the 0600
// env file → bash sources it → gitlab.sh writes the files → a TLS server (openssl s_server, in
// nginx's place) serves them → curl with the readiness probe's own arguments verifies them.
const SCRIPT = path.resolve('assets/stages/gitlab.sh')

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const c = net.connect(port, '127.0.0.1')
    c.on('connect', () => {
      c.destroy()
      resolve(true)
    })
    c.on('error', () => resolve(false))
  })

describe('GitLab HTTPS certificate, end to end without GitLab', () => {
  let dir: string
  let home: string
  let port: number
  let server: ChildProcess
  let ca: CertFiles
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'al-gl-tls-e2e-'))
    home = path.join(dir, 'srv-gitlab')
    ca = makeCa(dir, 'lab-ca')
    makeLeaf(dir, 'gitlab', {san: 'DNS:gitlab.lab', ca})
    port = await freePort()
    const {config} = validateConfig(
      {services: {gitlab: {externalUrl: `https://gitlab.lab:${port}`, tls: {certFile: 'gitlab.crt', keyFile: 'gitlab.key', caFile: 'lab-ca.crt'}}}},
      'autolabs.yaml',
    )
    const tls = loadGitlabTls(config, dir, 'autolabs.yaml')
    const params = buildParams('gitlab', config, generateSecrets(['autolabs', 'zitadel', 'gitlab']), {gitlab: '10.0.0.10', database: '10.0.0.20', k8s: '10.0.0.30'}, 'amd64', tls)
    writeFileSync(path.join(dir, 'stage.env'), envFileText(params), {mode: 0o600})
    const r = spawnSync('bash', ['-c', `set -a; source "$1"; set +a; GITLAB_HOME="$2"; source "$3"; do_gitlab_compose && check_gitlab_compose`, 'x', path.join(dir, 'stage.env'), home, SCRIPT], {
      env: {PATH: process.env.PATH, HOME: '/nonexistent'},
      encoding: 'utf8',
    })
    expect(r.status, r.stderr).toBe(0)
    server = spawn('openssl', ['s_server', '-quiet', '-www', '-accept', String(port), '-cert', path.join(home, 'config/ssl/autolabs.crt'), '-key', path.join(home, 'config/ssl/autolabs.key')], {
      stdio: 'ignore',
    })
    for (let i = 0; !(await listening(port)); i++) {
      if (i > 100) throw new Error(`openssl s_server did not listen on ${port}`)
      await new Promise((res) => setTimeout(res, 50))
    }
  })
  afterAll(() => {
    server?.kill()
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  /** curl with gitlab.sh's readiness arguments; /etc/gitlab is $home/config here, as in the container. */
  const probe = (extraEnv: Record<string, string> = {}) => {
    const r = spawnSync('bash', ['-c', `set -a; source "$1"; set +a; source "$2"; readiness_curl_args`, 'x', path.join(dir, 'stage.env'), SCRIPT], {
      env: {PATH: process.env.PATH, HOME: '/nonexistent', ...extraEnv},
      encoding: 'utf8',
    })
    const args = r.stdout.trim().split('\n').map((a) => a.replace('/etc/gitlab/', `${home}/config/`))
    return spawnSync('curl', ['-fsS', '--max-time', '5', ...args], {encoding: 'utf8'})
  }

  it('writes the files byte for byte as given (newlines survive the env file), the key 0600', () => {
    expect(readFileSync(path.join(home, 'config/ssl/autolabs.crt'), 'utf8').trimEnd()).toBe(readFileSync(path.join(dir, 'gitlab.crt'), 'utf8').trimEnd())
    expect(readFileSync(path.join(home, 'config/ssl/autolabs.key'), 'utf8').trimEnd()).toBe(readFileSync(path.join(dir, 'gitlab.key'), 'utf8').trimEnd())
    expect(statSync(path.join(home, 'config/ssl/autolabs.key')).mode & 0o777).toBe(0o600)
  })

  it("the readiness probe's arguments verify the served certificate against the private CA", () => {
    const r = probe()
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain('s_server')
  })

  it('and refuse it when the CA is another one (verification is on, not skipped)', () => {
    const other = makeCa(dir, 'other-ca')
    writeFileSync(path.join(home, 'config/trusted-certs/autolabs-ca.crt'), readFileSync(other.cert))
    try {
      const r = probe()
      expect(r.status).toBe(60) // CURLE_PEER_FAILED_VERIFICATION
    } finally {
      writeFileSync(path.join(home, 'config/trusted-certs/autolabs-ca.crt'), readFileSync(ca.cert))
    }
  })
})
