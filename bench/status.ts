/**
 * Status benchmark: `autolabs status --json` (the real CLI, process start included) against
 * three lab machines — database-vm with PostgreSQL and Redis, gitlab-vm and k8s-vm plain Debian
 * (their service checks fail fast: GitLab and Kubernetes cannot run here). Five runs; the median
 * and the worst count. Target: < 2 s wall.
 * Run: npm run build && npx vitest run --config bench/backup.config.ts bench/status.ts  (root)
 */
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import {rm} from 'node:fs/promises'
import path from 'node:path'
import {it} from 'vitest'

import {setupDatabase} from '../test/lab/backup-support.js'
import {labWorkspace, ROOT} from '../test/lab/deploy-support.js'
import {snapshotCli} from './cli-copy.js'
import {labAvailable, startLab} from '../test/support/lab/lab.js'

const avail = labAvailable()
const SUBNET = 48
const IP = {gitlab: `10.99.${SUBNET}.10`, database: `10.99.${SUBNET}.20`, k8s: `10.99.${SUBNET}.30`}

it.skipIf(!avail.ok || !existsSync(path.join(ROOT, 'dist/commands/status.js')))(`status benchmark${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, async () => {
  const cli = await snapshotCli()
  const BIN = cli.bin
  const lab = await startLab({
    name: 'bench-status',
    subnet: SUBNET,
    machines: [
      {name: 'gitlab-vm', ip: IP.gitlab},
      {name: 'database-vm', ip: IP.database},
      {name: 'k8s-vm', ip: IP.k8s},
    ],
  })
  const {ws, secrets} = await labWorkspace(lab, IP)
  try {
    await setupDatabase(lab.machine('database-vm'), secrets, {subnet: SUBNET})
    const times: number[] = []
    let last = ''
    for (let i = 0; i < 6; i++) {
      const t0 = Date.now()
      const r = await new Promise<{code: number; stdout: string}>((resolve) =>
        execFile('node', [BIN, 'status', '--json', '--dir', ws.root], {timeout: 60_000, env: {PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root'}}, (err, stdout) =>
          resolve({code: err ? Number((err as {code?: number}).code ?? -1) : 0, stdout: String(stdout)}),
        ),
      )
      // The first run records the host keys (trust on first use); it is not counted.
      if (i > 0) times.push(Date.now() - t0)
      last = r.stdout
      if (i === 0) {
        const rep = JSON.parse(r.stdout) as {summary: unknown; overall: string; checks: Array<{id: string; status: string; detail: string}>}
        console.log(`first run: exit ${r.code}, ${rep.overall}, ${JSON.stringify(rep.summary)}`)
        for (const c of rep.checks) console.log(`  ${c.id}: ${c.status} ${c.detail}`)
      }
    }
    times.sort((a, b) => a - b)
    const report = JSON.parse(last) as {durationMs: number}
    console.log(`RESULT status wall (CLI, process start included): median ${times[Math.floor(times.length / 2)]} ms, worst ${times.at(-1)} ms (target < 2000 ms); checks themselves ${report.durationMs} ms`)
  } finally {
    await lab.stop()
    await rm(ws.root, {recursive: true, force: true})
    await cli.remove()
  }
})
