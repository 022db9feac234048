import {spawnSync} from 'node:child_process'

import {test} from 'vitest'

import {findExecutable} from '../../scripts/test-tools.js'

/** The real Terraform-compatible binary the tests run: `terraform`, else `tofu`, else undefined. */
export const REAL_TERRAFORM = ['terraform', 'tofu'].find((b) => spawnSync(b, ['version'], {stdio: 'ignore', env: {...process.env, CHECKPOINT_DISABLE: '1'}}).status === 0)

export {findExecutable}

/**
 * For describe.skipIf / it.skipIf: true (skip) when the tool is missing, so a developer without
 * it still runs the rest. Under CI a missing tool is not a skip: one test that fails with the
 * reason is registered in its place, so the run is red instead of quietly smaller.
 */
export function missing(tool: string, available: boolean): boolean {
  if (available) return false
  if (process.env.CI) {
    test(`${tool} is installed (CI runs every test)`, () => {
      throw new Error(`${tool} is missing: CI must install it (see .ci/run and scripts/test-tools.js).`)
    })
  }
  return true
}
