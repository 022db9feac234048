// vitest global setup: in CI (CI set) the suite stops at once, with one line, when a tool the
// tests run is missing; elsewhere the tests that need it skip with the reason in their title,
// and this says so once at the start.
import {missingTestTools} from '../../scripts/test-tools.js'

export default function setup(): void {
  const missing = missingTestTools()
  if (missing.length === 0) return
  if (process.env.CI) {
    process.stderr.write(`CI cannot run the tests: missing ${missing.join('; ')}.\n`)
    process.exit(1)
  }
  process.stderr.write(`Tests that need these will skip (they fail when CI is set): ${missing.join('; ')}.\n`)
}
