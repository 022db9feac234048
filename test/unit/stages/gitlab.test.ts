import {spawnSync} from 'node:child_process'
import {chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, describe, expect, it} from 'vitest'
import {parse as parseYaml} from 'yaml'

import {sourceAndRun} from '../../support/bash.js'
import {missing} from '../../support/tools.js'

// gitlab.sh's pure helpers and check functions, run by bash against fixtures, and the runner
// registration run end to end against fake docker/curl/gitlab-runner binaries (no GitLab here):
// what decides "done?" and where the tokens travel, without a VM.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const SCRIPT = path.join(ROOT, 'assets/stages/gitlab.sh')
const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures')
const fx = (name: string) => path.join(FIX, name)
const hasPython = !missing('python3', spawnSync('python3', ['-c', 'pass']).status === 0)

const PARAMS = {
  VM_IP: '192.168.100.10',
  GITLAB_VERSION: '19.6.0-ce.0',
  GITLAB_EXTERNAL_URL: 'http://192.168.100.10',
  GITLAB_SSH_PORT: '2222',
  GITLAB_REGISTRY_PORT: '5050',
  GITLAB_SHM_SIZE: '256m',
  GITLAB_ROOT_PASSWORD: 'Root-Pass-xyzzy-0123456789',
  GITLAB_EXTERNAL_DB: 'true',
  GITLAB_DB_PASSWORD: 'Db-Pass-plugh-9876543210',
  DB_HOST: '192.168.100.20',
  RUNNER_VERSION: '19.6.0',
}

/** Sources gitlab.sh (its main does not run when sourced) and runs `snippet`. */
function bash(snippet: string, env: Record<string, string> = {}, input?: string) {
  return sourceAndRun(SCRIPT, snippet, {env: {PATH: process.env.PATH ?? '/usr/bin:/bin', ...PARAMS, ...env}, input, timeoutMs: 30_000})
}
const ok = (snippet: string, env?: Record<string, string>, input?: string) => bash(snippet, env, input).code === 0

const temps: string[] = []
const tempDir = (prefix: string) => {
  const d = mkdtempSync(path.join(tmpdir(), prefix))
  temps.push(d)
  return d
}
afterAll(() => {
  for (const d of temps) rmSync(d, {recursive: true, force: true})
})

describe('gitlab.sh external URL parts', () => {
  it.each([
    ['http://192.168.100.10', 'http', '192.168.100.10', '80'],
    ['http://192.168.100.10/', 'http', '192.168.100.10', '80'],
    ['https://gitlab.example.edu', 'https', 'gitlab.example.edu', '443'],
    ['http://gitlab.example.edu:8929/', 'http', 'gitlab.example.edu', '8929'],
    ['https://gitlab.example.edu:8443/sub/path?x=1', 'https', 'gitlab.example.edu', '8443'],
  ])('%s has scheme %s, host %s and port %s', (url, scheme, host, port) => {
    expect(bash(`url_scheme "${url}"`).stdout).toBe(scheme)
    expect(bash(`url_host "${url}"`).stdout).toBe(host)
    expect(bash(`url_port "${url}"`).stdout).toBe(port)
  })
  it('api_url does not double the slash of a URL ending in /', () => {
    expect(bash('api_url', {GITLAB_EXTERNAL_URL: 'http://192.168.100.10/'}).stdout).toBe('http://192.168.100.10/api/v4')
  })
})

