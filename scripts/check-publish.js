#!/usr/bin/env node
// Run by `npm publish` (prepublishOnly): the package's repository, homepage and bugs fields are
// what `npm`, npx users and registries follow, so they must name where this code really lives —
// the checkout's `origin` remote — not an address nobody has created. Exit 1 with what to fix.
import {execFileSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

/** https://host/owner/name for the remote forms git accepts (https, ssh://, scp-like, git+). */
export function canonicalRepo(url) {
  if (!url) return undefined
  let u = url.trim().replace(/^git\+/, '')
  const scp = /^[\w.-]+@([\w.-]+):(.+)$/.exec(u)
  if (scp) u = `https://${scp[1]}/${scp[2]}`
  u = u.replace(/^(ssh|git):\/\/(?:[\w.-]+@)?/, 'https://').replace(/^http:\/\//, 'https://')
  return u.replace(/\.git$/, '').replace(/\/+$/, '').toLowerCase()
}

/** What is wrong with the package's links, given the `origin` URL (undefined: no remote). */
export function publishProblems(pkg, origin) {
  const repo = canonicalRepo(typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url)
  const home = canonicalRepo(origin)
  if (!home) return ['this checkout has no `origin` remote: push it to its public home first (git remote add origin <url>)']
  const out = []
  if (repo !== home) out.push(`package.json "repository" is ${pkg.repository?.url ?? pkg.repository ?? 'missing'}, but origin is ${origin}`)
  if (!String(pkg.homepage ?? '').toLowerCase().startsWith(home)) out.push(`package.json "homepage" (${pkg.homepage ?? 'missing'}) is not under ${home}`)
  if (!String(pkg.bugs?.url ?? '').toLowerCase().startsWith(home)) out.push(`package.json "bugs.url" (${pkg.bugs?.url ?? 'missing'}) is not under ${home}`)
  return out
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'))
  let origin
  try {
    origin = execFileSync('git', ['-C', root, 'remote', 'get-url', 'origin'], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore']}).trim()
  } catch {}
  const problems = publishProblems(pkg, origin)
  if (problems.length > 0) {
    console.error(`Refusing to publish: the package's links must lead to this code.\n${problems.map((p) => `  - ${p}`).join('\n')}\nSet "repository", "homepage" and "bugs" in package.json to the origin remote's address.`)
    process.exit(1)
  }
}
