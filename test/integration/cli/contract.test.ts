import {Config} from '@oclif/core'
import {describe, expect, it} from 'vitest'

import {ROOT} from '../../support/cli.js'

/**
 * The command-line contract: every command's flags (type, env name, options, default) and
 * args. A breaking change to the CLI shows up as a diff of this snapshot.
 */
describe('the command-line contract', () => {
  it('matches the committed snapshot of every command, flag and env name', async () => {
    const config = await Config.load({root: ROOT})
    const contract = config.commands
      .filter((c) => c.pluginName === 'autolabs')
      .sort((a, b) => a.id.localeCompare(b.id))
      .map((c) => ({
        id: c.id,
        args: Object.fromEntries(Object.entries(c.args ?? {}).map(([k, a]) => [k, {required: Boolean(a.required), options: a.options ?? null}])),
        flags: Object.fromEntries(
          Object.entries(c.flags ?? {})
            .sort(([a], [b]) => a.localeCompare(b))
            .map(([k, f]) => [
              k,
              {
                type: f.type,
                char: f.char ?? null,
                env: 'env' in f ? (f.env ?? null) : null,
                options: 'options' in f ? (f.options ?? null) : null,
                multiple: 'multiple' in f ? Boolean(f.multiple) : false,
                required: Boolean(f.required),
              },
            ]),
        ),
      }))
    await expect(JSON.stringify(contract, null, 2) + '\n').toMatchFileSnapshot('./__snapshots__/contract.json')
  })

  it('gives every flag but --json and --dry-run an AUTOLABS_* environment name', async () => {
    const config = await Config.load({root: ROOT})
    const missing: string[] = []
    for (const c of config.commands.filter((c) => c.pluginName === 'autolabs'))
      for (const [name, f] of Object.entries(c.flags ?? {}))
        if (!['json', 'dry-run', 'help'].includes(name) && !('env' in f && f.env?.startsWith('AUTOLABS_'))) missing.push(`${c.id} --${name}`)
    expect(missing).toEqual([])
  })
})
