import {mkdtempSync, readFileSync, existsSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, describe, expect, it} from 'vitest'

import {bashSync, sourceAndRun} from '../../support/bash.js'

// base.sh's apt_proxy step writes one line of apt.conf. The file it writes is read back by apt
// itself (`apt-config -c FILE dump`), so "nothing else got configured" is apt's own verdict.
const BASE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../assets/stages/base.sh')
const dir = mkdtempSync(path.join(tmpdir(), 'autolabs-apt-proxy-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))

function doAptProxy(proxy: string, name: string) {
  const file = path.join(dir, name)
  const r = sourceAndRun(BASE, 'do_apt_proxy', {
    env: {PATH: process.env.PATH ?? '/usr/bin:/bin', APT_PROXY: proxy, APT_PROXY_FILE: file, APT_TIMEOUTS_FILE: path.join(dir, `${name}.timeouts`), APT_TIMEOUT: '30'},
    timeoutMs: 15_000,
  })
  return {...r, file}
}

const aptDump = (file: string) => bashSync(['-c', 'apt-config -c "$1" dump | grep -v "^Acquire::\\(http\\|https\\)::Timeout\\|^Acquire::Retries"', 'x', file]).stdout

describe('base.sh apt_proxy', () => {
  it('writes a plain proxy URL as exactly one apt setting', () => {
    const r = doAptProxy('http://10.0.0.5:3142', 'ok.conf')
    expect(r.code, r.stderr).toBe(0)
    expect(readFileSync(r.file, 'utf8')).toBe('Acquire::http::Proxy "http://10.0.0.5:3142";\n')
    expect(aptDump(r.file)).toContain('Acquire::http::Proxy "http://10.0.0.5:3142";')
  })

  it.each([
    ['a quote that ends the string and adds a root hook', 'http://10.0.0.5:3142/";APT::Update::Pre-Invoke {"id";};//'],
    ['a newline and a second setting', 'http://10.0.0.5:3142\nAPT::Update::Pre-Invoke {"id";};'],
    ['a javascript: URL', 'javascript:alert(1)'],
    ['a file: URL', 'file:///etc/passwd'],
    ['credentials', 'http://user:pw@10.0.0.5:3142'],
  ])('refuses %s and writes nothing', (_what, proxy) => {
    const r = doAptProxy(proxy, `bad-${Math.random().toString(36).slice(2)}.conf`)
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain('AUTOLABS_ERROR APT_PROXY is not a plain http(s)://host[:port] URL')
    expect(existsSync(r.file)).toBe(false)
  })
})
