/**
 * What status runs on the VMs, and how it reads the answers. Pure: commands out, text in,
 * verdicts out — unit-tested without any VM.
 *
 * Secrets travel on the remote command's stdin and become environment variables there
 * (`read -r`), never argv: `ps` on the VM and sshd's logs never see them.
 */
import {formatBytes} from '../backup/list.js'
import type {CheckStatus} from './types.js'

export const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`

/** `df -P /` → used % of the root filesystem. */
export const DISK_CMD = 'df -P / | tail -n 1'
export function parseDf(out: string): number | undefined {
  // Filesystem 1024-blocks Used Available Capacity Mounted-on
  const f = out.trim().split(/\s+/)
  if (f.length < 6) return undefined
  const used = Number(f[2])
  const avail = Number(f[3])
  if (!Number.isFinite(used) || !Number.isFinite(avail) || used + avail === 0) return undefined
  return (used / (used + avail)) * 100
}

/** Log in as the database's own user over TCP to the VM's address (role, password, pg_hba, listener). */
export function pgLoginCmd(ip: string, user: string, db: string): {cmd: string; stdin: (pw: string) => string} {
  return {
    cmd: `IFS= read -r PGPASSWORD && export PGPASSWORD && PGCONNECT_TIMEOUT=5 psql -X -q -w -h ${q(ip)} -U ${q(user)} -d ${q(db)} -tAc 'SELECT 1'`,
    stdin: (pw) => `${pw}\n`,
  }
}
export function parsePgLogin(code: number, stdout: string, stderr: string): {status: CheckStatus; detail: string} {
  if (code === 0 && stdout.trim() === '1') return {status: 'ok', detail: 'login accepted'}
  if (code === 127 || /psql: (command )?not found/.test(stderr)) return {status: 'fail', detail: 'psql is not installed on the VM'}
  return {status: 'fail', detail: lastLine(stderr) || `psql exited ${code}`}
}

/** PING with AUTH: REDISCLI_AUTH from stdin (redis-cli's -a would put it on argv). */
export function redisPingCmd(ip: string, port = 6379): {cmd: string; stdin: (pw: string) => string} {
  return {
    cmd: `IFS= read -r REDISCLI_AUTH && export REDISCLI_AUTH && timeout 5 redis-cli --no-auth-warning -h ${q(ip)} -p ${port} PING`,
    stdin: (pw) => `${pw}\n`,
  }
}
export function parseRedisPing(code: number, stdout: string, stderr: string): {status: CheckStatus; detail: string} {
  const out = stdout.trim()
  if (code === 0 && out === 'PONG') return {status: 'ok', detail: 'PONG with AUTH'}
  if (/NOAUTH|WRONGPASS|invalid password/i.test(out + stderr)) return {status: 'fail', detail: `authentication refused: ${lastLine(out || stderr)}`}
  return {status: 'fail', detail: lastLine(out || stderr) || `redis-cli exited ${code}`}
}

export const GITLAB_CA_IN_CONTAINER = '/etc/gitlab/trusted-certs/autolabs-ca.crt'

/**
 * GitLab's readiness, asked from inside its container: /-/readiness answers only the
 * monitoring whitelist (127.0.0.0/8 and ::1 by default), on the port nginx listens on, which is
 * the external URL's. Over HTTPS the request keeps the URL's host name (--resolve) so the
 * certificate is checked as clients check it. The same request the gitlab stage waits on.
 */
export function gitlabReadyCmd(externalUrl: string, opts: {privateCa?: boolean} = {}): string {
  const u = new URL(externalUrl)
  const https = u.protocol === 'https:'
  const port = u.port || (https ? '443' : '80')
  // services.gitlab.tls.caFile: the gitlab stage put that CA here (gitlab.sh TLS_CA).
  const ca = https && opts.privateCa ? `--cacert ${GITLAB_CA_IN_CONTAINER} ` : ''
  const target = https ? `${ca}--resolve ${q(`${u.hostname}:${port}:127.0.0.1`)} ${q(`https://${u.hostname}:${port}/-/readiness`)}` : q(`http://127.0.0.1:${port}/-/readiness`)
  return `sudo -n docker exec gitlab curl -sS --max-time 5 ${target}`
}
/** Ready when the top-level "status" is "ok" (each check inside has its own "status"). */
export function parseGitlabReadiness(code: number, stdout: string, stderr: string): {status: CheckStatus; detail: string} {
  let top: unknown
  try {
    top = (JSON.parse(stdout) as {status?: unknown}).status
  } catch {
    top = undefined
  }
  if (code === 0 && top === 'ok') return {status: 'ok', detail: 'ready'}
  if (/No such container|is not running/.test(stderr)) return {status: 'fail', detail: lastLine(stderr)}
  if (typeof top === 'string') return {status: 'fail', detail: `not ready: status "${top}"`}
  return {status: 'fail', detail: lastLine(stdout) || lastLine(stderr) || `exit ${code}`}
}

