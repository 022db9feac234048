import {readFileSync} from 'node:fs'

import {describe, expect, it} from 'vitest'

import {VERSIONS} from '../../../src/config/catalog.js'
import {configSchema} from '../../../src/config/schema.js'
import {compatibilityFindings, SUPPORT, SUPPORT_CHECKED, supportFindings} from '../../../src/config/support.js'
import {runPreflight, versionSupportCheck} from '../../../src/steps/preflight.js'

const day = (iso: string) => new Date(`${iso}T12:00:00Z`)
const defaults = configSchema.parse({})

describe('pinned versions against their end of support (fixed clock)', () => {
  it('passes while every pin is supported for more than 90 days and tested with the Kubernetes minor', () => {
    const tested = configSchema.parse({services: {kubernetes: {version: '1.34'}}})
    expect(supportFindings(tested, day('2026-06-01'))).toEqual([])
    expect(versionSupportCheck(tested, day('2026-06-01'))).toMatchObject({status: 'pass'})
  })

  it('chose the defaults so that each is supported for six months from the day the table was checked (GitLab: as long as its policy gives a minor)', () => {
    const sixMonths = new Date(Date.parse(`${SUPPORT_CHECKED}T12:00:00Z`) + 182 * 86_400_000)
    const findings = supportFindings(defaults, sixMonths).filter((f) => f.state === 'ended')
    // GitLab supports a minor for about three months (the current and the two before): no pin
    // can last six; docs/versions.md says so and preflight warns 30 days ahead.
    expect(findings.filter((f) => !f.path.startsWith('services.gitlab.'))).toEqual([])
    expect(findings.map((f) => `${f.path} ${f.version} ${f.endOfSupport}`)).toEqual(['services.gitlab.version 19.6.0-ce.0 2027-02-18', 'services.gitlab.runnerVersion 19.6.0 2027-02-18'])
    // And on the day itself nothing warns: every default is tested with the default Kubernetes minor.
    expect(versionSupportCheck(defaults, day(SUPPORT_CHECKED))).toMatchObject({status: 'pass'})
    expect(compatibilityFindings(defaults)).toEqual([])
  })

  it('warns when an add-on release is not tested by its publisher with the pinned Kubernetes minor', () => {
    const oldIngress = configSchema.parse({services: {kubernetes: {ingressVersion: '5.2.1'}}})
    expect(compatibilityFindings(oldIngress)).toEqual([
      `services.kubernetes.ingressVersion 5.2.1 is tested with Kubernetes 1.27–1.34, not ${VERSIONS.kubernetes}, per https://docs.nginx.com/nginx-ingress-controller/technical-specifications/`,
    ])
    expect(versionSupportCheck(oldIngress, day(SUPPORT_CHECKED)).status).toBe('warn')
    const newer = compatibilityFindings(configSchema.parse({services: {kubernetes: {version: '1.37'}}}))
    expect(newer).toHaveLength(2)
    expect(newer.join('\n')).toMatch(/calicoVersion v3\.32\.1 is tested with Kubernetes 1\.34–1\.36, not 1\.37[\s\S]*ingressVersion 5\.5\.4 is tested with Kubernetes 1\.29–1\.36, not 1\.37/)
  })

  it('warns 90 days ahead: Kubernetes 1.36 ends on 2027-06-28', () => {
    const c = versionSupportCheck(defaults, day('2027-04-14'))
    expect(c).toMatchObject({id: 'version-support', status: 'warn'})
    expect(c.detail).toContain('services.kubernetes.version 1.36 reaches its end of support on 2027-06-28 (in 75 days), per https://kubernetes.io/releases/patch-releases/')
  })

  it('warns 30 days ahead for GitLab, whose minors live three months, and covers every patch of the minor', () => {
    const patched = configSchema.parse({services: {gitlab: {version: '19.6.4-ce.0', runnerVersion: '19.6.2'}}})
    expect(supportFindings(patched, day('2027-01-18'))).toEqual([])
    const c = versionSupportCheck(patched, day('2027-01-20'))
    expect(c.detail).toContain('services.gitlab.version 19.6.4-ce.0 reaches its end of support on 2027-02-18 (in 29 days), per https://docs.gitlab.com/policy/maintenance/')
    expect(c.detail).toContain('services.gitlab.runnerVersion 19.6.2 reaches its end of support on 2027-02-18')
    expect(supportFindings(configSchema.parse({services: {gitlab: {version: '19.7.1-ce.0', runnerVersion: '19.7.1'}}}), day('2027-02-20'))).toEqual([])
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
    const r = await runPreflight({client: null, config: defaults, terraformBin: '/nonexistent', sshPublicKeyPath: '/nonexistent', now: day('2027-07-01')})
    expect(r.checks.find((c) => c.id === 'version-support')).toMatchObject({status: 'warn', detail: expect.stringContaining('1.36 is past its end of support (2027-06-28)')})
  })

  it('has a row, with its source, for every default pin it dates, and docs/versions.md shows each', () => {
    const doc = readFileSync(new URL('../../../docs/versions.md', import.meta.url), 'utf8')
    for (const row of SUPPORT) {
      expect(row.source).toMatch(/^https:\/\//)
      if (row.endOfSupport) expect(doc, `${row.path} ${row.version}`).toContain(`| ${row.match === 'minor' ? `${row.version}.x` : row.version} | ${row.endOfSupport} |`)
      expect(doc).toContain(row.source)
    }
    expect(SUPPORT.some((r) => r.path === 'services.kubernetes.version' && r.version === VERSIONS.kubernetes)).toBe(true)
    expect(SUPPORT.some((r) => r.path === 'services.postgres.version' && r.version === String(VERSIONS.postgres))).toBe(true)
  })
})