describe('gitlab.sh compose_text (the Compose project the gitlab_compose step writes)', () => {
  const render = (env: Record<string, string> = {}) => {
    const r = bash('compose_text', env)
    expect(r.code, r.stderr).toBe(0)
    return {text: r.stdout, doc: parseYaml(r.stdout) as any}
  }
  it('is valid YAML with the pinned image, shm_size and the web, SSH and registry ports', () => {
    const {doc} = render()
    const svc = doc.services.gitlab
    expect(svc.image).toBe('gitlab/gitlab-ce:19.6.0-ce.0')
    expect(svc.shm_size).toBe('256m')
    expect(svc.hostname).toBe('192.168.100.10')
    expect(svc.ports).toEqual(['80:80', '443:443', '2222:22', '5050:5050'])
  })
  it("publishes a non-default port of the external URL 1:1 (nginx listens on it)", () => {
    const {doc} = render({GITLAB_EXTERNAL_URL: 'http://gitlab.example.edu:8929'})
    expect(doc.services.gitlab.ports).toEqual(['80:80', '443:443', '8929:8929', '2222:22', '5050:5050'])
    expect(doc.services.gitlab.hostname).toBe('gitlab.example.edu')
  })
  it('configures the external database, the registry URL and the SSH port in GITLAB_OMNIBUS_CONFIG', () => {
    const cfg: string = render().doc.services.gitlab.environment.GITLAB_OMNIBUS_CONFIG
    expect(cfg).toContain("external_url 'http://192.168.100.10'")
    expect(cfg).toContain("gitlab_rails['gitlab_shell_ssh_port'] = 2222")
    expect(cfg).toContain("registry_external_url 'http://192.168.100.10:5050'")
    expect(cfg).toContain("postgresql['enable'] = false")
    expect(cfg).toContain("gitlab_rails['db_host'] = '192.168.100.20'")
    expect(cfg).toContain("registry['database'] = { 'enabled' => false }")
  })
  it('keeps the bundled PostgreSQL when the external database is off', () => {
    const cfg: string = render({GITLAB_EXTERNAL_DB: 'false'}).doc.services.gitlab.environment.GITLAB_OMNIBUS_CONFIG
    expect(cfg).not.toContain("postgresql['enable']")
    expect(cfg).not.toContain('db_password')
  })
  it('carries no password: they are read from the secret files (docker inspect shows the environment)', () => {
    const {text, doc} = render()
    expect(text).not.toContain(PARAMS.GITLAB_ROOT_PASSWORD)
    expect(text).not.toContain(PARAMS.GITLAB_DB_PASSWORD)
    expect(doc.services.gitlab.environment.GITLAB_OMNIBUS_CONFIG).toContain("File.read('/run/secrets/gitlab_db_password').strip")
    expect(doc.secrets.gitlab_db_password.file).toBe('./secrets/db_password')
  })
  it('has no $ (Compose would interpolate it)', () => {
    expect(render().text).not.toContain('$')
  })
})

// PEM-shaped values as the env file carries them (with their newlines).
const TLS = {
  GITLAB_EXTERNAL_URL: 'https://gitlab.lab',
  GITLAB_TLS_CERT: '-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----\n',
  GITLAB_TLS_KEY: '-----BEGIN PRIVATE KEY-----\nMIGHkey-FAKE-0123456789\n-----END PRIVATE KEY-----\n',
  GITLAB_TLS_CA: '-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n',
}