/** The runner asks GitLab whether its token is valid: the runner is installed, configured and GitLab sees it. */
export const RUNNER_VERIFY_CMD = 'sudo -n timeout 10 gitlab-runner verify 2>&1'
export function parseRunnerVerify(code: number, stdout: string): {status: CheckStatus; detail: string} {
  if (code === 0 && /is (valid|alive)/.test(stdout) && !/is not valid|ERROR/.test(stdout)) return {status: 'ok', detail: 'runner verified by GitLab'}
  return {status: 'fail', detail: lastLine(stdout) || `gitlab-runner verify exited ${code}`}
}

/** One kubectl call for nodes, namespaces, pods and NetworkPolicies: one round trip, one consistent view. */
export const KUBE_CMD = 'sudo -n kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=5s get nodes,namespaces,pods,networkpolicies -A -o json'

interface K8sItem {
  kind?: string
  metadata?: {name?: string; namespace?: string; labels?: Record<string, string>}
  status?: {
    phase?: string
    conditions?: Array<{type?: string; status?: string}>
    containerStatuses?: Array<{ready?: boolean; name?: string; state?: {waiting?: {reason?: string}}}>
  }
}

export interface KubeVerdicts {
  node: {status: CheckStatus; detail: string}
  systemPods: {status: CheckStatus; detail: string}
  ingress: {status: CheckStatus; detail: string}
  namespaces: {status: CheckStatus; detail: string}
  networkPolicies: {status: CheckStatus; detail: string}
}

/**
 * `wantPolicies`: "namespace/name" of the NetworkPolicies autolabs applies (src/render/
 * network-policies.ts); one missing fails, one autolabs made that the config no longer names warns.
 */
export function parseKube(code: number, stdout: string, stderr: string, wantNamespaces: string[], ingressNamespace = 'ingress-nginx', wantPolicies: string[] = []): KubeVerdicts {
  let items: K8sItem[]
  try {
    if (code !== 0) throw new Error(lastLine(stderr) || `kubectl exited ${code}`)
    items = (JSON.parse(stdout) as {items?: K8sItem[]}).items ?? []
  } catch (error) {
    const v = {status: 'fail' as CheckStatus, detail: `kubectl: ${(error as Error).message}`}
    return {node: v, systemPods: v, ingress: v, namespaces: v, networkPolicies: v}
  }
  const nodes = items.filter((i) => i.kind === 'Node')
  const notReady = nodes.filter((n) => n.status?.conditions?.find((c) => c.type === 'Ready')?.status !== 'True')
  const node =
    nodes.length === 0
      ? {status: 'fail' as CheckStatus, detail: 'no nodes registered'}
      : notReady.length > 0
        ? {status: 'fail' as CheckStatus, detail: `not Ready: ${notReady.map((n) => n.metadata?.name).join(', ')}`}
        : {status: 'ok' as CheckStatus, detail: `${nodes.length} node${nodes.length > 1 ? 's' : ''} Ready`}

  const pods = items.filter((i) => i.kind === 'Pod')
  const podVerdict = (ns: string, label: string) => {
    const inNs = pods.filter((p) => p.metadata?.namespace === ns && p.status?.phase !== 'Succeeded')
    if (inNs.length === 0) return {status: 'fail' as CheckStatus, detail: `no ${label} pods in ${ns}`}
    const bad = inNs.filter((p) => p.status?.phase !== 'Running' || (p.status?.containerStatuses ?? []).some((c) => !c.ready))
    if (bad.length > 0) {
      const why = (p: K8sItem) => p.status?.containerStatuses?.find((c) => c.state?.waiting?.reason)?.state?.waiting?.reason ?? p.status?.phase ?? '?'
      return {status: 'fail' as CheckStatus, detail: `${bad.length}/${inNs.length} not ready: ${bad.slice(0, 3).map((p) => `${p.metadata?.name} (${why(p)})`).join(', ')}`}
    }
    return {status: 'ok' as CheckStatus, detail: `${inNs.length}/${inNs.length} running`}
  }

  const present = new Set(items.filter((i) => i.kind === 'Namespace').map((n) => n.metadata?.name))
  const missing = wantNamespaces.filter((n) => !present.has(n))
  const policies = new Set(
    items
      .filter((i) => i.kind === 'NetworkPolicy' && i.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'autolabs')
      .map((p) => `${p.metadata?.namespace}/${p.metadata?.name}`),
  )
  const policiesMissing = wantPolicies.filter((p) => !policies.has(p))
  const stale = [...policies].filter((p) => !wantPolicies.includes(p))
  const inNamespaces = new Set(wantPolicies.map((p) => p.split('/')[0])).size
  const networkPolicies: {status: CheckStatus; detail: string} =
    policiesMissing.length > 0
      ? {status: 'fail', detail: `missing: ${policiesMissing.join(', ')} (autolabs deploy --only k8s applies them)`}
      : stale.length > 0
        ? {status: 'warn', detail: `not in autolabs.yaml any more: ${stale.join(', ')}`}
        : {status: 'ok', detail: `${wantPolicies.length} applied in ${inNamespaces} namespace${inNamespaces === 1 ? '' : 's'}`}
  return {
    node,
    systemPods: podVerdict('kube-system', 'system'),
    ingress: podVerdict(ingressNamespace, 'ingress controller'),
    namespaces: missing.length > 0 ? {status: 'fail', detail: `missing: ${missing.join(', ')}`} : {status: 'ok', detail: `${wantNamespaces.length} present`},
    networkPolicies,
  }
}

