/**
 * Setup file of the lab project (vitest.config.ts): when a lab test fails, print what the
 * machines' systemd and sshd said while they still run — the lab and its journals are gone after
 * afterAll, and a CI log is all there is to read afterwards.
 */
import {beforeEach} from 'vitest'

import {diagnoseActiveLabs} from './lab.js'

beforeEach(({onTestFailed}) => {
  onTestFailed(async () => {
    const text = await diagnoseActiveLabs().catch((e: unknown) => `lab diagnosis failed: ${String(e)}`)
    if (text) console.log(`lab machines at the failure:\n${text}`)
  })
})
