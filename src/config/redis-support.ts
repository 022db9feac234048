import type {Config} from './schema.js'
import {SUPPORT_CHECKED} from './support.js'

/** redis.io's list of supported Redis Open Source versions and their end-of-life dates. */
export const REDIS_SUPPORT_SOURCE = 'https://redis.io/docs/latest/operate/oss_and_stack/install/version-mgmt/'

/**
 * A services.redis.version that installs Redis 7.0, which redis.io no longer lists as supported
 * (7.2 and 7.4 are, until 2029-12-01). The database stage takes the distribution's redis-server
 * when its version matches: '7' (the default before 7.2) matches the 7.0.15 of Debian 12 and
 * Ubuntu 24.04. No dated row in SUPPORT: redis.io names no end date for 7.0, it just left the
 * list. Workspaces are not migrated (that would upgrade a running Redis unasked): preflight
 * says what to set. Pure.
 */
export function redisSupportFindings(config: Config): string[] {
  const v = config.services.redis.version
  const fix = `set 7.2 (supported until 2029-12-01, per ${REDIS_SUPPORT_SOURCE})`
  if (v === '7') {
    return [`services.redis.version 7 accepts any Redis 7, so Debian 12 and Ubuntu 24.04 install their own 7.0.15: Redis 7.0 is not among the versions redis.io supports (checked ${SUPPORT_CHECKED}); ${fix}`]
  }
  if (/^7\.0(\.\d+)?$/.test(v)) return [`services.redis.version ${v} is not among the versions redis.io supports (checked ${SUPPORT_CHECKED}); ${fix}`]
  return []
}
