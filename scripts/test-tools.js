#!/usr/bin/env node
// Every tool the test suite runs for real, and where it comes from. Outside CI a test whose tool
// is missing skips with the reason; in CI (CI set) a missing tool is an error: .ci/run runs this
// before the tests, and vitest's global setup (test/support/ci-tools.ts) runs it again, so the
// suite stops with one line instead of turning checks off without anyone noticing.
//
//   node scripts/test-tools.js      prints the missing tools and exits 1, or exits 0
import {accessSync, constants} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

/** [what, executables (any one will do), how to install it]. */
export const TEST_TOOLS = [
  ['Terraform or OpenTofu', ['terraform', 'tofu'], 'https://developer.hashicorp.com/terraform/install (or OpenTofu: https://opentofu.org/docs/intro/install/)'],
  ['shellcheck', ['shellcheck'], 'apt-get install shellcheck'],
  ['cloud-init', ['cloud-init'], 'apt-get install cloud-init'],
  ['sshd', ['sshd'], 'apt-get install openssh-server'],
  ['ssh-keygen', ['ssh-keygen'], 'apt-get install openssh-client'],
  ['systemd-nspawn', ['systemd-nspawn'], 'apt-get install systemd-container'],
  ['debootstrap', ['debootstrap'], 'apt-get install debootstrap'],
  ['ip', ['ip'], 'apt-get install iproute2'],
  ['nsenter', ['nsenter'], 'apt-get install util-linux'],
  ['flock', ['flock'], 'apt-get install util-linux'],
  ['script', ['script'], 'apt-get install bsdutils'],
  ['apt-cacher-ng', ['apt-cacher-ng'], 'apt-get install apt-cacher-ng'],
  ['psql', ['psql'], 'apt-get install postgresql-client'],
  ['redis-cli', ['redis-cli'], 'apt-get install redis-tools'],
  ['openssl', ['openssl'], 'apt-get install openssl'],
  ['curl', ['curl'], 'apt-get install curl'],
  ['zstd', ['zstd'], 'apt-get install zstd'],
  ['python3', ['python3'], 'apt-get install python3'],
]

/** The executable's path when it is on PATH (sbin included: tests run sshd and ip from there). */
export function findExecutable(name, env = process.env) {
  const dirs = [...(env.PATH ?? '').split(path.delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']
  for (const dir of dirs.filter(Boolean)) {
    try {
      accessSync(path.join(dir, name), constants.X_OK)
      return path.join(dir, name)
    } catch {
      // not in this directory
    }
  }
  return undefined
}

/** One line per missing tool ("shellcheck (apt-get install shellcheck)"); lab tests also need root. */
export function missingTestTools(env = process.env) {
  const missing = TEST_TOOLS.filter(([, bins]) => !bins.some((b) => findExecutable(b, env))).map(([what, , how]) => `${what} (${how})`)
  if (process.platform === 'linux' && process.getuid?.() !== 0 && !env.AUTOLABS_SKIP_LAB) missing.push('root (the lab tests run systemd-nspawn; or set AUTOLABS_SKIP_LAB=1 to leave them out on purpose)')
  return missing
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const missing = missingTestTools()
  if (missing.length > 0) {
    console.error(`CI cannot run the tests: missing ${missing.join('; ')}.`)
    process.exit(1)
  }
}
