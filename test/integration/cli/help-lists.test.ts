import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {ROOT, runCli} from '../../support/cli.js'

/**
 * Help keeps its lists: a description line that starts with spaces (a list item, a column)
 * reaches the 80-column help exactly as written, never re-wrapped into its neighbour.
 */
describe('command help at 80 columns', async () => {
  const manifest = JSON.parse(await readFile(path.join(ROOT, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, {description?: string}>}
  const withLists = Object.entries(manifest.commands).filter(([, c]) => /\n {2}\S/.test(c.description ?? '') || /^ {2}\S/.test(c.description ?? ''))

  it('has commands with lists to check', () => {
    expect(withLists.map(([id]) => id)).toEqual(expect.arrayContaining(['backup:now', 'backup:restore']))
  })

  it.each(withLists)('%s --help keeps every indented line intact', async (id, c) => {
    const r = await runCli([...id.split(':'), '--help'], {env: {COLUMNS: '80'}})
    expect(r.exitCode).toBe(0)
    const shown = r.stdout.split('\n').map((l) => l.replace(/^ {2}/, ''))
    for (const line of (c.description ?? '').split('\n').filter((l) => /^ {2}\S/.test(l) || /^ {4,}\S/.test(l))) expect(shown, line).toContain(line)
  })
})
