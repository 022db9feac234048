import {readFileSync} from 'node:fs'

import {describe, expect, it} from 'vitest'

import {VERSIONS} from '../../../src/config/catalog.js'
import {configSchema} from '../../../src/config/schema.js'
import {compatibilityFindings, SUPPORT, supportFindings} from '../../../src/config/support.js'
import {runPreflight, versionSupportCheck} from '../../../src/steps/preflight.js'

const day = (iso: string) => new Date(`${iso}T12:00:00Z`)
const defaults = configSchema.parse({})

describe('pinned versions against their end of support (fixed clock)', () => {
  it('passes while every pin is supported for more than 90 days and tested with the Kubernetes minor', () => {
    const tested = configSchema.parse({services: {kubernetes: {version: '1.34'}}})
    expect(supportFindings(tested, day('2026-06-01'))).toEqual([])
    expect(versionSupportCheck(tested, day('2026-06-01'))).toMatchObject({status: 'pass'})
  })

  it('warns that the ingress controller release is not tested by F5 with the default Kubernetes minor', () => {
    expect(compatibilityFindings(defaults)).toEqual([
      'services.kubernetes.ingressVersion 5.2.1 is tested with Kubernetes 1.25–1.34, not 1.35, per https://docs.nginx.com/nginx-ingress-controller/technical-specifications/',
    ])
    expect(versionSupportCheck(defaults, day('2026-06-01')).status).toBe('warn')
  })

  it('warns 90 days ahead: Kubernetes 1.35 ends on 2027-02-28', () => {
    const c = versionSupportCheck(defaults, day('2026-12-15'))
    expect(c).toMatchObject({id: 'version-support', status: 'warn'})
    expect(c.detail).toContain('services.kubernetes.version 1.35 reaches its end of support on 2027-02-28 (in 75 days), per https://kubernetes.io/releases/patch-releases/')
  })

  it('warns that a pin is past its end of support, naming the field, the date and the source', () => {
    const old = configSchema.parse({services: {kubernetes: {version: '1.34'}, postgres: {version: 15}}})
    const c = versionSupportCheck(old, day('2027-12-01'))
    expect(c.status).toBe('warn')
    expect(c.detail).toContain('services.kubernetes.version 1.34 is past its end of support (2026-10-27), per https://kubernetes.io/releases/patch-releases/')
    expect(c.detail).toContain('services.postgres.version 15 is past its end of support (2027-11-11), per https://www.postgresql.org/support/versioning/')
    expect(c.fix).toContain('docs/versions.md')
  })

  it('is one of the checks preflight runs (it is never a failure)', async () => {
    const r = await runPreflight({client: null, config: defaults, terraformBin: '/nonexistent', sshPublicKeyPath: '/nonexistent', now: day('2027-03-01')})
    expect(r.checks.find((c) => c.id === 'version-support')).toMatchObject({status: 'warn', detail: expect.stringContaining('is past its end of support (2027-02-28)')})
  })

  it('has a row, with its source, for every default pin it dates, and docs/versions.md shows each', () => {
    const doc = readFileSync(new URL('../../../docs/versions.md', import.meta.url), 'utf8')
    for (const row of SUPPORT) {
      expect(row.source).toMatch(/^https:\/\//)
      if (row.endOfSupport) expect(doc, `${row.path} ${row.version}`).toContain(`| ${row.version} | ${row.endOfSupport} |`)
      expect(doc).toContain(row.source)
    }
    expect(SUPPORT.some((r) => r.path === 'services.kubernetes.version' && r.version === VERSIONS.kubernetes)).toBe(true)
    expect(SUPPORT.some((r) => r.path === 'services.postgres.version' && r.version === String(VERSIONS.postgres))).toBe(true)
  })
})
