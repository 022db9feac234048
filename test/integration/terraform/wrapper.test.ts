import {spawnSync} from 'node:child_process'
import {EventEmitter} from 'node:events'
import {chmod, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {ExternalError, InterruptedError, UserError} from '../../../src/errors.js'
import {compareVersions, Terraform} from '../../../src/terraform/terraform.js'
import {registerSecret} from '../../../src/util/redact.js'
import {missing} from '../../support/tools.js'

const SECRET = 'b1946ac9-2a6e-4d2f-8c1a-0e7f5d3c9a21'
registerSecret(SECRET)

const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => rm(d, {recursive: true, force: true}))))

/** A tiny stand-in executable: `script` is the body of a bash script. */
async function fakeBin(script: string): Promise<{bin: string; dir: string}> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-tfw-'))
  dirs.push(dir)
  const bin = path.join(dir, 'terraform')
  await writeFile(bin, `#!/usr/bin/env bash\nset -euo pipefail\n${script}\n`)
  await chmod(bin, 0o755)
  return {bin, dir}
}

describe('Terraform.version', () => {
  it('reports a missing binary as a user error with how to install Terraform', async () => {
    const tf = new Terraform({cwd: os.tmpdir(), logsDir: os.tmpdir(), bin: '/nonexistent/terraform'})
    const err = await tf.version().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UserError)
    expect((err as UserError).message).toMatch(/not found/)
    expect((err as UserError).suggestion).toMatch(/developer\.hashicorp\.com\/terraform\/install/)
  })

  it('refuses Terraform older than 1.5 and accepts 1.5.0 and newer', async () => {
    const old = await fakeBin(`printf 'Terraform v1.4.7\\non linux_amd64\\n'`)
    const err = await new Terraform({cwd: old.dir, logsDir: old.dir, bin: old.bin}).version().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UserError)
    expect((err as UserError).message).toBe(`Terraform 1.4.7 (\`${old.bin}\`) is too old: autolabs needs 1.5.0 or newer.`)
    const ok = await fakeBin(`printf 'Terraform v1.5.0\\non linux_amd64\\n'`)
    expect(await new Terraform({cwd: ok.dir, logsDir: ok.dir, bin: ok.bin}).version()).toEqual({bin: ok.bin, flavor: 'terraform', version: '1.5.0'})
    expect(compareVersions('1.11.4', '1.5.0')).toBeGreaterThan(0)
    expect(compareVersions('1.10.0-beta1', '1.9.9')).toBeGreaterThan(0)
  })
})

describe('Terraform runs', () => {
  it('turns a failed apply into an ExternalError with the diagnostics, the log path and what to do; the log is redacted', async () => {
    const {bin, dir} = await fakeBin(`
echo '{"@level":"info","@message":"Terraform 1.11.4","type":"version","terraform":"1.11.4","ui":"1.2"}'
echo '{"@level":"error","@message":"Error: 401 authentication failure","type":"diagnostic","diagnostic":{"severity":"error","summary":"authentication failure for token ${SECRET}","detail":"check the token"}}'
echo "stderr noise" >&2
exit 1`)
    const tf = new Terraform({cwd: dir, logsDir: path.join(dir, 'logs'), bin})
    const seen: string[] = []
    const err = await tf.apply('autolabs.tfplan', (e) => seen.push(e.type)).catch((e: unknown) => e)
    expect(seen).toEqual(['version', 'diagnostic'])
    expect(err).toBeInstanceOf(ExternalError)
    const e = err as ExternalError
    expect(e.message).toBe('terraform apply failed (exit 1).')
    expect(e.stderrTail).toBe('Error: authentication failure for token ********\n    check the token')
    expect(e.logPath).toBe(path.join(dir, 'logs', 'terraform-apply.log'))
    expect(e.suggestion).toMatch(/continues/)
    const log = await readFile(e.logPath!, 'utf8')
    expect(log).toContain('terraform apply -input=false -json autolabs.tfplan')
    expect(log).toContain('[stderr] stderr noise')
    expect(log).toContain('# exit 1')
    expect(log).not.toContain(SECRET)
  })

  it('forwards the first Ctrl+C once and waits for terraform to finish; a second one is forwarded again', async () => {
    // The stand-in counts SIGINTs: the first only sets a flag (like terraform's graceful stop).
    const {bin, dir} = await fakeBin(`
n=0
trap 'n=$((n+1)); echo "got SIGINT $n"; if [ $n -ge 2 ]; then exit 1; fi' INT
echo ready
for _ in $(seq 1 100); do sleep 0.05; done
echo "finished after $n"
exit 1`)
    const signals = new EventEmitter()
    const counts: number[] = []
    const tf = new Terraform({cwd: dir, logsDir: dir, bin, signals, onInterrupt: (n) => counts.push(n)})
    const run = tf.apply('p', (e) => void e)
    await new Promise((r) => setTimeout(r, 300))
    signals.emit('SIGINT')
    await new Promise((r) => setTimeout(r, 300))
    signals.emit('SIGINT')
    const err = await run.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InterruptedError)
    expect((err as Error).message).toMatch(/forced/)
    expect(counts).toEqual([1, 2])
    const log = await readFile(path.join(dir, 'terraform-apply.log'), 'utf8')
    expect(log).toContain('got SIGINT 1')
    expect(log).toContain('got SIGINT 2')
    expect(log).not.toContain('finished after')
    expect(signals.listenerCount('SIGINT')).toBe(0)
  })

  it('after one Ctrl+C lets terraform finish on its own and reports the interruption', async () => {
    const {bin, dir} = await fakeBin(`
trap 'echo stopping; stop=1' INT
stop=0
for _ in $(seq 1 40); do sleep 0.05; [ $stop = 1 ] && break; done
echo "state saved"
exit 1`)
    const signals = new EventEmitter()
    const tf = new Terraform({cwd: dir, logsDir: dir, bin, signals})
    const run = tf.apply('p')
    await new Promise((r) => setTimeout(r, 300))
    signals.emit('SIGINT')
    const err = await run.catch((e: unknown) => e)
    expect(err).toBeInstanceOf(InterruptedError)
    expect((err as Error).message).toMatch(/stopped after saving its state/)
    expect(await readFile(path.join(dir, 'terraform-apply.log'), 'utf8')).toContain('state saved')
  })
})

describe.skipIf(missing('terraform', spawnSync('terraform', ['version'], {stdio: 'ignore', env: {...process.env, CHECKPOINT_DISABLE: '1'}}).status === 0))('the real terraform binary (skipped: not on PATH)', () => {
  it('reports its version through `version -json` (CHECKPOINT_DISABLE keeps it offline)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-tfreal-'))
    dirs.push(dir)
    const {version} = await new Terraform({cwd: dir, logsDir: dir, bin: 'terraform'}).version()
    expect(compareVersions(version, '1.5.0')).toBeGreaterThanOrEqual(0)
  })
})