describe('gitlab.sh HTTPS (services.gitlab.tls)', () => {
  const omnibus = (env: Record<string, string>) => bash('omnibus_config', env).stdout
  it("serves the administrator's certificate with Let's Encrypt off, or Let's Encrypt only when asked", () => {
    const own = omnibus({...TLS, GITLAB_LETSENCRYPT: 'false'})
    expect(own).toContain("letsencrypt['enable'] = false\nnginx['ssl_certificate'] = '/etc/gitlab/ssl/autolabs.crt'\nnginx['ssl_certificate_key'] = '/etc/gitlab/ssl/autolabs.key'\n")
    const le = omnibus({GITLAB_EXTERNAL_URL: 'https://gitlab.lab', GITLAB_LETSENCRYPT: 'true'})
    expect(le).toContain("letsencrypt['enable'] = true")
    expect(le).not.toContain('ssl_certificate')
    expect(omnibus({GITLAB_LETSENCRYPT: 'false'})).not.toMatch(/letsencrypt|ssl_certificate/)
  })
  it('writes the certificate 0644, the key 0600 and the CA where GitLab trusts it; check follows the parameters', () => {
    const home = tempDir('al-gl-tls-')
    const run = (snippet: string, env: Record<string, string>) => bash(snippet, {GITLAB_HOME: home, ...env})
    expect(run('do_gitlab_compose && check_gitlab_compose', TLS).code).toBe(0)
    const mode = (f: string) => (statSync(path.join(home, 'config', f)).mode & 0o777).toString(8)
    expect([mode('ssl/autolabs.crt'), mode('ssl/autolabs.key'), mode('trusted-certs/autolabs-ca.crt')]).toEqual(['644', '600', '644'])
    expect(readFileSync(path.join(home, 'config/ssl/autolabs.key'), 'utf8')).toContain('MIGHkey-FAKE-0123456789')
    // The key is in no file but its own (not in the Compose file the environment shows).
    expect(readFileSync(path.join(home, 'docker-compose.yml'), 'utf8')).not.toContain('MIGHkey')
    // A renewed key is not "done" until written; a CA removed from the config is removed here.
    expect(run('check_gitlab_compose', {...TLS, GITLAB_TLS_KEY: TLS.GITLAB_TLS_KEY.replace('FAKE', 'NEW')}).code).not.toBe(0)
    const noCa = {...TLS, GITLAB_TLS_CA: ''}
    expect(run('check_gitlab_compose', noCa).code).not.toBe(0)
    expect(run('do_gitlab_compose && check_gitlab_compose', noCa).code).toBe(0)
    expect(existsSync(path.join(home, 'config/trusted-certs/autolabs-ca.crt'))).toBe(false)
    // Back to plain http: no certificate left behind.
    expect(run('do_gitlab_compose && check_gitlab_compose', {}).code).toBe(0)
    expect(readdirSync(path.join(home, 'config/ssl'))).toEqual([])
  })
  it('recreates the container for a renewed certificate (compose_digest counts the files)', () => {
    const home = tempDir('al-gl-tls-digest-')
    const digest = (env: Record<string, string>) => bash('do_gitlab_compose >/dev/null && compose_digest', {GITLAB_HOME: home, ...env}).stdout.trim()
    const d1 = digest(TLS)
    expect(digest({...TLS, GITLAB_TLS_CERT: TLS.GITLAB_TLS_CERT.replace('cert', 'renewed')})).not.toBe(d1)
  })
  it('verifies the certificate against a private CA in the readiness probe, never skips verification', () => {
    const args = bash('readiness_curl_args', TLS).stdout.trim().split('\n')
    expect(args).toEqual(['--cacert', '/etc/gitlab/trusted-certs/autolabs-ca.crt', '--resolve', 'gitlab.lab:443:127.0.0.1', 'https://gitlab.lab:443/-/readiness'])
    expect(readFileSync(SCRIPT, 'utf8')).not.toMatch(/--insecure|curl[^\n]* -k\b|tls-skip-verify/)
  })
})

describe('gitlab.sh compose_digest (a changed database password recreates the container)', () => {
  it('changes with the password file and with the Compose file, not with the root password', () => {
    const home = tempDir('al-gl-home-')
    mkdirSync(path.join(home, 'secrets'))
    const write = (f: string, s: string) => writeFileSync(path.join(home, f), s)
    const digest = () => bash('compose_digest', {GITLAB_HOME: home}).stdout.trim()
    write('docker-compose.yml', 'name: gitlab\n')
    write('secrets/db_password', 'one\n')
    write('secrets/root_password', 'root-a\n')
    const d1 = digest()
    expect(d1).toMatch(/^[0-9a-f]{64}$/)
    write('secrets/root_password', 'root-b\n')
    expect(digest()).toBe(d1)
    write('secrets/db_password', 'two\n')
    const d2 = digest()
    expect(d2).not.toBe(d1)
    write('docker-compose.yml', 'name: gitlab\n# changed\n')
    expect(digest()).not.toBe(d2)
  })
})

