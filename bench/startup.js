#!/usr/bin/env node
// Start-up benchmark: `autolabs --help`, `autolabs --version` and `init --dry-run --yes`
// against the baseline `node -e 0`, run alternately in this one process so machine noise hits
// all alike. Prints medians and ratios. Targets: --help/--version ≤ 2.5× node; dry run ≤ 1.5 s.
import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const bin = path.join(root, 'bin/run.js')
const rounds = Number(process.env.BENCH_ROUNDS ?? 15)
const work = mkdtempSync(path.join(os.tmpdir(), 'autolabs-bench-'))

const cases = {
  baseline: ['-e', '0'],
  help: [bin, '--help'],
  version: [bin, '--version'],
  dryRun: [bin, 'init', '--dry-run', '--yes', '--json', '--dir', work],
}
const times = Object.fromEntries(Object.keys(cases).map((k) => [k, []]))

function once(args) {
  const t = process.hrtime.bigint()
  const r = spawnSync(process.execPath, args, {stdio: ['ignore', 'ignore', 'pipe'], env: {...process.env, NO_COLOR: '1'}})
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status}: ${r.stderr}`)
  return Number(process.hrtime.bigint() - t) / 1e6
}

once(cases.help) // warm the file cache
for (let i = 0; i < rounds; i++) for (const [k, args] of Object.entries(cases)) times[k].push(once(args))
rmSync(work, {recursive: true, force: true})

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]
const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]))
const ratio = (k) => (m[k] / m.baseline).toFixed(2)
console.log(`rounds: ${rounds}`)
console.log(`node -e 0            ${m.baseline.toFixed(0)} ms`)
console.log(`autolabs --help      ${m.help.toFixed(0)} ms  ratio ${ratio('help')}x  (target <= 2.5x)`)
console.log(`autolabs --version   ${m.version.toFixed(0)} ms  ratio ${ratio('version')}x  (target <= 2.5x)`)
console.log(`init --dry-run --yes ${m.dryRun.toFixed(0)} ms  (target <= 1500 ms)  ratio ${ratio('dryRun')}x`)
