import {spawnSync} from 'node:child_process'
import {existsSync, readdirSync, readFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {describe, expect, it} from 'vitest'

import {sourceAndRun} from '../../support/bash.js'
import {missing} from '../../support/tools.js'

const STAGES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../assets/stages')
const scripts = [
  ...readdirSync(STAGES).filter((f) => f.endsWith('.sh')),
  ...readdirSync(path.join(STAGES, 'lib')).map((f) => `lib/${f}`),
]
const shellcheck = ['/usr/bin/shellcheck', '/bin/shellcheck'].find((p) => existsSync(p))

describe.skipIf(missing('shellcheck', Boolean(shellcheck)))(`stage scripts pass shellcheck${shellcheck ? '' : ' (skipped: apt-get install shellcheck)'}`, () => {
  it.each(scripts)('%s is shellcheck-clean (all severities, sourced files followed)', (script) => {
    const r = spawnSync(shellcheck!, ['-x', '--severity=style', script], {cwd: STAGES, encoding: 'utf8', timeout: 60_000})
    expect(r.stdout + r.stderr).toBe('')
    expect(r.status).toBe(0)
  })
})

describe('stage scripts follow the stage contract', () => {
  it.each(scripts.filter((s) => !s.startsWith('lib/')))('%s uses strict mode through lib/common.sh and runs only when executed', (script) => {
    const text = readFileSync(path.join(STAGES, script), 'utf8')
    expect(text).toMatch(/^source "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)\/lib\/common\.sh"$/m)
    expect(text).toMatch(/^if \[\[ \$\{BASH_SOURCE\[0\]\} == "\$0" \]\]; then stage_main "\$@"; fi$/m)
  })
  it('lib/common.sh sets -Eeuo pipefail, traps failing commands and turns tracing off', () => {
    const text = readFileSync(path.join(STAGES, 'lib/common.sh'), 'utf8')
    expect(text).toMatch(/^set -Eeuo pipefail$/m)
    expect(text).toMatch(/^trap .*AUTOLABS_ERROR.* ERR$/m)
    expect(text).toMatch(/^set \+x/m)
  })
  it('every step of the catalog has a check_ and a do_ function in its script', async () => {
    const {STAGES: catalog} = await import('../../../src/steps/stages.js')
    for (const stage of catalog) {
      const names = sourceAndRun(path.join(STAGES, stage.script), 'declare -F | awk "{print \\$3}"').stdout.split('\n')
      for (const step of stage.steps) {
        expect(names, `${stage.script}: check_${step.id}`).toContain(`check_${step.id}`)
        expect(names, `${stage.script}: do_${step.id}`).toContain(`do_${step.id}`)
      }
    }
  })
})