/** HTTP verdicts (the admin workstation → the VM, over TCP, as the platform's clients see it). */
export function httpVerdict(status: number, okStatuses: number[]): {status: CheckStatus; detail: string} {
  return okStatuses.includes(status) ? {status: 'ok', detail: `HTTP ${status}`} : {status: 'fail', detail: `HTTP ${status} (expected ${okStatuses.join('/')})`}
}

function lastLine(s: string): string {
  const lines = s.trim().split('\n').filter((l) => l.trim())
  return (lines.at(-1) ?? '').trim().slice(0, 200)
}

/**
 * The WAL archive on database-vm, in one round trip: its size and segment count, the newest
 * segment's time, the filesystem it lives on, the newest base backup the VM took itself, and
 * pg_stat_archiver. Folders are those of the database stage and of assets/vm/autolabs-pg-base.sh.
 */
export function walArchiveCmd(archive: string, baseDir: string): string {
  const script = `set -u
a=${q(archive)}; b=${q(baseDir)}
seg='.*/[0-9A-F]{24}'
if [ -d "$a" ]; then
  echo "archive $(du -sb "$a" | cut -f1) $(find "$a" -maxdepth 1 -type f -regextype posix-extended -regex "$seg" | wc -l) $(find "$a" -maxdepth 1 -type f -regextype posix-extended -regex "$seg" -printf '%T@\\n' | sort -n | tail -n 1 | cut -d. -f1)"
  echo "df $(df -P "$a" | tail -n 1 | awk '{print $3, $4}')"
else
  echo "archive none"
fi
echo "now $(date +%s)"
echo "base $(find "$b" -maxdepth 1 -type f -name '*.tar.*' -printf '%f\\n' 2>/dev/null | sed -n 's/^\\([0-9]\\{8\\}-[0-9]\\{6\\}\\)\\.tar\\..*/\\1/p' | sort | tail -n 1)"
cd / && runuser -u postgres -- psql -X -At -F ' ' -c "SELECT 'archiver', current_setting('archive_mode'), archived_count, failed_count, coalesce(extract(epoch FROM last_archived_time)::bigint, 0), coalesce(extract(epoch FROM last_failed_time)::bigint, 0), coalesce(last_failed_wal, '-') FROM pg_stat_archiver"`
  return `sudo -n bash -c ${q(script)}`
}

export interface WalArchiveFacts {
  bytes?: number
  segments?: number
  newestSegmentAgeSec?: number
  freeDiskPct?: number
  /** The newest base backup database-vm took itself (its timer). */
  vmBaseAgeSec?: number
  /** The newest base backup on the workstation (backups/). */
  localBaseAgeSec?: number
  archiveMode?: string
  failedCount?: number
  lastFailedWal?: string
}

/**
 * Warns (the issue and the design document ask for attention, not paging) when the archiver
 * fails, when the archive's disk nears the free-disk threshold (within 5 points), and when no
 * recent base backup exists (the archive is then neither replayable from a recent point nor pruned).
 */
