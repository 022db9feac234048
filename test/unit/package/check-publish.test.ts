import {execFileSync, spawnSync} from 'node:child_process'
import {copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, describe, expect, it} from 'vitest'

import {canonicalRepo, publishProblems} from '../../../scripts/check-publish.js'

const pkg = JSON.parse(readFileSync('package.json', 'utf8'))

describe('npm publish refuses links that do not lead to this code (scripts/check-publish.js)', () => {
  it('reads every remote form git accepts as one address', () => {
    const forms = ['git@github.com:Org/Repo.git', 'ssh://git@github.com/org/repo.git', 'git+https://github.com/org/repo.git', 'https://github.com/org/repo/', 'http://github.com/org/repo']
    expect(new Set(forms.map(canonicalRepo))).toEqual(new Set(['https://github.com/org/repo']))
  })

  it('names every field that differs from the origin remote, and asks for a remote when there is none', () => {
    expect(publishProblems(pkg, undefined)).toEqual([expect.stringContaining('no `origin` remote')])
    const other = publishProblems(pkg, 'git@gitlab.example.edu:teaching/autolabs.git')
    expect(other).toHaveLength(3)
    expect(other.join('\n')).toMatch(/"repository".*"homepage".*"bugs.url"/s)
    const home = canonicalRepo(pkg.repository.url)!
    expect(publishProblems(pkg, `${home}.git`)).toEqual([])
  })

  const dirs: string[] = []
  afterAll(() => dirs.forEach((d) => rmSync(d, {recursive: true, force: true})))
  const checkout = (origin?: string) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'autolabs-publish-'))
    dirs.push(dir)
    mkdirSync(path.join(dir, 'scripts'))
    copyFileSync('scripts/check-publish.js', path.join(dir, 'scripts/check-publish.js'))
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg))
    execFileSync('git', ['init', '-q', dir])
    if (origin) execFileSync('git', ['-C', dir, 'remote', 'add', 'origin', origin])
    return spawnSync(process.execPath, [path.join(dir, 'scripts/check-publish.js')], {encoding: 'utf8'})
  }

  it('stops the publish with exit 1 and the fix in a checkout without a remote or with another one; passes with its own', () => {
    expect(pkg.scripts.prepublishOnly).toBe('node scripts/check-publish.js')
    const none = checkout()
    expect(none.status).toBe(1)
    expect(none.stderr).toMatch(/Refusing to publish[\s\S]*git remote add origin/)
    expect(checkout('https://git.example.edu/other/autolabs.git').status).toBe(1)
    expect(checkout(pkg.repository.url.replace(/^git\+/, ''))).toMatchObject({status: 0, stderr: ''})
  })
})
