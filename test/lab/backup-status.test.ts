import {existsSync} from 'node:fs'
import {cp, readFile, stat, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {pipeline} from 'node:stream/promises'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {findBackup} from '../../src/backup/manifest.js'
import {backupGitlab} from '../../src/backup/parts.js'
import {restoreEtcd, restorePostgres} from '../../src/backup/restore.js'
import {runBackup} from '../../src/backup/run.js'
import {DevNull, readDecompressed, sha256File} from '../../src/backup/streams.js'
import {verifyBackup} from '../../src/backup/verify.js'
import {collectStatus} from '../../src/status/collect.js'
import {redisPingCmd} from '../../src/status/probes.js'
import {type DayTwoContext, openDayTwo} from '../../src/status/context.js'
import {depsFromContext, planFromContext} from '../../src/status/run.js'
import {DEFAULT_THRESHOLDS} from '../../src/status/types.js'
import type {StatusReport} from '../../src/status/types.js'
import type {Secrets} from '../../src/workspace/secrets.js'
import type {Workspace} from '../../src/workspace/workspace.js'
import {runCli} from '../support/cli.js'
import {type Lab, labAvailable, startLab} from '../support/lab/lab.js'
import {ETCDCTL, must, setupDatabase, setupEtcd} from './backup-support.js'
import {labWorkspace, sh} from './deploy-support.js'

// Real Debian 12 machines (systemd-nspawn) reached over SSH exactly as the VMs would be:
// PostgreSQL 15 and Redis from Debian (installed with apt through the lab's proxy, set up like
// the database stage does: a login role and database per platform user, scram over TCP),
// etcd 3.4 from Debian with TLS certificates at kubeadm's paths. GitLab cannot run here: its
// backup is tested at the boundary, with a stand-in `docker` that answers like the container.
const avail = labAvailable()
const hasHostTools = existsSync('/usr/bin/psql') && existsSync('/usr/bin/zstd')
const SUBNET = 46
const IP = {gitlab: `10.99.${SUBNET}.10`, database: `10.99.${SUBNET}.20`, k8s: `10.99.${SUBNET}.30`}
const reason = !avail.ok ? avail.reason : !hasHostTools ? 'needs psql and zstd on the host' : ''

/** A stand-in for `docker` on gitlab-vm: answers the two calls the GitLab backup makes. */
const FAKE_DOCKER = `#!/bin/bash
set -euo pipefail
[ "$1" = exec ] && [ "$2" = gitlab ] || { echo "fake docker: unexpected $*" >&2; exit 2; }
shift 2
case "$1" in
  gitlab-backup)
    name=$(printf '%s\\n' "$@" | sed -n 's/^BACKUP=//p')
    install -d /srv/gitlab/data/backups
    tmp=$(mktemp -d); head -c 3000000 /dev/urandom > "$tmp/repositories.tar.gz"; echo db > "$tmp/db.sql.gz"
    tar -C "$tmp" -cf "/srv/gitlab/data/backups/\${name}_gitlab_backup.tar" . && rm -rf "$tmp"
    echo "Backup \${name} is done." ;;
  cat) echo 19.6.0 ;;
  *) echo "fake docker exec: unexpected $*" >&2; exit 2 ;;
esac
`

describe.skipIf(!avail.ok || !hasHostTools)(`backup and status on lab machines${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let lab: Lab
  let ws: Workspace
  let secrets: Secrets
  let ctx: DayTwoContext
  let pgId: string

  beforeAll(async () => {
    lab = await startLab({
      name: 'backup-status',
      subnet: SUBNET,
      machines: [
        {name: 'gitlab-vm', ip: IP.gitlab},
        {name: 'database-vm', ip: IP.database},
        {name: 'k8s-vm', ip: IP.k8s},
      ],
    })
    ;({ws, secrets} = await labWorkspace(lab, IP))
    await Promise.all([setupDatabase(lab.machine('database-vm'), secrets, {subnet: SUBNET}), setupEtcd(lab.machine('k8s-vm'))])
    ctx = await openDayTwo(ws, {withProxmox: false})
  })

  afterAll(async () => {
    await ctx?.close()
    await lab?.stop()
    if (ws) await sh('rm', ['-rf', ws.root])
  })

  const counts = async () =>
    must(
      await lab.machine('database-vm').exec(
        `for db in autolabs zitadel gitlab; do runuser -u postgres -- psql -X -At -d $db -c "SELECT '$db', count(*), coalesce(sum(id), 0) FROM items" 2>&1 || echo "$db missing"; done`,
      ),
      'count rows',
    )

  it('backup now --only postgres streams pg_dumpall over SSH into postgres.sql.zst and records it in the manifest', async () => {
    const progress: number[] = []
    const r = await runBackup(
      {backupsDir: ws.backupsDir, node: 'pve', vms: ctx.vms, parts: ['postgres'], onEvent: (e) => e.type === 'bytes' && progress.push(e.bytes)},
      {connect: (role) => ctx.connect(role)},
    )
    pgId = r.manifest.id
    const part = r.manifest.parts[0]
    expect(part, part.error).toMatchObject({part: 'postgres', status: 'ok'})
    expect(part.versions?.postgres).toMatch(/^15\./)
    // Debian's minimal system has no zstd: the dump was compressed on this side.
    expect(part.details?.compressedOn).toBe('workstation')
    expect(part.details?.databases).toEqual(expect.arrayContaining(['autolabs', 'gitlab', 'zitadel', 'postgres']))
    const file = path.join(r.dir, 'postgres.sql.zst')
    expect(part.files).toEqual([{path: 'postgres.sql.zst', bytes: (await stat(file)).size, sha256: (await sha256File(file)).sha256}])
    expect((await stat(file)).mode & 0o777).toBe(0o600)
    // Compressed on the way: much smaller than what came over the wire.
    expect(part.details?.uncompressedBytes as number).toBeGreaterThan(part.files[0].bytes * 2)
    // The content is a real dump of all three databases.
    let text = ''
    const {stream, done} = readDecompressed(file)
    stream.on('data', (d: Buffer) => {
      if (text.length < 50_000_000) text += d.toString()
    })
    await Promise.all([pipeline(stream, new DevNull()), done])
    for (const db of ['autolabs', 'zitadel', 'gitlab']) expect(text).toContain(`\\connect ${db}`)
    expect(text).toContain('gitlab-20000')
    expect(text).toContain('CREATE ROLE zitadel_user;')
    // Nothing was written on the VM.
    expect(must(await lab.machine('database-vm').exec('ls -A /var/tmp /tmp | grep -c autolabs || true'), 'ls').trim()).toBe('0')
    // Progress reported the bytes as they streamed, ending at the full size.
    expect(progress.length).toBeGreaterThan(1)
    expect(progress.at(-1)).toBe(part.details?.uncompressedBytes)
  })

  it('backup verify: checksums match and the dump, replayed into a scratch cluster, dumps identically database by database', async () => {
    const r = await verifyBackup(ws.backupsDir, pgId, {connectDatabase: () => ctx.connect('database')})
    expect(r.files).toEqual([{part: 'postgres', path: 'postgres.sql.zst', ok: true, detail: 'SHA-256 matches'}])
    expect(r.postgres?.ok, JSON.stringify(r.postgres)).toBe(true)
    expect(r.postgres?.databases.map((d) => d.database)).toEqual(expect.arrayContaining(['(globals)', 'autolabs', 'gitlab', 'zitadel']))
    expect(r.ok).toBe(true)
    // The scratch cluster is gone and the live one untouched.
    const m = lab.machine('database-vm')
    expect(must(await m.exec('ls -d /var/tmp/autolabs-verify.* 2>/dev/null | wc -l'), 'ls').trim()).toBe('0')
    expect(await counts()).toContain('gitlab|20000|')
  })

  it('backup verify fails on a damaged copy: one flipped byte breaks the checksum', async () => {
    const b = await findBackup(ws.backupsDir, pgId)
    const copyId = '20200101-000000'
    const copy = path.join(ws.backupsDir, copyId)
    await cp(b.dir, copy, {recursive: true})
    const f = path.join(copy, 'postgres.sql.zst')
    const buf = await readFile(f)
    buf[Math.floor(buf.length / 2)] ^= 0xff
    await writeFile(f, buf)
    const r = await verifyBackup(ws.backupsDir, copyId, {connectDatabase: () => ctx.connect('database')})
    expect(r.ok).toBe(false)
    expect(r.files[0]).toMatchObject({ok: false, detail: expect.stringMatching(/^SHA-256 [0-9a-f]{64} ≠/)})
    expect(r.postgres).toBeUndefined()
    await sh('rm', ['-rf', copy])
  })

  it('backup restore postgres brings back a dropped table, deleted rows and a changed password, with a client still connected', async () => {
    const m = lab.machine('database-vm')
    const before = await counts()
    must(
      await m.exec(`set -e
runuser -u postgres -- psql -X -q -d zitadel -c 'DROP VIEW item_names; DROP TABLE items'
runuser -u postgres -- psql -X -q -d autolabs -c 'DELETE FROM items WHERE id > 10'
runuser -u postgres -- psql -X -q -d postgres -c "ALTER ROLE gitlab_user PASSWORD 'changed-by-mistake'"
systemd-run --unit=idle-client runuser -u postgres -- psql -X -d autolabs -c 'SELECT pg_sleep(300)'`),
      'damage',
    )
    expect(await counts()).not.toBe(before)
    const r = await restorePostgres(ws.backupsDir, pgId, () => ctx.connect('database'))
    expect(r.id).toBe(pgId)
    expect(await counts()).toBe(before)
    // The platform user logs in with its original password again (scram over TCP, from the host).
    const login = await sh('psql', ['-X', '-At', '-h', IP.database, '-U', 'gitlab_user', '-d', 'gitlab', '-c', 'SELECT count(*) FROM items'], {env: {PGPASSWORD: secrets.postgres.users.gitlab, PGCONNECT_TIMEOUT: '5'}})
    expect(login.stdout.trim(), login.stderr).toBe('20000')
  })

  it('with zstd on the VM the dump is compressed there: only the compressed stream crosses the network', async () => {
    const m = lab.machine('database-vm')
    must(await m.exec('DEBIAN_FRONTEND=noninteractive apt-get install -y -q zstd >/dev/null', {timeoutMs: 300_000}), 'install zstd')
    const progress: number[] = []
    const r = await runBackup(
      {backupsDir: ws.backupsDir, node: 'pve', vms: ctx.vms, parts: ['postgres'], onEvent: (e) => e.type === 'bytes' && progress.push(e.bytes)},
      {connect: (role) => ctx.connect(role), now: () => new Date(Date.now() + 2000)},
    )
    const part = r.manifest.parts[0]
    expect(part, part.error).toMatchObject({status: 'ok', details: {compressedOn: 'vm'}})
    // What streamed is the compressed size; dd on the VM reported the raw size.
    expect(progress.at(-1)).toBe(part.files[0].bytes)
    expect(part.details?.uncompressedBytes as number).toBeGreaterThan(part.files[0].bytes * 2)
    const v = await verifyBackup(ws.backupsDir, r.manifest.id, {connectDatabase: () => ctx.connect('database')})
    expect(v.ok, JSON.stringify(v.postgres)).toBe(true)
  })

  it('backup now --only etcd snapshots etcd with the kubeadm-path certificates; restore etcd brings the keys back', async () => {
    const m = lab.machine('k8s-vm')
    must(await m.exec(`${ETCDCTL} put /registry/ns/platform v1 >/dev/null && ${ETCDCTL} put /registry/ns/labs v1 >/dev/null`), 'put')
    const r = await runBackup({backupsDir: ws.backupsDir, node: 'pve', vms: ctx.vms, parts: ['etcd']}, {connect: (role) => ctx.connect(role), now: () => new Date(Date.now() + 1000)})
    const part = r.manifest.parts[0]
    expect(part, part.error).toMatchObject({part: 'etcd', status: 'ok'})
    expect(part.versions?.etcd).toMatch(/^3\.\d+\.\d+$/)
    expect(part.files[0].path).toBe('etcd-snapshot.db.zst')
    expect(must(await m.exec('ls /var/lib/etcd'), 'ls')).not.toMatch(/autolabs-snapshot/)
    // Real etcd's snapshot carries the SHA-256 that `backup verify` checks locally.
    const v = await verifyBackup(ws.backupsDir, r.manifest.id, {restoreCheck: false})
    expect(v.etcd, JSON.stringify(v)).toMatchObject({ok: true})

    must(await m.exec(`${ETCDCTL} del /registry/ns/labs >/dev/null && ${ETCDCTL} put /registry/ns/platform v2 >/dev/null && ${ETCDCTL} put /registry/ns/intruder x >/dev/null`), 'change')
    const restored = await restoreEtcd(ws.backupsDir, r.manifest.id, () => ctx.connect('k8s'))
    expect(restored.previousDataDir).toMatch(/^\/var\/lib\/etcd\/default\.autolabs-before-\d{8}-\d{6}$/)
    let got = ''
    for (let i = 0; i < 50 && !got.includes('/registry/ns/platform'); i++) {
      got = (await m.exec(`${ETCDCTL} get --prefix /registry/ns`)).stdout
      if (!got) await new Promise((res) => setTimeout(res, 200))
    }
    expect(got.trim().split('\n')).toEqual(['/registry/ns/labs', 'v1', '/registry/ns/platform', 'v1'])
    expect(must(await m.exec(`test -d ${restored.previousDataDir} && echo kept`), 'old data')).toContain('kept')
  })

  it('GitLab backup at its boundary (GitLab cannot run here): gitlab-backup tar plus gitlab-secrets.json and gitlab.rb copied back 0600, the VM copy removed', async () => {
    const m = lab.machine('gitlab-vm')
    must(
      await m.exec(`set -e
cat > /usr/local/bin/docker; chmod 0755 /usr/local/bin/docker
install -d -m 0755 /srv/gitlab/config
echo '{"gitlab_rails":{"secret_key_base":"s3cr3t"}}' > /srv/gitlab/config/gitlab-secrets.json
echo "external_url 'http://${IP.gitlab}'" > /srv/gitlab/config/gitlab.rb
chmod 0600 /srv/gitlab/config/*`,
        {input: FAKE_DOCKER},
      ),
      'fake docker',
    )
    const dir = path.join(ws.backupsDir, 'gitlab-boundary')
    await sh('mkdir', ['-p', dir])
    const sess = await ctx.connect('gitlab')
    const out = await backupGitlab(sess, dir, '20261125-020000', {})
    await sess.close()
    expect(out.versions).toEqual({gitlab: '19.6.0'})
    expect(out.files.map((f) => f.path)).toEqual(['gitlab_backup.tar', 'gitlab-secrets.json', 'gitlab.rb'])
    for (const f of out.files) {
      const st = await stat(path.join(dir, f.path))
      expect(st.mode & 0o777, f.path).toBe(0o600)
      expect(st.size).toBe(f.bytes)
    }
    expect(out.files[0].bytes).toBeGreaterThan(3_000_000)
    expect(await readFile(path.join(dir, 'gitlab-secrets.json'), 'utf8')).toContain('secret_key_base')
    expect(must(await m.exec('ls /srv/gitlab/data/backups | wc -l'), 'ls').trim()).toBe('0')
    await sh('rm', ['-rf', dir])
  })

  it('status --timeout bounds each check once connected: a hung Redis fails with "no answer within 3 s", the VM\'s other checks answer on the same connection', async () => {
    const m = lab.machine('database-vm')
    // Hung, not down: redis-server stopped by SIGSTOP still accepts TCP connections (the kernel
    // completes them) but never answers, so the probe's redis-cli blocks after the SSH login.
    // The probe bounds redis-cli itself at 5 s (`timeout 5`, src/status/probes.ts): only a
    // --timeout below that can produce this detail; with the default 8 s it would read
    // "redis-cli exited 124".
    must(await m.exec('systemctl kill --signal=SIGSTOP redis-server'), 'stop-signal redis')
    let r: Awaited<ReturnType<typeof runCli>>
    try {
      r = await runCli(['status', '--json', '--dir', ws.root, '--timeout', '3', '--connect-timeout', '10'], {timeoutMs: 120_000})
    } finally {
      must(await m.exec('systemctl kill --signal=SIGCONT redis-server'), 'continue redis')
    }
    const report = JSON.parse(r.stdout) as StatusReport
    const check = (id: string) => report.checks.find((c) => c.id === id)
    expect(check('database/redis'), r.stderr).toMatchObject({status: 'fail', detail: 'no answer within 3 s'})
    // The connection is shared: the hung check did not make the VM unreachable.
    for (const db of ['autolabs', 'zitadel', 'gitlab']) expect(check(`database/postgres-login/${db}`)).toMatchObject({status: 'ok', detail: 'login accepted'})
    expect(check('database/ssh')?.detail).toMatch(/disk .* used|free disk/)
    expect(report.checks.filter((c) => c.status === 'unreachable')).toEqual([])
    // Degraded (a service failed), not unreachable.
    expect({overall: report.overall, exitCode: r.exitCode}).toEqual({overall: 'degraded', exitCode: 1})
    // Redis answers again for the tests after this one.
    const ping = redisPingCmd(IP.database)
    expect(must(await m.exec(ping.cmd, {input: ping.stdin(secrets.redis.password)}), 'redis PING').trim()).toBe('PONG')
  })

  it('status: every check at once; a stopped service fails, an unreachable VM is reported within the connect timeout, a crossed threshold warns', async () => {
    const plan = planFromContext(ctx, {connectTimeoutMs: 3000, checkTimeoutMs: 8000})
    const deps = depsFromContext(ctx, {connectTimeoutMs: 3000})

    // Healthy database services first.
    const before = await collectStatus(plan, deps)
    for (const db of ['autolabs', 'zitadel', 'gitlab']) expect(before.checks.find((c) => c.id === `database/postgres-login/${db}`)).toMatchObject({status: 'ok'})
    expect(before.checks.find((c) => c.id === 'database/redis')).toMatchObject({status: 'ok', detail: 'PONG with AUTH'})

    // One service stopped, one VM unreachable, one threshold crossed.
    must(await lab.machine('database-vm').exec('systemctl stop redis-server'), 'stop redis')
    await lab.shutdown('gitlab-vm')
    // The lab's disks are the host's filesystem: the threshold is set just below its real free
    // space (as measured by the previous run), so the real `df` figure crosses it.
    const usedPct = before.vms.find((v) => v.role === 'database')!.diskPct!
    const r = await collectStatus({...plan, thresholds: {...DEFAULT_THRESHOLDS, freeDiskPct: 100 - usedPct + 1}}, deps)
    console.log(`status with gitlab-vm down: ${r.durationMs} ms; ${JSON.stringify(r.summary)}`)

    expect(r.checks.find((c) => c.id === 'database/redis')).toMatchObject({status: 'fail', detail: expect.stringMatching(/Connection refused/)})
    expect(r.checks.find((c) => c.id === 'database/ssh')).toMatchObject({status: 'warn', detail: expect.stringMatching(/^free disk .* < .* %$/)})
    for (const db of ['autolabs', 'zitadel', 'gitlab']) expect(r.checks.find((c) => c.id === `database/postgres-login/${db}`)?.status).toBe('ok')
    const gitlab = r.checks.filter((c) => c.target === 'gitlab' && c.id !== 'gitlab/vm')
    expect(gitlab.find((c) => c.id === 'gitlab/ssh')).toMatchObject({status: 'unreachable', detail: expect.stringMatching(/^SSH to 10\.99\.46\.10/)})
    // Kubernetes cannot run in the lab: its checks fail (kubectl missing), which is their correct verdict here.
    expect(r.checks.find((c) => c.id === 'k8s/k8s-node')?.status).toBe('fail')
    expect(r.checks.find((c) => c.id === 'k8s/ssh')?.status).not.toBe('unreachable')
    expect(r).toMatchObject({overall: 'unreachable', exitCode: 3})
  })
})
