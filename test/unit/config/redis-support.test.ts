import {describe, expect, it} from 'vitest'

import {VERSIONS} from '../../../src/config/catalog.js'
import {redisSupportFindings} from '../../../src/config/redis-support.js'
import {configSchema} from '../../../src/config/schema.js'
import {supportFindings} from '../../../src/config/support.js'
import {versionSupportCheck} from '../../../src/steps/preflight.js'

const day = (iso: string) => new Date(`${iso}T12:00:00Z`)
const withRedis = (version: string) => configSchema.parse({services: {redis: {version}}})

describe('services.redis.version against what redis.io supports', () => {
  it('the default is 7.2, dated: supported until 2029-12-01, warned about 90 days before', () => {
    expect(VERSIONS.redis).toBe('7.2')
    const defaults = configSchema.parse({})
    expect(redisSupportFindings(defaults)).toEqual([])
    expect(supportFindings(defaults, day('2029-06-01')).filter((f) => f.path === 'services.redis.version')).toEqual([])
    expect(supportFindings(defaults, day('2029-10-01')).find((f) => f.path === 'services.redis.version')).toMatchObject({version: '7.2', endOfSupport: '2029-12-01', state: 'ending'})
  })

  it("an older workspace's '7': preflight says it installs the distribution's 7.0 and names 7.2", () => {
    const c = versionSupportCheck(withRedis('7'), day('2026-12-01'))
    expect(c.status).toBe('warn')
    expect(c.detail).toContain(
      'services.redis.version 7 accepts any Redis 7, so Debian 12 and Ubuntu 24.04 install their own 7.0.15: Redis 7.0 is not among the versions redis.io supports (checked 2026-11-30); set 7.2 (supported until 2029-12-01, per https://redis.io/docs/latest/operate/oss_and_stack/install/version-mgmt/)',
    )
  })

  it('7.0 or a 7.0 patch is named as unsupported too; 7.2, 7.2.x and 7.4 are not', () => {
    for (const v of ['7.0', '7.0.15']) expect(redisSupportFindings(withRedis(v))).toEqual([expect.stringContaining(`services.redis.version ${v} is not among the versions redis.io supports`)])
    for (const v of ['7.2', '7.2.7', '7.4']) expect(redisSupportFindings(withRedis(v))).toEqual([])
  })
})