export function parseWalArchive(code: number, stdout: string, stderr: string, opts: {freeDiskPct: number; localBase?: Date; now: Date}): {status: CheckStatus; detail: string; facts: WalArchiveFacts} {
  const line = (k: string) => new RegExp(`^${k} ?(.*)$`, 'm').exec(stdout)?.[1]?.trim().split(/\s+/).filter(Boolean)
  const arc = line('archive')
  const archiver = line('archiver')
  const now = Number(line('now')?.[0] ?? Math.floor(opts.now.getTime() / 1000))
  if (code !== 0 || !arc || !archiver) return {status: 'fail', detail: lastLine(stderr) || lastLine(stdout) || `exit ${code}`, facts: {}}
  const facts: WalArchiveFacts = {archiveMode: archiver[0], failedCount: Number(archiver[2])}
  const [lastArchived, lastFailed] = [Number(archiver[3]), Number(archiver[4])]
  const failedWal = archiver[5]
  if (arc[0] !== 'none') {
    facts.bytes = Number(arc[0])
    facts.segments = Number(arc[1])
    if (arc[2]) facts.newestSegmentAgeSec = Math.max(0, now - Number(arc[2]))
  }
  const df = line('df')
  if (df && df.length === 2 && Number(df[0]) + Number(df[1]) > 0) facts.freeDiskPct = Math.round((Number(df[1]) / (Number(df[0]) + Number(df[1]))) * 1000) / 10
  const vmBase = line('base')?.[0]
  if (vmBase) facts.vmBaseAgeSec = Math.max(0, now - Date.UTC(+vmBase.slice(0, 4), +vmBase.slice(4, 6) - 1, +vmBase.slice(6, 8), +vmBase.slice(9, 11), +vmBase.slice(11, 13), +vmBase.slice(13, 15)) / 1000)
  if (opts.localBase) facts.localBaseAgeSec = Math.max(0, Math.round((opts.now.getTime() - opts.localBase.getTime()) / 1000))
  if (lastFailed > lastArchived) facts.lastFailedWal = failedWal

  const parts = [
    arc[0] === 'none' ? 'no archive folder' : `archive ${formatBytes(facts.bytes!)} (${facts.segments} segments), newest ${facts.newestSegmentAgeSec === undefined ? 'none' : `${fmtAge(facts.newestSegmentAgeSec)} ago`}`,
    `base backup ${facts.vmBaseAgeSec === undefined ? 'none' : `${fmtAge(facts.vmBaseAgeSec)} ago`} on the VM, ${facts.localBaseAgeSec === undefined ? 'none' : `${fmtAge(facts.localBaseAgeSec)} ago`} here`,
  ]
  if (facts.freeDiskPct !== undefined) parts.push(`disk ${facts.freeDiskPct} % free`)
  const warn: string[] = []
  if (facts.archiveMode !== 'on' && facts.archiveMode !== 'always') warn.push(`archive_mode is ${facts.archiveMode}: no point-in-time recovery (autolabs deploy switches it on)`)
  if (facts.lastFailedWal) warn.push(`archiving FAILS: ${failedWal} not archived since ${new Date(lastFailed * 1000).toISOString()} (${facts.failedCount} failures; pg_stat_archiver, server log)`)
  if (facts.freeDiskPct !== undefined && facts.freeDiskPct < opts.freeDiskPct + 5) warn.push(`archive disk ${facts.freeDiskPct} % free, near the ${opts.freeDiskPct} % threshold`)
  if (facts.vmBaseAgeSec === undefined) warn.push('no base backup on the VM: the archive is not pruned (`autolabs backup schedule` installs the daily one)')
  else if (facts.vmBaseAgeSec > 2 * 86_400) warn.push(`the VM's newest base backup is ${fmtAge(facts.vmBaseAgeSec)} old (is autolabs-pg-base.timer running?)`)
  return warn.length > 0 ? {status: 'warn', detail: `${warn.join('; ')} — ${parts.join('; ')}`, facts} : {status: 'ok', detail: parts.join('; '), facts}
}

function fmtAge(sec: number): string {
  if (sec < 90) return `${Math.round(sec)} s`
  if (sec < 90 * 60) return `${Math.round(sec / 60)} min`
  if (sec < 48 * 3600) return `${Math.round(sec / 3600)} h`
  return `${Math.round(sec / 86_400)} d`
}