describe('gitlab.sh checks that fail fail quietly (no AUTOLABS_ERROR from the ERR trap)', () => {
  it('compose_digest before gitlab_compose wrote the files: a digest, no error line', () => {
    const r = bash('echo "$(compose_digest)"', {GITLAB_HOME: '/nonexistent/gitlab'})
    expect(r.stdout.trim()).toMatch(/^[0-9a-f]{64}$/)
    expect(r.stderr).toBe('')
  })
  it.skipIf(!hasPython)('gitlab_ready polls a GitLab that is not up yet without an error line, and sees it ready later', () => {
    const dir = tempDir('al-gl-ready-')
    const bin = path.join(dir, 'bin')
    mkdirSync(bin)
    writeFileSync(
      path.join(bin, 'docker'),
      `#!/usr/bin/env bash\nprintf '%s\\n' "$*" >>"${dir}/argv.log"\n[[ -f "${dir}/body" ]] || { echo 'curl: (7) Failed to connect' >&2; exit 7; }\ncat "${dir}/body"\n`,
    )
    chmodSync(path.join(bin, 'docker'), 0o755)
    // As run_step calls a check: in a condition.
    const ready = () => bash('if check_gitlab_ready; then exit 0; else exit 1; fi', {PATH: `${bin}:${process.env.PATH}`})
    const down = ready()
    expect(down.code).toBe(1)
    expect(down.stderr).toBe('')
    writeFileSync(path.join(dir, 'body'), readFileSync(fx('gitlab-readiness-failed.json')))
    expect(ready().code).toBe(1)
    writeFileSync(path.join(dir, 'body'), readFileSync(fx('gitlab-readiness-ok.json')))
    expect(ready().code).toBe(0)
    expect(readFileSync(path.join(dir, 'argv.log'), 'utf8').trim().split('\n')[0]).toBe('exec gitlab curl -fsS --max-time 5 http://127.0.0.1:80/-/readiness')
  })
})

describe('gitlab.sh daemon_json_text (Docker trusts the plain-HTTP registry)', () => {
  it('is JSON naming the registry as an insecure registry', () => {
    const doc = JSON.parse(bash('daemon_json_text').stdout)
    expect(doc['insecure-registries']).toEqual(['192.168.100.10:5050'])
  })
})

describe('gitlab.sh readiness probe', () => {
  const args = (url: string) => bash('readiness_curl_args', {GITLAB_EXTERNAL_URL: url}).stdout.trim().split('\n')
  it('asks 127.0.0.1 (monitoring_whitelist) on the port nginx listens on', () => {
    expect(args('http://192.168.100.10')).toEqual(['http://127.0.0.1:80/-/readiness'])
    expect(args('http://gitlab.example.edu:8929/')).toEqual(['http://127.0.0.1:8929/-/readiness'])
  })
  it('over HTTPS keeps the host name (certificate verified) and resolves it to 127.0.0.1', () => {
    expect(args('https://gitlab.example.edu')).toEqual(['--resolve', 'gitlab.example.edu:443:127.0.0.1', 'https://gitlab.example.edu:443/-/readiness'])
  })
  it.skipIf(!hasPython)('readiness_ok accepts a top-level "ok" and refuses "failed" even when one check is ok', () => {
    expect(ok(`readiness_ok "$(cat ${fx('gitlab-readiness-ok.json')})"`)).toBe(true)
    expect(ok(`readiness_ok "$(cat ${fx('gitlab-readiness-failed.json')})"`)).toBe(false)
    expect(ok('readiness_ok "<html>404</html>"')).toBe(false)
    expect(ok('readiness_ok ""')).toBe(false)
  })
})

describe('gitlab.sh runner package checks', () => {
  it('madison_version picks the Debian version of exactly the configured release', () => {
    const r = bash(`madison_version 19.6.0 < ${fx('apt-madison-gitlab-runner.txt')}`)
    expect(r.stdout.trim()).toBe('19.6.0-1')
    expect(bash(`madison_version 19.4.0 < ${fx('apt-madison-gitlab-runner.txt')}`).stdout).toBe('')
  })
  it('runner_cli_version reads the version from gitlab-runner --version', () => {
    expect(bash(`runner_cli_version < ${fx('gitlab-runner-version.txt')}`).stdout.trim()).toBe('19.6.0')
  })
})

