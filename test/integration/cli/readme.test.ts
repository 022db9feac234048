import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, expect, it} from 'vitest'

import {ROOT} from '../../support/cli.js'

describe('the README', () => {
  it('has an up-to-date configuration reference (regenerate: node scripts/config-reference.js)', async () => {
    // @ts-expect-error plain JS script without types
    const {withReference} = await import('../../../scripts/config-reference.js')
    const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8')
    expect(withReference(readme)).toBe(readme)
  })
})
