/**
 * Deploy benchmark on lab machines, through the real CLI (`node bin/run.js deploy --json`):
 *  1. re-run cost: the database VM's stages, first run vs second run (every step checks and
 *     finds its work done). Target: second ≤ 10% of first.
 *  2. concurrency: the base stage on two fresh VMs in one deploy vs one VM after the other.
 *     Target: concurrent wall time ≤ 0.6 of the sequential sum.
 * Run: npm run build && npx vitest run --config bench/deploy.config.ts   (needs root)
 */
import {it} from 'vitest'

import {labAvailable, startLab} from '../test/support/lab/lab.js'
import {labWorkspace, runDeploy, type DeployRun} from '../test/lab/deploy-support.js'

const avail = labAvailable()

function must(run: DeployRun, what: string, allowFailedIds: string[] = []): DeployRun {
  const bad = Object.values(run.json?.vms ?? {}).flatMap((vm) => vm.steps.filter((s) => s.status === 'failed' && !allowFailedIds.includes(s.id)))
  if (!run.json || bad.length > 0) throw new Error(`${what}: ${bad.map((s) => `${s.id}: ${s.error}`).join('; ') || run.stderr.slice(-2000)}`)
  return run
}
const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`

it.skipIf(!avail.ok)(`deploy benchmark${avail.ok ? '' : ` (skipped: ${avail.reason})`}`, async () => {
  const lab = await startLab({
    name: 'bench-deploy',
    subnet: 42,
    machines: [
      {name: 'seq-gitlab', ip: '10.99.42.10'},
      {name: 'seq-database', ip: '10.99.42.20'},
      {name: 'con-gitlab', ip: '10.99.42.11'},
      {name: 'con-database', ip: '10.99.42.21'},
    ],
    aptProxyInMachine: false,
  })
  try {
    const seq = (await labWorkspace(lab, {gitlab: '10.99.42.10', database: '10.99.42.20', k8s: '10.99.42.30'})).ws
    const con = (await labWorkspace(lab, {gitlab: '10.99.42.11', database: '10.99.42.21', k8s: '10.99.42.31'})).ws
    // Warm apt-cacher-ng so both measurements download from the same cache state.
    const warm = await lab.machine('seq-gitlab').exec(
      `echo 'Acquire::http::Proxy "${lab.aptProxy}";' > /etc/apt/apt.conf.d/99warm && apt-get update -qq && apt-get install -y -qq --download-only qemu-guest-agent ufw systemd-timesyncd postgresql-15 redis-server >/dev/null; rm -f /etc/apt/apt.conf.d/99warm; apt-get clean`,
      {timeoutMs: 600_000},
    )
    if (warm.code !== 0) throw new Error(`warming the apt cache failed: ${warm.stderr}`)

    // 2. concurrency: base on two VMs, one after the other vs in one deploy.
    const s1 = must(await runDeploy(seq, ['--only', 'gitlab,base']), 'sequential gitlab-vm')
    const s2 = must(await runDeploy(seq, ['--only', 'database,base']), 'sequential database-vm')
    const c = must(await runDeploy(con, ['--only', 'gitlab,database,base']), 'concurrent')
    const sequential = s1.ms + s2.ms

    // 1. re-run: the database VM's stages (base done above) first vs second run.
    const first = must(await runDeploy(seq, ['--only', 'database']), 'database first run', ['database/seaweedfs_install'])
    const second = must(await runDeploy(seq, ['--only', 'database']), 'database second run', ['database/seaweedfs_install'])
    const unchanged = second.json!.vms.database.steps.filter((s) => s.status === 'unchanged').length

    const lines = [
      'deploy benchmark (lab machines, real CLI, wall time per `autolabs deploy`)',
      `  database stages, first run:      ${sec(first.ms)}`,
      `  database stages, second run:     ${sec(second.ms)}  (${unchanged} steps unchanged)`,
      `  ratio second/first:              ${(second.ms / first.ms).toFixed(3)}  (target ≤ 0.10)`,
      `  base stage, two VMs sequential:  ${sec(sequential)}  (${sec(s1.ms)} + ${sec(s2.ms)})`,
      `  base stage, two VMs concurrent:  ${sec(c.ms)}`,
      `  ratio concurrent/sequential:     ${(c.ms / sequential).toFixed(3)}  (target ≤ 0.60)`,
    ]
    process.stdout.write(`\n${lines.join('\n')}\n\n`)
  } finally {
    await lab.stop()
  }
})
