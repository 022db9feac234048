import type {Config} from './schema.js'

/**
 * When each pinned version stops being supported upstream, with the page that says so. Dates
 * are ISO days (end of the day, UTC). `preflight` warns when a pin in autolabs.yaml is past its
 * end of support, or within WARN_DAYS of it; docs/versions.md shows the same table.
 * Update the table together with the pins in catalog.ts (and the date it was checked).
 */
export interface SupportWindow {
  /** The autolabs.yaml field. */
  path: string
  /** What the field holds for this row (a Kubernetes minor, a major, an exact tag). */
  version: string
  /** 'minor': the row covers every patch of `version` (a major.minor), e.g. GitLab 19.6.x. */
  match?: 'minor'
  /** Warn this many days ahead instead of WARN_DAYS (a publisher with a shorter cycle). */
  warnDays?: number
  /** Last day of upstream fixes; null when the publisher names none (then no warning). */
  endOfSupport: string | null
  /** The publisher's page (or tag) the date comes from. */
  source: string
  note?: string
}

/** Checked 2026-11-30. */
export const SUPPORT_CHECKED = '2026-11-30'

export const SUPPORT: SupportWindow[] = [
  // Kubernetes: ~14 months per minor (12 of patch releases, 2 of maintenance), ending on the 28th.
  {path: 'services.kubernetes.version', version: '1.33', endOfSupport: '2026-06-28', source: 'https://kubernetes.io/releases/patch-releases/'},
  {path: 'services.kubernetes.version', version: '1.34', endOfSupport: '2026-10-27', source: 'https://kubernetes.io/releases/patch-releases/'},
  {path: 'services.kubernetes.version', version: '1.35', endOfSupport: '2027-02-28', source: 'https://kubernetes.io/releases/patch-releases/', note: 'maintenance mode from 2026-12-28'},
  {path: 'services.kubernetes.version', version: '1.36', endOfSupport: '2027-06-28', source: 'https://kubernetes.io/releases/patch-releases/', note: 'maintenance mode from 2027-04-28'},
  {path: 'services.kubernetes.version', version: '1.37', endOfSupport: '2027-10-28', source: 'https://kubernetes.io/releases/patch-releases/', note: 'maintenance mode from 2027-08-28; no pinned add-on is tested with it yet'},
  // GitLab: security fixes for the current minor and the two before it; a minor ships on the
  // third Thursday of each month, so 19.6 (2026-11-19) leaves support when 19.9 ships. A minor
  // lives about three months by policy: warn 30 days ahead, not 90 (that would be always).
  {path: 'services.gitlab.version', version: '19.6', match: 'minor', endOfSupport: '2027-02-18', warnDays: 30, source: 'https://docs.gitlab.com/policy/maintenance/', note: '19.9 expected on 2027-02-18 (third Thursday)'},
  // The Runner: "the last three releases are supported" (gitlab-runner PROCESS.md), in step with GitLab.
  {path: 'services.gitlab.runnerVersion', version: '19.6', match: 'minor', endOfSupport: '2027-02-18', warnDays: 30, source: 'https://docs.gitlab.com/runner/#gitlab-runner-versions'},
  // PostgreSQL: five years per major.
  {path: 'services.postgres.version', version: '15', endOfSupport: '2027-11-11', source: 'https://www.postgresql.org/support/versioning/'},
  {path: 'services.postgres.version', version: '16', endOfSupport: '2028-11-09', source: 'https://www.postgresql.org/support/versioning/'},
  {path: 'services.postgres.version', version: '17', endOfSupport: '2029-11-08', source: 'https://www.postgresql.org/support/versioning/'},
  {path: 'services.redis.version', version: '7.2', endOfSupport: '2029-12-01', source: 'https://redis.io/docs/latest/operate/oss_and_stack/install/version-mgmt/'},
]

/** Warn this many days before a pin's end of support. */
export const WARN_DAYS = 90

export interface SupportFinding {
  path: string
  version: string
  endOfSupport: string
  source: string
  /** 'ended': past end of support; 'ending': within WARN_DAYS (or the row's warnDays). */
  state: 'ended' | 'ending'
  daysLeft: number
}

function valueAt(config: Config, path: string): string {
  let v: unknown = config
  for (const k of path.split('.')) v = (v as Record<string, unknown>)[k]
  return String(v)
}

/** The pins in `config` that are past (or near) their end of support on `now`. Pure. */
export function supportFindings(config: Config, now: Date, table: SupportWindow[] = SUPPORT): SupportFinding[] {
  const out: SupportFinding[] = []
  for (const row of table) {
    const value = valueAt(config, row.path)
    if (!row.endOfSupport || (row.match === 'minor' ? value.split('.').slice(0, 2).join('.') : value) !== row.version) continue
    const end = Date.parse(`${row.endOfSupport}T23:59:59Z`)
    const daysLeft = Math.floor((end - now.getTime()) / 86_400_000)
    if (daysLeft < 0) out.push({path: row.path, version: value, endOfSupport: row.endOfSupport, source: row.source, state: 'ended', daysLeft})
    else if (daysLeft <= (row.warnDays ?? WARN_DAYS)) out.push({path: row.path, version: value, endOfSupport: row.endOfSupport, source: row.source, state: 'ending', daysLeft})
  }
  return out
}

/** Kubernetes minors an add-on release is tested against by its publisher. */
export const TESTED_WITH: Array<{path: string; version: string; kubernetes: [string, string]; source: string}> = [
  {path: 'services.kubernetes.calicoVersion', version: 'v3.32.1', kubernetes: ['1.34', '1.36'], source: 'https://docs.tigera.io/calico/3.32/getting-started/kubernetes/requirements'},
  {path: 'services.kubernetes.ingressVersion', version: '5.2.1', kubernetes: ['1.27', '1.34'], source: 'https://docs.nginx.com/nginx-ingress-controller/technical-specifications/'},
  {path: 'services.kubernetes.ingressVersion', version: '5.5.4', kubernetes: ['1.29', '1.36'], source: 'https://docs.nginx.com/nginx-ingress-controller/changelog/#554'},
]

/** Add-on pins whose publisher did not test them with the pinned Kubernetes minor. Pure. */
export function compatibilityFindings(config: Config): string[] {
  const minor = (v: string) => Number(v.split('.')[1])
  const k = config.services.kubernetes.version
  return TESTED_WITH.filter((t) => valueAt(config, t.path) === t.version && (minor(k) < minor(t.kubernetes[0]) || minor(k) > minor(t.kubernetes[1]))).map(
    (t) => `${t.path} ${t.version} is tested with Kubernetes ${t.kubernetes[0]}–${t.kubernetes[1]}, not ${k}, per ${t.source}`,
  )
}
