import {createHash} from 'node:crypto'
import {execFileSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, describe, expect, it} from 'vitest'

import {VERSIONS} from '../../../src/config/catalog.js'
import {sourceAndRun} from '../../support/bash.js'

// database.sh's Redis and SeaweedFS install decisions, run by bash with apt, the network and
// the installed binaries stubbed: what a database-vm would be told to install, without one.
const HERE = path.dirname(fileURLToPath(import.meta.url))
const SCRIPT = path.resolve(HERE, '../../../assets/stages/database.sh')
const fx = (name: string) => path.join(HERE, 'fixtures', name)
const dir = mkdtempSync(path.join(tmpdir(), 'al-db-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))
let n = 0
const fresh = () => {
  const d = path.join(dir, String(n++))
  mkdirSync(d)
  return d
}

function bash(snippet: string, env: Record<string, string> = {}) {
  return sourceAndRun(SCRIPT, snippet, {env: {PATH: process.env.PATH ?? '/usr/bin:/bin', ...env}, timeoutMs: 20_000})
}

describe('database.sh redis_install (the pinned Redis minor, never the distribution’s 7.0)', () => {
  /**
   * apt and the network stubbed: apt_candidate answers CAND (an `apt-cache policy` candidate),
   * redis-server reports INSTALLED (as `redis-server --version` prints it), every action is
   * logged, and the files the step writes land in the test's directory.
   */
  function install(cand: string, installed: string, redisVersion: string = VERSIONS.redis) {
    const d = fresh()
    const log = path.join(d, 'calls')
    const stubs = [
      `REDIS_LIST=${d}/redis.list REDIS_KEY=${d}/redis.asc REDIS_PIN=${d}/autolabs-redis`,
      'ensure_apt_lists() { :; }',
      `apt_candidate() { [[ $1 == redis-server ]] && printf '%s' '${cand}'; }`,
      "os_codename() { printf 'bookworm'; }",
      `require_reachable() { echo "reach $1" >> ${log}; }`,
      `fetch() { echo "fetch $1" >> ${log}; : > "$2"; }`,
      `install() { echo "install $*" >> ${log}; }`,
      `write_file() { printf '%s\\n' "$2" > "$1"; echo "write $1" >> ${log}; }`,
      `apt_update() { echo apt_update >> ${log}; }`,
      `apt_install() { echo "apt_install $*" >> ${log}; }`,
      `apt-mark() { echo "apt-mark $*" >> ${log}; }`,
      // The format of Debian's and redis.io's redis-server 7.x.
      `redis-server() { printf 'Redis server v=%s sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=4f9f8a5ea9ca6b33\\n' '${installed}'; }`,
    ].join('; ')
    const r = bash(`${stubs}; do_redis_install`, {REDIS_VERSION: redisVersion})
    const calls = existsSync(log) ? readFileSync(log, 'utf8') : ''
    const read = (f: string) => (existsSync(path.join(d, f)) ? readFileSync(path.join(d, f), 'utf8') : undefined)
    return {...r, calls, list: read('redis.list'), pin: read('autolabs-redis')}
  }

  it("regression: the default pin does not take Debian 12's redis-server 7.0.15 but adds packages.redis.io, pinned to 7.2", () => {
    // Debian bookworm's candidate (bookworm-security). With the old pin '7', 7.0.15 matched 7.*.
    const r = install('5:7.0.15-1~deb12u10', '7.2.7')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain('this distribution offers redis-server 7.0.15-1~deb12u10; adding https://packages.redis.io/deb pinned to 7.2.x')
    expect(r.calls).toContain('reach https://packages.redis.io/deb/dists/bookworm/Release')
    expect(r.list).toMatch(/^deb \[signed-by=\S+redis\.asc\] https:\/\/packages\.redis\.io\/deb bookworm main$/m)
    // redis.io's packages carry epoch 6 ("6:7.2.7-1rl1~bookworm1"): the pin takes 7.2.x only.
    expect(r.pin).toBe('Package: redis redis-server redis-tools\nPin: version 6:7.2*\nPin-Priority: 1001\n')
    expect(r.calls).toMatch(/apt_update\n[\s\S]*apt-mark unhold redis-server redis-tools\napt_install redis-server redis-tools\napt-mark hold redis-server redis-tools\n$/)
  })

  it('takes the configured sources as they are when their candidate is of the pinned minor', () => {
    const r = install('6:7.2.7-1rl1~bookworm1', '7.2.7')
    expect(r.code, r.stderr).toBe(0)
    expect(r.calls).not.toContain('packages.redis.io')
    expect(r.list).toBeUndefined()
    expect(r.calls).toContain('apt_install redis-server redis-tools')
  })

  it('a minor is not a prefix: 7.2 does not take 7.20.x, nor 7.0 take 7.2.x', () => {
    expect(install('6:7.20.1-1rl1~bookworm1', '7.2.7').list).toBeDefined()
    expect(install('6:7.2.7-1rl1~bookworm1', '7.0.15', '7.0').list).toBeDefined()
  })

  it("an explicit 7.0 (the lab's override) keeps Debian's package", () => {
    const r = install('5:7.0.15-1~deb12u10', '7.0.15', '7.0')
    expect(r.code, r.stderr).toBe(0)
    expect(r.list).toBeUndefined()
  })

  it('lifts the hold an earlier run set before installing (a held 7.0 is never upgraded to 7.2 otherwise)', () => {
    const r = install('5:7.0.15-1~deb12u10', '7.2.7')
    expect(r.calls.indexOf('apt-mark unhold redis-server redis-tools')).toBeLessThan(r.calls.indexOf('apt_install'))
  })

  it('fails naming the installed and the configured version when apt installed another one', () => {
    const r = install('5:7.0.15-1~deb12u10', '7.0.15')
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('AUTOLABS_ERROR redis-server 7.0.15 is installed, not the configured 7.2 (services.redis.version)')
  })

  it('check: the running binary must be of the pinned minor', () => {
    const check = (v: string) => bash(`pkg_installed() { return 0; }; redis-server() { echo "Redis server v=${v} sha=0"; }; check_redis_install`, {REDIS_VERSION: '7.2'}).code
    expect(check('7.2.7')).toBe(0)
    expect(check('7.0.15')).toBe(1)
    expect(check('7.20.1')).toBe(1)
  })
})

describe('database.sh seaweedfs_config (the weed server command line)', () => {
  const unit = bash('weed_unit_text', {VM_IP: '192.168.100.20', S3_PORT: '8333'}).stdout
  const execStart = unit.split('\n').find((l) => l.startsWith('ExecStart='))!
  const flags = new Map(execStart.split(' ').filter((a) => a.startsWith('-')).map((a) => [a.slice(1).split('=')[0], a.split('=')[1]] as const))
  // weed server's flags at the pinned release, transcribed from upstream (see the fixture's header).
  const upstream = new Map(
    readFileSync(fx(`weed-server-flags-${VERSIONS.seaweedfs}.tsv`), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split('\t'))
      .map(([name, def, usage]) => [name, {def, usage}]),
  )

  it('uses only flags weed server has at the pinned release', () => {
    for (const name of flags.keys()) expect(upstream.has(name), `-${name}`).toBe(true)
  })

  it('switches off what 4.x turned on by default: telemetry, the Iceberg and Lance listeners, bucket auto-creation', () => {
    expect(upstream.get('master.telemetry')?.def).toBe('true')
    expect(flags.get('master.telemetry')).toBe('false')
    for (const port of ['s3.port.iceberg', 's3.port.lance']) {
      expect(upstream.get(port)?.usage).toContain('(0 to disable)')
      expect(flags.get(port), port).toBe('0')
    }
    expect(upstream.get('s3.autoCreateBucket')?.def).toBe('true')
    expect(flags.get('s3.autoCreateBucket')).toBe('false')
  })

  it('listens where the firewall opens: the S3 port on the VM address', () => {
    expect(flags.get('ip.bind')).toBe('192.168.100.20')
    expect(flags.get('s3.port')).toBe('8333')
  })
})

describe('database.sh seaweedfs_install (release archive, its published MD5, an upgrade in place)', () => {
  /** A release archive holding a `weed` script, and the .md5 the release publishes beside it. */
  function release(d: string, md5?: string) {
    const src = path.join(d, 'src')
    mkdirSync(src)
    writeFileSync(path.join(src, 'weed'), `#!/bin/sh\necho "version 30GB ${VERSIONS.seaweedfs} 3563738699f2 linux amd64"\n`, {mode: 0o755})
    execFileSync('tar', ['-czf', path.join(d, 'linux_amd64.tar.gz'), '-C', src, 'weed'])
    const sum = createHash('md5').update(readFileSync(path.join(d, 'linux_amd64.tar.gz'))).digest('hex')
    // go-release-action writes the bare hex digest.
    writeFileSync(path.join(d, 'linux_amd64.tar.gz.md5'), `${md5 ?? sum}\n`)
  }
  function run(d: string, snippet = 'do_seaweedfs_install && check_seaweedfs_install', env: Record<string, string> = {}) {
    const stubs = [
      `WEED_DIR=${d}/opt WEED_LINK=${d}/weed`,
      "dpkg() { echo amd64; }",
      `require_reachable() { echo "reach $1" >&2; }`,
      `fetch() { cp "${d}/$(basename "$1")" "$2"; }`,
    ].join('; ')
    return bash(`${stubs}; ${snippet}`, {SEAWEEDFS_VERSION: VERSIONS.seaweedfs, ...env})
  }

  it("installs the release matching its published MD5, saying what that does and does not prove", () => {
    const d = fresh()
    release(d)
    const r = run(d)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain(`reach https://github.com/seaweedfs/seaweedfs/releases/download/${VERSIONS.seaweedfs}/linux_amd64.tar.gz`)
    expect(r.stderr).toContain(
      `AUTOLABS_WARN SeaweedFS ${VERSIONS.seaweedfs}: no SHA-256 pinned in autolabs; the download matches the MD5 published on the same release page (this catches a damaged download, not a tampered release)`,
    )
    expect(readlinkSync(path.join(d, 'weed'))).toBe(`${d}/opt/${VERSIONS.seaweedfs}/weed`)
  })

  it('refuses a download that does not match the published MD5, naming both', () => {
    const d = fresh()
    release(d, '0123456789abcdef0123456789abcdef')
    const r = run(d)
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/AUTOLABS_ERROR SeaweedFS download \S+linux_amd64\.tar\.gz has MD5 [0-9a-f]{32}, but the release's \S+\.md5 says 0123456789abcdef0123456789abcdef: a damaged download; refusing it/)
    expect(existsSync(path.join(d, 'weed'))).toBe(false)
  })

  it('with a pinned SHA-256 (SEAWEEDFS_SHA256) checks that instead of the MD5', () => {
    const d = fresh()
    release(d, 'not-consulted')
    const sha = createHash('sha256').update(readFileSync(path.join(d, 'linux_amd64.tar.gz'))).digest('hex')
    const r = run(d, undefined, {SEAWEEDFS_SHA256: sha})
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).not.toContain('AUTOLABS_WARN')
    expect(run(d, undefined, {SEAWEEDFS_SHA256: '0'.repeat(64)}).stderr).toMatch(/has SHA-256 [0-9a-f]{64}, expected the pinned 0{64}: refusing it/)
  })

  it('an installation of another release is upgraded in place, and says so', () => {
    const d = fresh()
    release(d)
    mkdirSync(path.join(d, 'opt', '3.97'), {recursive: true})
    writeFileSync(path.join(d, 'opt', '3.97', 'weed'), '#!/bin/sh\necho "version 30GB 3.97 76452ab59399 linux amd64"\n', {mode: 0o755})
    symlinkSync(path.join(d, 'opt', '3.97', 'weed'), path.join(d, 'weed'))
    expect(run(d, 'check_seaweedfs_install').code).toBe(1)
    const r = run(d)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stderr).toContain(`upgrading SeaweedFS in place: ${d}/opt/3.97/weed -> ${d}/opt/${VERSIONS.seaweedfs}/weed (services.objectStorage.version ${VERSIONS.seaweedfs}); the data in /var/lib/seaweedfs is kept, the old binary stays on disk`)
    expect(existsSync(path.join(d, 'opt', '3.97', 'weed'))).toBe(true)
  })
})
