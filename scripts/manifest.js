#!/usr/bin/env node
// Writes oclif.manifest.json after the build, so that `autolabs --help` and command lookup
// read one JSON file instead of importing every command module (lazy start-up).
import {Config} from '@oclif/core'
import {readFileSync, rmSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const manifestFile = path.join(root, 'oclif.manifest.json')
rmSync(manifestFile, {force: true}) // never read a stale manifest while building a new one
const {version} = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))
const config = await Config.load({root})
const commands = {}
for (const c of config.commands.filter((c) => c.pluginName === 'autolabs').sort((a, b) => a.id.localeCompare(b.id))) {
  const {load: _load, ...cached} = c
  commands[c.id] = cached
}
writeFileSync(manifestFile, JSON.stringify({commands, version}, null, 2) + '\n')
console.error(`oclif.manifest.json: ${Object.keys(commands).length} commands`)

// The root help, rendered by oclif itself, for bin/run.js to print without loading oclif.
const {execFileSync} = await import('node:child_process')
const help = execFileSync(process.execPath, [path.join(root, 'bin/run.js'), '--help'], {
  env: {...process.env, AUTOLABS_NO_HELP_CACHE: '1', COLUMNS: '80', NO_COLOR: '1'},
  encoding: 'utf8',
})
writeFileSync(path.join(root, 'dist/root-help.txt'), help)
