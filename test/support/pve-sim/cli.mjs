#!/usr/bin/env node
// Run the simulator as its own process (for fake executables that must reach it over HTTPS):
//   node test/support/pve-sim/cli.mjs [--version 9.1|8.4] [--port 0] [--task-ms 20] [--info-file F]
// Prints one JSON line {url, fingerprint, version, tokenId, tokenSecret, rootPassword, pid} to
// stdout (and to --info-file, mode 0600), then serves until SIGTERM/SIGINT.
import {writeFileSync} from 'node:fs'
import {parseArgs} from 'node:util'

import {startPveSim} from './index.mjs'

const {values} = parseArgs({
  options: {
    version: {type: 'string', default: '9.1'},
    port: {type: 'string', default: '0'},
    'task-ms': {type: 'string', default: '20'},
    'auth-delay-ms': {type: 'string', default: '3000'},
    'info-file': {type: 'string'},
  },
})
const sim = await startPveSim({
  version: values.version,
  port: Number(values.port),
  taskDurationMs: Number(values['task-ms']),
  authFailureDelayMs: Number(values['auth-delay-ms']),
})
const info = {
  url: sim.url,
  fingerprint: sim.fingerprint,
  version: sim.pveVersion,
  tokenId: sim.adminTokenId,
  tokenSecret: sim.adminTokenSecret,
  rootPassword: sim.rootPassword,
  pid: process.pid,
}
if (values['info-file']) writeFileSync(values['info-file'], JSON.stringify(info) + '\n', {mode: 0o600})
process.stdout.write(JSON.stringify(info) + '\n')
const shutdown = async () => {
  const invalid = sim.invalidRequests
  if (invalid.length > 0) process.stderr.write(`pve-sim: ${invalid.length} invalid request(s):\n${JSON.stringify(invalid, null, 2)}\n`)
  await sim.stop()
  process.exit(invalid.length > 0 ? 3 : 0)
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
