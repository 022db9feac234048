/** Wires collectStatus() to a workspace: Proxmox client, SSH sessions, HTTP. */
import {readFileSync} from 'node:fs'

import {derived} from '../config/load.js'
import {postgresUser, type Role} from '../config/schema.js'
import {registerSecret} from '../util/redact.js'
import {tlsPath} from '../config/tls.js'
import {networkPolicyNames} from '../render/network-policies.js'
import {VM_BASE_DIR, WAL_ARCHIVE_DIR} from '../backup/pitr-remote.js'
import {collectStatus, type RemoteShell, type StatusDeps, type StatusPlan, type TlsPeer} from './collect.js'
import type {DayTwoContext} from './context.js'
import type {StatusReport} from './types.js'

export interface StatusOptions {
  connectTimeoutMs?: number
  checkTimeoutMs?: number
  roles?: Role[]
}

export function planFromContext(ctx: DayTwoContext, opts: StatusOptions = {}): StatusPlan {
  const {config, secrets} = ctx
  const postgresUsers: StatusPlan['postgresUsers'] = {}
  for (const db of config.services.postgres.databases) {
    const pw = secrets?.postgres.users[db]
    if (pw) postgresUsers[db] = {user: postgresUser(config, db), password: pw}
  }
  const gitlabExternalUrl = derived(config).gitlabExternalUrl
  return {
    node: config.proxmox.node,
    vms: ctx.vms.filter((v) => !opts.roles || opts.roles.includes(v.role)),
    postgresUsers,
    redisPassword: secrets?.redis.password,
    objectStoragePort: config.services.objectStorage.port,
    registryPort: config.services.gitlab.registryPort,
    gitlabExternalUrl,
    gitlabPrivateCa: Boolean(config.services.gitlab.tls.caFile),
    gitlabTls: gitlabTlsTarget(ctx, gitlabExternalUrl),
    namespaces: config.services.kubernetes.namespaces,
    networkPolicies: networkPolicyNames(config),
    walArchive: config.services.postgres.walArchiving ? {archiveDir: WAL_ARCHIVE_DIR, baseDir: VM_BASE_DIR} : undefined,
    connectTimeoutMs: opts.connectTimeoutMs,
    checkTimeoutMs: opts.checkTimeoutMs,
  }
}

/** What the certificate check connects to: the URL's host name and port, and the private CA. */
function gitlabTlsTarget(ctx: DayTwoContext, url: string): StatusPlan['gitlabTls'] {
  if (!url.startsWith('https://')) return undefined
  const u = new URL(url)
  const caFile = ctx.config.services.gitlab.tls.caFile
  let ca: string | undefined
  if (caFile) {
    try {
      ca = readFileSync(tlsPath(ctx.ws.root, caFile), 'utf8')
    } catch {
      // Unreadable here: the system's CAs decide, and the check says the certificate is not trusted.
    }
  }
  return {servername: u.hostname, port: Number(u.port || 443), ca}
}

export function depsFromContext(ctx: DayTwoContext, opts: StatusOptions = {}): StatusDeps {
  const connectMs = opts.connectTimeoutMs ?? 3000
  return {
    vmStatus: ctx.proxmox ? (node, vmid) => ctx.proxmox!.vmStatus(node, vmid) : undefined,
    connect: async (vm, signal) => {
      const pending = ctx.connect(vm.role, {readyTimeoutMs: connectMs})
      // A connect that finishes after its deadline must not leak a session.
      signal.addEventListener('abort', () => void pending.then((s) => s.close()).catch(() => undefined), {once: true})
      const s = await pending
      const shell: RemoteShell = {
        exec: (cmd, o) => s.exec(cmd, {stdin: o.stdin, timeoutMs: o.timeoutMs, label: cmd.split('\n')[0].slice(0, 60)}),
        close: () => s.close(),
      }
      return shell
    },
    tlsPeer: async (q, signal) => {
      const tls = await import('node:tls')
      return new Promise<TlsPeer>((resolve, reject) => {
        // Verification is decided after the handshake (authorized / authorizationError), so that
        // an untrusted or expired certificate is reported with its dates instead of a bare error;
        // no data is sent over this connection.
        const socket = tls.connect({host: q.host, port: q.port, servername: q.servername, ca: q.ca, rejectUnauthorized: false}, () => {
          const cert = socket.getPeerCertificate()
          socket.destroy()
          if (!cert?.valid_to) return reject(new Error('the server sent no certificate'))
          resolve({validTo: new Date(cert.valid_to), authorized: socket.authorized, authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined})
        })
        socket.on('error', reject)
        signal.addEventListener('abort', () => socket.destroy(new Error('aborted')), {once: true})
      })
    },
    httpStatus: async (url, signal) => {
      const res = await fetch(url, {signal, redirect: 'manual'})
      await res.body?.cancel()
      return res.status
    },
  }
}

export async function statusOnce(ctx: DayTwoContext, opts: StatusOptions = {}): Promise<StatusReport> {
  const plan = planFromContext(ctx, opts)
  if (plan.walArchive) plan.walArchive.localBase = await newestLocalBaseTime(ctx.ws.backupsDir)
  for (const {password} of Object.values(plan.postgresUsers)) registerSecret(password)
  if (plan.redisPassword) registerSecret(plan.redisPassword)
  return collectStatus(plan, depsFromContext(ctx, opts))
}

/** The newest base backup in backups/ (when it became consistent), read from the manifests only. */
async function newestLocalBaseTime(backupsDir: string): Promise<Date | undefined> {
  const {newestLocalBase} = await import('../backup/pitr.js')
  const b = await newestLocalBase(backupsDir).catch(() => undefined)
  return b?.consistentAt
}
