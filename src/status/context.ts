/**
 * What `status` and `backup` need from a workspace: the VMs (state.json from Terraform, else
 * autolabs.yaml), SSH sessions with pinned host keys, the Proxmox client when credentials
 * exist, and the service secrets. Loaded once per command.
 */
import {derived, loadConfig} from '../config/load.js'
import type {Config, Role} from '../config/schema.js'
import {ROLES} from '../config/schema.js'
import type {ProxmoxClient} from '../proxmox/client.js'
import type {SshAccess, SshAccessOptions} from '../ssh/access.js'
import type {SshSession} from '../ssh/session.js'
import {loadSecrets, type Secrets} from '../workspace/secrets.js'
import {loadState} from '../workspace/state.js'
import type {Workspace} from '../workspace/workspace.js'

export interface DayTwoVm {
  role: Role
  name: string
  vmid: number
  ip: string
}

export interface DayTwoContext {
  ws: Workspace
  config: Config
  secrets?: Secrets
  vms: DayTwoVm[]
  proxmox?: ProxmoxClient
  /** Opens a host-key-verified SSH session to a VM. */
  connect(role: Role, opts?: {readyTimeoutMs?: number}): Promise<SshSession>
  close(): Promise<void>
}

export async function openDayTwo(
  ws: Workspace,
  opts: {
    warn?: (m: string) => void
    proxmoxTimeoutMs?: number
    tokenSecretFile?: string
    withProxmox?: boolean
    /** Given by commands that connect: credentials and route are settled now (a prompt, a fast failure). */
    ssh?: SshAccessOptions & {
      /** A failure to settle them is each connection's error instead of the command's (status answers anyway). */
      perVmErrors?: boolean
    }
  } = {},
): Promise<DayTwoContext> {
  // The config is validated before the SSH and HTTP libraries are loaded: a bad workspace
  // answers at once.
  const {config, warnings} = await loadConfig(ws)
  for (const w of warnings) opts.warn?.(`${w.path}: ${w.message}`)
  const [{clientFromConfig, resolveAuth}, {connectSsh}, {openSshAccess}] = await Promise.all([
    import('../proxmox/connect.js'),
    import('../ssh/session.js'),
    import('../ssh/access.js'),
  ])
  const [state, secrets] = await Promise.all([loadState(ws), loadSecrets(ws)])
  const vms = ROLES.map((role) => ({
    role,
    name: state.vms?.[role]?.name ?? config.vms[role].name,
    vmid: state.vms?.[role]?.vmid ?? config.vms[role].vmid,
    ip: state.vms?.[role]?.ip ?? config.network.vms[role].ip,
  }))
  // One settlement per run, shared by every connection; without opts.ssh it happens on the
  // first connect and never prompts.
  let access: Promise<SshAccess> | undefined
  const sshAccess = () => (access ??= openSshAccess(config, ws, vms.map((v) => v.ip), {log: (m) => process.stderr.write(`${m}\n`), ...opts.ssh}))
  if (opts.ssh?.perVmErrors) await sshAccess().catch(() => undefined)
  else if (opts.ssh) await sshAccess()
  let proxmox: ProxmoxClient | undefined
  if (opts.withProxmox !== false) {
    const auth = await resolveAuth(config, {secrets, tokenSecretFile: opts.tokenSecretFile})
    if (auth) proxmox = await clientFromConfig(config, auth, {warn: opts.warn, timeoutMs: opts.proxmoxTimeoutMs})
  }
  const d = derived(config)
  return {
    ws,
    config,
    secrets,
    vms,
    proxmox,
    connect: async (role, o = {}) => {
      const vm = vms.find((v) => v.role === role)!
      const a = await sshAccess()
      return connectSsh(
        {name: vm.name, host: vm.ip, user: d.sshUser, privateKeyPath: a.auth.keyPath},
        {knownHostsFile: ws.knownHostsFile, readyTimeoutMs: o.readyTimeoutMs, logFile: ws.logFile(vm.name, 'ssh.log'), reconnect: {tries: 1, delayMs: 500}, ...a.connectOptions},
      )
    },
    close: async () => {
      await proxmox?.close()
      if (access) await (await access.catch(() => undefined))?.close()
    },
  }
}
