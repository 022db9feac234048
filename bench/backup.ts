/**
 * Backup benchmark on a lab machine, through the real CLI:
 *   `autolabs backup now --only postgres` (ssh2 stream → zstd child → SHA-256 → file)
 * versus the plain baseline in the same run
 *   `ssh host 'sudo -u postgres pg_dumpall --clean --if-exists' | zstd -3 -T0 > file`,
 * and the base backup the same way:
 *   `autolabs backup now --only basebackup` versus
 *   `ssh host 'sudo -u postgres pg_basebackup -D - -Ft -X fetch -c fast' | zstd -3 -T0 > file`
 * (WAL archiving on, as the database stage sets it, so the part also reads its history file).
 * Database: pgbench -i -s BENCH_PG_SCALE (default 70 ≈ 1.05 GB) in `autolabs`, plus the other
 * platform databases. Each side runs twice, interleaved; the faster run of each counts.
 * Targets: throughput ≥ 0.9 × the baseline; autolabs' peak RSS < 200 MB (`/usr/bin/time -v`).
 * Run: npm run build && npx vitest run --config bench/backup.config.ts bench/backup.ts  (root)
 */
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {rm, stat} from 'node:fs/promises'
import path from 'node:path'
import {it} from 'vitest'

import {enableWalArchiving, must, setupDatabase} from '../test/lab/backup-support.js'
import {labWorkspace, ROOT} from '../test/lab/deploy-support.js'
import {snapshotCli} from './cli-copy.js'
import {labAvailable, startLab} from '../test/support/lab/lab.js'

const avail = labAvailable()
const SCALE = Number(process.env.BENCH_PG_SCALE ?? 70)
const SUBNET = 47
const IP = `10.99.${SUBNET}.20`

function run(cmd: string, args: string[], timeoutMs = 1_800_000): Promise<{code: number; stdout: string; stderr: string; ms: number}> {
  const t0 = Date.now()
  return new Promise((resolve) => {
    execFile(cmd, args, {timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env: {PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NO_COLOR: '1'}}, (err, stdout, stderr) => {
      const code = err ? (typeof (err as {code?: unknown}).code === 'number' ? (err as {code: number}).code : -1) : 0
      resolve({code, stdout: String(stdout), stderr: String(stderr), ms: Date.now() - t0})
    })
  })
}