describe('gitlab.sh runner_register checks', () => {
  const has = (f: string, url = 'http://192.168.100.10') => ok(`runner_config_has_url ${fx(f)} "${url}"`)
  it('finds a [[runners]] entry for the external URL', () => expect(has('gitlab-runner-config.toml')).toBe(true))
  it('is not fooled by clone_url, a comment or another URL', () => expect(has('gitlab-runner-config-other-url.toml')).toBe(false))
  it('refuses a config without runners, and a missing file', () => {
    expect(has('gitlab-runner-config-empty.toml')).toBe(false)
    expect(has('nope.toml')).toBe(false)
  })
  it('wants the exact URL (no prefix match)', () => expect(has('gitlab-runner-config.toml', 'http://192.168.100.1')).toBe(false))
  it('runner_verify_ok accepts "is valid" and refuses "is not valid"', () => {
    expect(ok(`runner_verify_ok "$(cat ${fx('gitlab-runner-verify-valid.txt')})"`)).toBe(true)
    expect(ok(`runner_verify_ok "$(cat ${fx('gitlab-runner-verify-not-valid.txt')})"`)).toBe(false)
  })
  it.skipIf(!hasPython)('runner_token_from_json takes the glrt- token and prints nothing for other answers', () => {
    expect(bash(`runner_token_from_json < ${fx('gitlab-user-runners-response.json')}`).stdout.trim()).toBe('glrt-t1_FIXTUREfixtureFIXTURE')
    expect(bash('runner_token_from_json', {}, '{"message":"403 Forbidden"}').stdout.trim()).toBe('')
    expect(bash('runner_token_from_json', {}, 'not json').stdout.trim()).toBe('')
  })
  it('take_marked passes the marked value to stdout only, everything else to stderr', () => {
    const r = bash('take_marked AUTOLABS_PAT=', {}, 'warning: deprecated\nAUTOLABS_PAT=glpat-abc\nmore\n')
    expect(r.stdout).toBe('glpat-abc')
    expect(r.stderr).toBe('warning: deprecated\nmore\n')
  })
  it('the Ruby given to gitlab-rails holds no token, asks only for create_runner and revokes leftovers', () => {
    const ruby = bash('registration_pat_ruby').stdout
    expect(ruby).toContain("scopes: ['create_runner']")
    expect(ruby).toContain('expires_at: 1.day.from_now')
    expect(ruby).toContain('.each(&:revoke!)')
    expect(ruby).not.toMatch(/glpat-|set_token/)
  })
})

