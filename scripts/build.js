#!/usr/bin/env node
// Build into a fresh directory, then swap it in: a CLI started (by a test, or a second shell)
// while tsc runs keeps using the previous complete dist/ instead of a half-deleted one.
import {execFileSync} from 'node:child_process'
import {existsSync, renameSync, rmSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const next = path.join(root, `.dist-${process.pid}`)
const old = path.join(root, `.dist-old-${process.pid}`)
try {
  execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', next], {cwd: root, stdio: 'inherit'})
} catch {
  rmSync(next, {recursive: true, force: true})
  process.exit(1)
}
const dist = path.join(root, 'dist')
if (existsSync(dist)) renameSync(dist, old)
renameSync(next, dist)
rmSync(old, {recursive: true, force: true})
execFileSync(process.execPath, [path.join(root, 'scripts/manifest.js')], {cwd: root, stdio: 'inherit'})
