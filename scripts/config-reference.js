#!/usr/bin/env node
// Regenerates the README's configuration reference from the schema's defaults and FIELD_DOCS
// (run after `npm run build`). A test fails when the README is out of date.
import {readFileSync, writeFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const {configSchema} = await import(path.join(root, 'dist/config/schema.js'))
const {FIELD_DOCS} = await import(path.join(root, 'dist/config/docs.js'))

export function configReference() {
  const rows = ['| key | default | meaning |', '|---|---|---|']
  const walk = (o, p) => {
    for (const [k, v] of Object.entries(o)) {
      const key = p ? `${p}.${k}` : k
      // An empty map (e.g. services.postgres.users) is a setting of its own, not a section.
      if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) walk(v, key)
      else rows.push(`| \`${key}\` | \`${JSON.stringify(v)}\` | ${(FIELD_DOCS[key] ?? '').replaceAll('|', '\\|')} |`)
    }
  }
  walk(configSchema.parse({}), '')
  return rows.join('\n')
}

const START = '<!-- config-reference:start -->'
const END = '<!-- config-reference:end -->'
export function withReference(readme) {
  const a = readme.indexOf(START)
  const b = readme.indexOf(END)
  return readme.slice(0, a + START.length) + '\n' + configReference() + '\n' + readme.slice(b)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = path.join(root, 'README.md')
  writeFileSync(file, withReference(readFileSync(file, 'utf8')))
  console.error('README.md: configuration reference updated')
}
