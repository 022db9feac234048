import {execFile} from 'node:child_process'
import {chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import {afterAll, afterEach, beforeAll, beforeEach, describe, expect, it} from 'vitest'

import {FAKE_WEED, type FakeS3, startFakeS3} from '../../support/fake-seaweedfs.js'

// database.sh's seaweedfs_buckets step against faithful SeaweedFS doubles (fake-seaweedfs.ts
// cites the upstream files): the real curl signs real S3 requests with the generated keys.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const DATABASE_SH = path.join(ROOT, 'assets/stages/database.sh')
const ACCESS = 'AKautolabsFAKE0123456789'
const SECRET = 'secret-Generated-0123456789abcdefXYZ'
const BUCKETS = ['platform-artifacts', 'lab-submissions', 'backups']

describe('database.sh seaweedfs_buckets (S3 API, signed with the generated keys)', () => {
  let dir: string
  let bin: string
  let s3: FakeS3

  const env = (over: Record<string, string> = {}) => ({
    PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    VM_IP: '127.0.0.1',
    S3_PORT: String(s3.port),
    S3_ACCESS_KEY: ACCESS,
    S3_SECRET_KEY: SECRET,
    S3_BUCKETS: BUCKETS.join(' '),
    FAKE_WEED_DIR: path.join(dir, 'weed'),
    CURL_ARGV_LOG: path.join(dir, 'curl-argv'),
    ...over,
  })
  /** Sources database.sh and runs `snippet` — asynchronously: the fake S3 server lives in this process. */
  const run = (snippet: string, over?: Record<string, string>) =>
    new Promise<{code: number; stdout: string; stderr: string}>((resolve) => {
      execFile('bash', ['-c', `source "$1"; ${snippet}`, 'test', DATABASE_SH], {env: {...env(over), HOME: '/nonexistent'}, timeout: 60_000}, (err, stdout, stderr) => {
        resolve({code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr})
      })
    })

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'al-s3-'))
    bin = path.join(dir, 'bin')
    mkdirSync(bin)
    // The upstream `weed shell` double, and a curl that records its command line (never a key).
    writeFileSync(path.join(bin, 'weed'), FAKE_WEED)
    writeFileSync(path.join(bin, 'curl'), '#!/bin/sh\nprintf "%s\\n" "$*" >> "$CURL_ARGV_LOG"\nexec /usr/bin/curl "$@"\n')
    chmodSync(path.join(bin, 'weed'), 0o755)
    chmodSync(path.join(bin, 'curl'), 0o755)
  })
  afterAll(() => rmSync(dir, {recursive: true, force: true}))
  beforeEach(async () => {
    rmSync(path.join(dir, 'weed'), {recursive: true, force: true})
    mkdirSync(path.join(dir, 'weed'))
    rmSync(path.join(dir, 'curl-argv'), {force: true})
    s3 = await startFakeS3({identities: [{name: 'autolabs', credentials: [{accessKey: ACCESS, secretKey: SECRET}], actions: ['Admin', 'Read', 'Write', 'List', 'Tagging']}]})
  })
  afterEach(async () => s3.stop())

  it('a fresh server has none: the check fails, the action creates each bucket once, then the check passes', async () => {
    expect((await run('check_seaweedfs_buckets')).code).toBe(1)
    const r = await run('do_seaweedfs_buckets && check_seaweedfs_buckets')
    expect(r.code, r.stderr).toBe(0)
    expect([...s3.buckets].sort()).toEqual([...BUCKETS].sort())
    expect(s3.log.filter((l) => l.startsWith('PUT')).sort()).toEqual(BUCKETS.map((b) => `PUT /${b} 200`).sort())
    // Signed: every request authenticated (a bad signature would be a 403).
    expect(s3.log.filter((l) => / 403 /.test(l))).toEqual([])
  })

  it('creates only the missing bucket, and a second run changes nothing', async () => {
    s3.buckets.add('platform-artifacts')
    expect((await run('do_seaweedfs_buckets')).code).toBe(0)
    expect(s3.log.filter((l) => l.startsWith('PUT'))).toEqual(['PUT /lab-submissions 200', 'PUT /backups 200'])
    s3.log.length = 0
    expect((await run('check_seaweedfs_buckets')).code).toBe(0)
    expect(s3.log.every((l) => l.startsWith('HEAD'))).toBe(true)
  })

  it('regression: the check asks the S3 API, not `weed shell`, whose piped output changed between releases', async () => {
    // 3.97 printed a "> " prompt before each answer when piped (the old `weed shell | awk` check
    // never matched a bucket); 4.44 prints none and s3.bucket.list has a "logical" column.
    mkdirSync(path.join(dir, 'weed', BUCKETS[0]))
    const shell = await run('printf "s3.bucket.list\\n" | weed shell -master=127.0.0.1:9333')
    expect(shell.stdout).toBe(`  ${BUCKETS[0]}\tsize:0\tlogical:0\tchunk:0\n`)
    // Buckets only weed shell would list: the check is not fooled.
    expect((await run('check_seaweedfs_buckets')).code).toBe(1)
    // Buckets the S3 API has: found, whatever weed shell says.
    for (const b of BUCKETS) s3.buckets.add(b)
    const r = await run('check_seaweedfs_buckets')
    expect(r.code, r.stderr).toBe(0)
  })

  it("s3_call reads SeaweedFS 4.44's answer to creating a bucket that exists (both are 409: the action logs it as existing)", async () => {
    expect((await run(`s3_call PUT ${BUCKETS[0]}`)).stdout).toBe('200 ')
    // Its creator again: BucketAlreadyOwnedByYou (3.97 said BucketAlreadyExists to everyone).
    expect((await run(`s3_call PUT ${BUCKETS[0]}`)).stdout).toBe('409 BucketAlreadyOwnedByYou')
    s3.buckets.add('taken')
    s3.owners.set('taken', 'someone-else')
    expect((await run('s3_call PUT taken')).stdout).toBe('409 BucketAlreadyExists')
  })

  it('wrong keys: the action fails at once, saying SeaweedFS refused the generated keys', async () => {
    const r = await run('do_seaweedfs_buckets', {S3_SECRET_KEY: 'not-the-secret-0123456789abcdef'})
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/AUTOLABS_ERROR SeaweedFS refused the generated S3 keys \(HTTP 403 SignatureDoesNotMatch\) creating bucket platform-artifacts/)
    const unknown = await run('do_seaweedfs_buckets', {S3_ACCESS_KEY: 'AKunknown000000000000'})
    expect(unknown.stderr).toMatch(/HTTP 403 InvalidAccessKeyId/)
    expect(s3.buckets.size).toBe(0)
  })

  it('an endpoint that does not answer fails the action naming it', async () => {
    const r = await run('do_seaweedfs_buckets', {S3_PORT: '1'})
    expect(r.code).toBe(1)
    expect(r.stderr).toMatch(/AUTOLABS_ERROR the S3 endpoint http:\/\/127\.0\.0\.1:1 does not answer \(creating bucket platform-artifacts\)/)
  })

  it('keeps the secret key off every command line and out of the output', async () => {
    const r = await run('do_seaweedfs_buckets && check_seaweedfs_buckets')
    expect(r.code).toBe(0)
    const argv = readFileSync(path.join(dir, 'curl-argv'), 'utf8')
    expect(argv).toContain('--aws-sigv4 aws:amz:us-east-1:s3')
    expect(argv).not.toContain(SECRET)
    expect(argv).not.toContain(ACCESS)
    expect(r.stdout + r.stderr).not.toContain(SECRET)
  })
})