// Fake docker, curl and gitlab-runner record every argv; the tokens must never be in one.
const PAT = 'glpat-FAKEpat0123456789abcd'
const RUNNER_TOKEN = 'glrt-t1_FAKErunner0123456789'
function fakeBin(dir: string, postFails = false) {
  const bin = path.join(dir, 'bin')
  mkdirSync(bin)
  const put = (name: string, body: string) => {
    writeFileSync(path.join(bin, name), `#!/usr/bin/env bash\nprintf '%s\\n' "${name} $*" >>"${dir}/argv.log"\n${body}\n`)
    chmodSync(path.join(bin, name), 0o755)
  }
  put('docker', `case "$*" in *gitlab-rails*) echo 'DEPRECATION WARNING: something'; echo 'AUTOLABS_PAT=${PAT}';; esac`)
  put(
    'curl',
    `while [[ $# -gt 0 ]]; do
  case $1 in
    -H) if [[ $2 == @* ]]; then f=\${2#@}; printf 'mode=%s content=%s\\n' "$(stat -c %a "$f")" "$(cat "$f")" >>"${dir}/headers.log"; fi; shift ;;
    -X) method=$2; shift ;;
  esac
  shift
done
echo "$method" >>"${dir}/methods.log"
if [[ $method == POST ]]; then ${postFails ? 'echo "curl: (22) The requested URL returned error: 403" >&2; exit 22' : `echo '{"id":1,"token":"${RUNNER_TOKEN}","token_expires_at":null}'`}; fi
exit 0`,
  )
  put(
    'gitlab-runner',
    `case $1 in
  verify) if [[ -f "${dir}/registered" ]]; then echo 'Verifying runner... is valid   runner=t1_FAKEr'; else echo 'ERROR: no runner'; fi ;;
  register) printf 'CI_SERVER_TOKEN=%s CI_SERVER_URL=%s\\n' "$CI_SERVER_TOKEN" "$CI_SERVER_URL" >"${dir}/register-env.log"
    printf '[[runners]]\\n  url = "%s"\\n  token = "%s"\\n' "$CI_SERVER_URL" "$CI_SERVER_TOKEN" >"${dir}/config.toml"
    touch "${dir}/registered" ;;
esac`,
  )
  return bin
}
/** A scratch directory with the stage's state directory in it. */
const registrationDir = () => {
  const dir = tempDir('al-gl-reg-')
  mkdirSync(path.join(dir, 'state'))
  return dir
}
const register = (dir: string, bin: string) =>
  bash(`RUNNER_CONFIG="${dir}/config.toml"; do_runner_register && check_runner_register`, {
    PATH: `${bin}:${process.env.PATH}`,
    AUTOLABS_STATE_DIR: path.join(dir, 'state'),
  })

describe.skipIf(!hasPython)('gitlab.sh do_runner_register (runner-token flow against fakes)', () => {
  it('creates the token in GitLab, creates the runner with it, registers with the glrt- token and revokes the PAT', () => {
    const dir = registrationDir()
    const r = register(dir, fakeBin(dir))
    expect(r.code, r.stderr).toBe(0)
    const argv = readFileSync(path.join(dir, 'argv.log'), 'utf8')
    expect(argv).toMatch(/^docker exec gitlab timeout 900 gitlab-rails runner [\s\S]*create_runner/m)
    expect(argv).toMatch(/^curl .*-X POST http:\/\/192\.168\.100\.10\/api\/v4\/user\/runners .*runner_type=instance_type/m)
    expect(argv).toMatch(/^gitlab-runner register --non-interactive --executor docker --docker-image alpine:3/m)
    expect(readFileSync(path.join(dir, 'methods.log'), 'utf8').trim().split('\n')).toEqual(['POST', 'DELETE'])
    expect(readFileSync(path.join(dir, 'register-env.log'), 'utf8').trim()).toBe(`CI_SERVER_TOKEN=${RUNNER_TOKEN} CI_SERVER_URL=http://192.168.100.10`)
    // The PAT reached curl only in a 0600 header file.
    expect(readFileSync(path.join(dir, 'headers.log'), 'utf8').trim().split('\n')).toEqual([
      `mode=600 content=PRIVATE-TOKEN: ${PAT}`,
      `mode=600 content=PRIVATE-TOKEN: ${PAT}`,
    ])
  })
  it('trusts a private CA in its API calls and in the runner, never skipping verification', () => {
    const dir = registrationDir()
    const r = bash(`RUNNER_CONFIG="${dir}/config.toml"; do_runner_register`, {
      PATH: `${fakeBin(dir)}:${process.env.PATH}`,
      AUTOLABS_STATE_DIR: path.join(dir, 'state'),
      GITLAB_HOME: '/srv/gitlab',
      ...TLS,
    })
    expect(r.code, r.stderr).toBe(0)
    const argv = readFileSync(path.join(dir, 'argv.log'), 'utf8')
    const ca = '/srv/gitlab/config/trusted-certs/autolabs-ca.crt'
    expect(argv).toMatch(new RegExp(`^curl .*--cacert ${ca} .*-X POST https://gitlab\\.lab/api/v4/user/runners`, 'm'))
    expect(argv).toMatch(new RegExp(`^curl .*--cacert ${ca} .*-X DELETE`, 'm'))
    expect(argv).toMatch(new RegExp(`^gitlab-runner register .*--tls-ca-file ${ca}`, 'm'))
  })
  it('never puts a token on a command line or in the log, and leaves no token file behind', () => {
    const dir = registrationDir()
    const r = register(dir, fakeBin(dir))
    expect(r.code, r.stderr).toBe(0)
    const argv = readFileSync(path.join(dir, 'argv.log'), 'utf8')
    for (const secret of [PAT, RUNNER_TOKEN]) {
      expect(argv).not.toContain(secret)
      expect(r.stderr + r.stdout).not.toContain(secret)
    }
    expect(r.stderr).toContain('DEPRECATION WARNING: something') // the rest of gitlab-rails' output is kept
    expect(readdirSync(path.join(dir, 'state'))).toEqual([])
  })
  it('does nothing when the runner already verifies', () => {
    const dir = registrationDir()
    const bin = fakeBin(dir)
    writeFileSync(path.join(dir, 'registered'), '')
    writeFileSync(path.join(dir, 'config.toml'), '[[runners]]\n  url = "http://192.168.100.10"\n')
    const r = register(dir, bin)
    expect(r.code, r.stderr).toBe(0)
    expect(readFileSync(path.join(dir, 'argv.log'), 'utf8')).not.toMatch(/^(docker|curl|gitlab-runner register)/m)
  })
  it('fails naming the API call when GitLab refuses to create the runner, and removes the header file', () => {
    const dir = registrationDir()
    const r = register(dir, fakeBin(dir, true))
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('AUTOLABS_ERROR POST http://192.168.100.10/api/v4/user/runners failed')
    expect(r.stderr).not.toContain(PAT)
    expect(readdirSync(path.join(dir, 'state'))).toEqual([])
    expect(existsSync(path.join(dir, 'registered'))).toBe(false)
  })
})

