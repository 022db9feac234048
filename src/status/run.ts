/** Wires collectStatus() to a workspace: Proxmox client, SSH sessions, HTTP. */
import {derived} from '../config/load.js'
import type {Role} from '../config/schema.js'
import {registerSecret} from '../util/redact.js'
import {collectStatus, type RemoteShell, type StatusDeps, type StatusPlan} from './collect.js'
import type {DayTwoContext} from './context.js'
import type {StatusReport} from './types.js'

export interface StatusOptions {
  connectTimeoutMs?: number
  checkTimeoutMs?: number
  roles?: Role[]
}

export function planFromContext(ctx: DayTwoContext, opts: StatusOptions = {}): StatusPlan {
  const {config, secrets} = ctx
  const postgresUsers: Record<string, string> = {}
  for (const db of config.services.postgres.databases) {
    const pw = secrets?.postgres.users[db]
    if (pw) postgresUsers[db] = pw
  }
  return {
    node: config.proxmox.node,
    vms: ctx.vms.filter((v) => !opts.roles || opts.roles.includes(v.role)),
    postgresUsers,
    redisPassword: secrets?.redis.password,
    objectStoragePort: config.services.objectStorage.port,
    registryPort: config.services.gitlab.registryPort,
    gitlabExternalUrl: derived(config).gitlabExternalUrl,
    gitlabPrivateCa: Boolean(config.services.gitlab.tls.caFile),
    namespaces: config.services.kubernetes.namespaces,
    connectTimeoutMs: opts.connectTimeoutMs,
    checkTimeoutMs: opts.checkTimeoutMs,
  }
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
    httpStatus: async (url, signal) => {
      const res = await fetch(url, {signal, redirect: 'manual'})
      await res.body?.cancel()
      return res.status
    },
  }
}

export async function statusOnce(ctx: DayTwoContext, opts: StatusOptions = {}): Promise<StatusReport> {
  const plan = planFromContext(ctx, opts)
  for (const pw of Object.values(plan.postgresUsers)) registerSecret(pw)
  if (plan.redisPassword) registerSecret(plan.redisPassword)
  return collectStatus(plan, depsFromContext(ctx, opts))
}