const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`
const rate = (b: number, ms: number) => `${(b / 1e6 / (ms / 1000)).toFixed(1)} MB/s`

it.skipIf(!avail.ok || !existsSync(path.join(ROOT, 'dist/commands/backup/now.js')))(`backup benchmark${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, async () => {
  const cli = await snapshotCli()
  const BIN = cli.bin
  const lab = await startLab({name: 'bench-backup', subnet: SUBNET, machines: [{name: 'database-vm', ip: IP}]})
  const {ws, secrets} = await labWorkspace(lab, {database: IP})
  try {
    const m = lab.machine('database-vm')
    await setupDatabase(m, secrets, {subnet: SUBNET})
    await enableWalArchiving(m)
    const t0 = Date.now()
    must(await m.exec(`runuser -u postgres -- pgbench -q -i -s ${SCALE} autolabs 2>&1 | tail -n 2`, {timeoutMs: 3_000_000}), 'pgbench -i')
    const size = must(await m.exec(`runuser -u postgres -- psql -X -At -c "SELECT pg_size_pretty(sum(pg_database_size(datname))) FROM pg_database"`), 'size').trim()
    console.log(`pgbench -i -s ${SCALE}: ${((Date.now() - t0) / 1000).toFixed(0)} s; cluster size ${size}`)

    const kh = path.join(ws.stateDir, 'bench_known_hosts')
    const baselineFile = path.join(ws.root, 'baseline.zst')
    const baseline = (remote: string) =>
      run('bash', [
        '-c',
        `set -o pipefail; ssh -i "$1" -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="$2" "$3" "$5" | zstd -q -3 -T0 > "$4"`,
        'baseline',
        lab.keyPath,
        kh,
        `${m.user}@${IP}`,
        baselineFile,
        remote,
      ])
    const BASELINE = {
      postgres: 'cd / && sudo -n runuser -u postgres -- pg_dumpall --clean --if-exists',
      basebackup: 'cd / && sudo -n runuser -u postgres -- pg_basebackup -D - -Ft -X fetch -c fast',
    }
    const autolabs = (part: string) => run('/usr/bin/time', ['-v', 'node', BIN, 'backup', 'now', '--only', part, '--no-prune', '--json', '--dir', ws.root])

    const results: Array<{who: string; ms: number; rawBytes: number; fileBytes: number; rssKb?: number}> = []
    // Round 0-1: the VM has no zstd (autolabs compresses on the workstation, like the baseline).
    // Round 2-3: zstd on the VM (as on Ubuntu cloud images): autolabs compresses there.
    for (let round = 0; round < 4; round++) {
      if (round === 2) must(await m.exec('DEBIAN_FRONTEND=noninteractive apt-get install -y -q zstd >/dev/null', {timeoutMs: 300_000}), 'install zstd')
      for (const part of ['postgres', 'basebackup'] as const) {
        const mode = `${part} autolabs (${round < 2 ? 'local zstd' : 'zstd on VM'})`
        const a = await autolabs(part)
        if (!a.stdout.trim()) throw new Error(`autolabs backup printed nothing (exit ${a.code}): ${a.stderr.slice(-3000)}`)
        const json = JSON.parse(a.stdout) as {manifest: {id: string; parts: Array<{status: string; error?: string; durationMs: number; files: Array<{bytes: number}>; details: {uncompressedBytes: number}}>}}
        const rec = json.manifest.parts[0]
        if (a.code !== 0 || rec.status !== 'ok') throw new Error(`autolabs backup failed: ${rec.error ?? a.stderr.slice(-2000)}`)
        const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(a.stderr)?.[1])
        results.push({who: mode, ms: a.ms, rawBytes: rec.details.uncompressedBytes, fileBytes: rec.files[0].bytes, rssKb})
        await rm(path.join(ws.backupsDir, json.manifest.id), {recursive: true, force: true})

        const b = await baseline(BASELINE[part])
        if (b.code !== 0) throw new Error(`baseline failed: ${b.stderr.slice(-2000)}`)
        results.push({who: `${part} baseline`, ms: b.ms, rawBytes: rec.details.uncompressedBytes, fileBytes: (await stat(baselineFile)).size})
      }
    }
    for (const r of results) console.log(`${r.who.padEnd(34)} ${(r.ms / 1000).toFixed(1)} s  ${rate(r.rawBytes, r.ms)}  ${mb(r.rawBytes)} → ${mb(r.fileBytes)}${r.rssKb ? `  peak RSS ${(r.rssKb / 1024).toFixed(0)} MiB` : ''}`)
    const best = (who: string) => results.filter((r) => r.who === who).sort((x, y) => x.ms - y.ms)[0]
    for (const part of ['postgres', 'basebackup']) {
      const B = best(`${part} baseline`)
      for (const where of ['local zstd', 'zstd on VM']) {
        const A = best(`${part} autolabs (${where})`)
        console.log(`RESULT ${part} autolabs (${where}): throughput ratio vs baseline = ${(B.ms / A.ms).toFixed(2)} (target ≥ 0.9); ${(A.ms / 1000).toFixed(1)} s vs ${(B.ms / 1000).toFixed(1)} s`)
      }
      const peak = Math.max(...results.filter((r) => r.rssKb && r.who.startsWith(part)).map((r) => r.rssKb!)) / 1024
      console.log(`RESULT ${part} autolabs peak RSS ${peak.toFixed(0)} MiB (target < 200 MB); ${mb(B.rawBytes)} raw (pgbench -s ${SCALE}, cluster ${size})`)
    }
  } finally {
    await lab.stop()
    await rm(ws.root, {recursive: true, force: true})
    await cli.remove()
  }
})