describe('gitlab.sh database_login (the login GitLab start waits behind)', () => {
  // A fake psql that refuses the login as PostgreSQL 15's psql prints it (exit 2), so the
  // failure path runs under the stage's `set -Eeuo pipefail` as on a VM. The real login,
  // against a real PostgreSQL on another machine, is test/lab/deploy-dependency.test.ts.
  const bin = mkdtempSync(path.join(tmpdir(), 'al-psql-'))
  temps.push(bin)
  writeFileSync(
    path.join(bin, 'psql'),
    '#!/bin/bash\necho \'psql: error: connection to server at "192.168.100.20", port 5432 failed: FATAL:  password authentication failed for user "gitlab"\' >&2\nexit 2\n',
  )
  chmodSync(path.join(bin, 'psql'), 0o755)
  const env = {PATH: `${bin}:${process.env.PATH}`, GITLAB_EXTERNAL_DB: 'true', DB_HOST: '192.168.100.20', GITLAB_DB_NAME: 'gitlab', GITLAB_DB_USER: 'gitlab', DB_LOGIN_SECONDS: '1', VM_IP: '192.168.100.10'}

  it('a refused login fails the step with psql’s reason, the database, the user and the host', () => {
    const r = bash('do_database_login', env)
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain(
      'AUTOLABS_ERROR GitLab\'s database gitlab on 192.168.100.20:5432 does not accept user gitlab from this VM (192.168.100.10): psql: error: connection to server at "192.168.100.20", port 5432 failed: FATAL:  password authentication failed for user "gitlab"',
    )
    expect(r.stderr).not.toMatch(/failed \(exit 2\) in do_database_login/)
  })
  it('is done without a login when GitLab keeps its bundled database', () => {
    expect(ok('check_database_login', {...env, GITLAB_EXTERNAL_DB: 'false'})).toBe(true)
    expect(ok('check_database_login', env)).toBe(false)
  })
})
