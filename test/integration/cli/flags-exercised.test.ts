import {readdirSync, readFileSync, statSync} from 'node:fs'
import path from 'node:path'

import {describe, expect, it} from 'vitest'

import {ROOT} from '../../support/cli.js'

/**
 * Every flag a user can pass is passed by at least one test (by name, or by its AUTOLABS_* env
 * name): a flag that exists only in the contract snapshot has no test of its effect. The global
 * flags (--dir, --verbose, --json, --help, --[no-]color) are passed everywhere.
 */
// A flag a test cannot pass yet goes here, with why: the guard then names it until a test does.
const NOT_YET = new Set<string>([])

function testFiles(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = path.join(dir, e)
    if (statSync(p).isDirectory()) testFiles(p, out)
    else if (/\.(ts|mjs)$/.test(e) && !/contract|flags-exercised/.test(e)) out.push(p)
  }
  return out
}

describe('flags exercised by tests', () => {
  it('passes every command flag in at least one test', () => {
    const contract = JSON.parse(readFileSync(path.join(ROOT, 'test/integration/cli/__snapshots__/contract.json'), 'utf8')) as Array<{id: string; flags: Record<string, {env: string | null}>}>
    const files = testFiles(path.join(ROOT, 'test')).map((f) => readFileSync(f, 'utf8'))
    const flags = contract.flatMap((c) => Object.entries(c.flags).map(([name, f]) => ({id: `${c.id.replaceAll(':', ' ')} --${name}`, word: c.id.split(':').at(-1)!, name, env: f.env})))
    expect(flags.length).toBeGreaterThan(50)
    // The flag in a test file that runs its command (the command's name as a word in quotes), or its env name.
    const passed = (f: (typeof flags)[number]) =>
      files.some(
        (t) =>
          (new RegExp(`(^|[\\s'"\`])--${f.name}(?=[\\s'"\`=]|$)`, 'm').test(t) && new RegExp(`['"\`]${f.word}['"\` ]`).test(t)) || (f.env !== null && new RegExp(`\\b${f.env}\\b`).test(t)),
      )
    const untested = flags
      .filter((f) => !['dir', 'verbose', 'json', 'help', 'color'].includes(f.name))
      .filter((f) => !passed(f))
      .map((f) => f.id)
    expect(untested).toEqual([...NOT_YET])
  })
})
