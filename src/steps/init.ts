import {existsSync} from 'node:fs'

import {GUEST_OS, IMAGES} from '../config/catalog.js'
import {derived, expandHome, readRawConfig, renderConfigYaml, validateConfig} from '../config/load.js'
import {type Config, configSchema, type ConfigInput, ROLES} from '../config/schema.js'
import {crossFieldIssues, zodIssuesToFieldIssues} from '../config/validate.js'
import {ConfigError, type FieldIssue, UsageError} from '../errors.js'
import {ask, type AskContext} from '../prompts/ask.js'
import {registerSecret} from '../util/redact.js'
import {freeRange, gatewayDefault, vmIpDefault} from '../config/defaults.js'
import {normalizeProxmoxUrl, parseMemory} from '../config/input.js'
import {cidrContains} from '../config/net.js'
import {checkpoint} from '../util/interrupt.js'
import {ensureDir, READ_LIMITS, readTextFile, writeFilesTogether} from '../workspace/fs.js'
import {completeSecrets, generateSecrets, loadSecrets, registerSecrets, type Secrets, secretsText} from '../workspace/secrets.js'
import type {Workspace} from '../workspace/workspace.js'
import {buildPlan, type Plan} from './plan.js'
import {refuseForeignFiles} from './foreign-files.js'
import {clearDraft, draftFile, loadDraft, saveDraft} from './init-draft.js'
import {workspaceFiles} from './render-workspace.js'

/** Flags of `autolabs init` that answer questions (all optional). */
export interface InitAnswersFlags {
  name?: string
  proxmoxUrl?: string
  proxmoxNode?: string
  proxmoxAuth?: 'token' | 'password'
  proxmoxTokenId?: string
  proxmoxTokenSecretFile?: string
  proxmoxUsername?: string
  proxmoxPasswordFile?: string
  proxmoxFingerprint?: string
  proxmoxCaFile?: string
  insecure?: boolean
  vmStorage?: string
  imageStorage?: string
  bridge?: string
  subnet?: string
  gateway?: string
  gitlabIp?: string
  databaseIp?: string
  k8sIp?: string
  dns?: string[]
  sshPublicKey?: string
  os?: string
  k8sCores?: number
  k8sMemory?: string
  aptProxy?: string
}

function setIn(obj: Record<string, any>, path: string, value: unknown): void {
  const parts = path.split('.')
  let cur = obj
  for (const p of parts.slice(0, -1)) cur = cur[p] ??= {}
  cur[parts.at(-1)!] = value
}

function getIn(obj: unknown, path: string): any {
  return path.split('.').reduce((o: any, k) => (o == null ? undefined : o[k]), obj)
}

/** The issue at `path` or inside it (a list's item: network.dns[1]). */
const at = (path: string) => (i: FieldIssue) => i.path === path || i.path.startsWith(`${path}[`) || i.path.startsWith(`${path}.`)

/**
 * A prompt-time validator for one field: the config's own rules (schema and cross-field), at
 * that path, with this field counted as the one given (so a clash blames it, not a default).
 */
function fieldValidator(path: string, base: () => Record<string, unknown>, derive: (candidate: Record<string, unknown>, path: string) => void = () => {}) {
  return (value: unknown): string | true => {
    const candidate = structuredClone(base())
    setIn(candidate, path, value)
    derive(candidate, path)
    const parsed = configSchema.safeParse(candidate)
    let issues: FieldIssue[]
    if (parsed.success) issues = crossFieldIssues(parsed.data, new Set([path])).filter((i) => i.severity !== 'warning')
    else issues = zodIssuesToFieldIssues(configSchema, parsed.error.issues)
    const hit = issues.find(at(path))
    const item = /^\[(\d+)\]/.exec(hit?.path.slice(path.length) ?? '')
    return hit ? `${item ? `item ${Number(item[1]) + 1}: ` : hit.path === path ? '' : `${hit.path}: `}${hit.message}${hit.fix ? ` (${hit.fix})` : ''}` : true
  }
}

async function readSecretFile(file: string, flag: string): Promise<string> {
  const v = (await readTextFile(expandHome(file), {what: flag, maxBytes: READ_LIMITS.secretFile, usage: true}))!.trim()
  if (!v) throw new UsageError(`${flag} ${file} is empty.`, {suggestion: 'Put the secret on the first line of the file.'})
  registerSecret(v)
  return v
}

/** What the wizard offers from the Proxmox API in a real run (see init-run.ts). */
export interface DiscoveryPort {
  nodes: Array<{name: string; description?: string}>
  load(node: string): Promise<{
    defaults: {vmStorage?: string; imageStorage?: string; bridge?: string}
    vmStorages: Array<{name: string; value: string; description?: string}>
    imageStorages: Array<{name: string; value: string; description?: string}>
    bridges: Array<{name: string; value: string; description?: string}>
  }>
}

export interface CollectedAnswers {
  input: ConfigInput
  /** Admin credentials given now (not yet stored). */
  credentials: {tokenSecret?: string; password?: string}
  /** The paths the user gave (flag, environment, prompt) and the flag of every question. */
  given: Set<string>
  flags: Record<string, string>
}

const memoryText = (mib: number | undefined) => (mib === undefined ? undefined : mib % 1024 === 0 ? `${mib / 1024}G` : String(mib))

/**
 * The wizard: every question, with defaults from the design document that follow earlier
 * answers. `needCredentials` is false for --dry-run (nothing is contacted, so no secret is
 * asked for). `progress` is filled as answers come, so a caller can keep them if a later step
 * fails or the user presses Ctrl+C.
 */
export async function collectAnswers(
  flags: InitAnswersFlags,
  existingRaw: Record<string, any>,
  ctx: AskContext,
  opts: {
    needCredentials: boolean
    existingSecrets?: Secrets
    /** Connect with the answers so far and offer what the server has (real runs). */
    discover?: (answers: Record<string, any>, credentials: CollectedAnswers['credentials']) => Promise<DiscoveryPort>
  },
  progress: CollectedAnswers = {input: structuredClone(existingRaw) as ConfigInput, credentials: {}, given: new Set(), flags: {}},
): Promise<CollectedAnswers> {
  const answers = progress.input as Record<string, any>
  const base = () => answers
  const defaults = configSchema.parse({})
  const asked = new Set<string>()
  /** A saved gateway or address is offered only while it lies inside the subnet. */
  const inSubnet = (key: string, subnet: string) => {
    const v = getIn(existingRaw, key)
    return typeof v === 'string' && cidrContains(subnet, v) ? v : undefined
  }
  const flagIps = [flags.gitlabIp, flags.databaseIp, flags.k8sIp].filter((ip): ip is string => ip !== undefined)
  /**
   * Fill in what follows from the answers so far, for every field not yet answered: the
   * gateway and the VMs' addresses from the subnet, the pod network out of the subnet's way.
   * Validators see it too, so a given value is checked against the defaults it will really meet.
   */
  const derive = (c: Record<string, unknown>, answering?: string) => {
    const open = (key: string) => key !== answering && !asked.has(key)
    const subnet = String(getIn(c, 'network.subnet') ?? defaults.network.subnet)
    if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(subnet)) return
    if (open('network.gateway')) setIn(c, 'network.gateway', inSubnet('network.gateway', subnet) ?? gatewayDefault(subnet) ?? defaults.network.gateway)
    const taken = [String(getIn(c, 'network.gateway')), ...flagIps]
    for (const role of ROLES) if (!open(`network.vms.${role}.ip`)) taken.push(String(getIn(c, `network.vms.${role}.ip`)))
    for (const role of ROLES) {
      const key = `network.vms.${role}.ip`
      if (!open(key)) continue
      const ip = inSubnet(key, subnet) ?? vmIpDefault(subnet, role, taken) ?? getIn(defaults, key)
      setIn(c, key, ip)
      taken.push(ip)
    }
    // The pod and service networks' defaults move out of the subnet's way (and each other's).
    const k = defaults.services.kubernetes
    const mine = (f: string) => getIn(existingRaw, `services.kubernetes.${f}`) === undefined
    const pod = mine('podCidr') ? (freeRange(k.podCidr, [subnet, k.serviceCidr]) ?? k.podCidr) : getIn(c, 'services.kubernetes.podCidr')
    if (mine('podCidr')) setIn(c, 'services.kubernetes.podCidr', pod)
    if (mine('serviceCidr')) setIn(c, 'services.kubernetes.serviceCidr', freeRange(k.serviceCidr, [subnet, pod ?? k.podCidr]) ?? k.serviceCidr)
  }
  const planned = (key: string) => {
    const c = structuredClone(answers)
    derive(c)
    return getIn(c, key)
  }
  const q = async <T>(key: string, flag: string, env: string | undefined, message: string, given: T | undefined, extra: Partial<Parameters<typeof ask<T>>[0]> = {}) => {
    progress.flags[key] = flag
    const value = await ask<T>(
      {key, flag, env, message, given, existing: getIn(existingRaw, key), default: getIn(defaults, key), validate: fieldValidator(key, base, derive) as (v: T) => string | true, ...extra},
      ctx,
    )
    if (given !== undefined || (ctx.interactive && !ctx.yes)) progress.given.add(key)
    asked.add(key)
    setIn(answers, key, value)
    return value
  }
  /** A value given by a flag that no question asks: the same rules, blamed on the flag. */
  const set = (key: string, flag: string, env: string, value: unknown) => {
    progress.flags[key] = flag
    const ok = fieldValidator(key, base, derive)(value)
    if (ok !== true) throw new ConfigError(`${flag} (${env})`, [{path: key, message: ok}])
    progress.given.add(key)
    asked.add(key)
    setIn(answers, key, value)
  }

  await q('name', '--name', 'AUTOLABS_NAME', 'Environment name:', flags.name)
  const url = await q<string>('proxmox.url', '--proxmox-url', 'AUTOLABS_PROXMOX_URL', 'Proxmox VE URL (https://host:8006):', flags.proxmoxUrl, {
    normalize: normalizeProxmoxUrl,
    // A real run needs a real host: the placeholder default only serves --dry-run.
    required: opts.needCredentials,
    default: opts.needCredentials ? undefined : defaults.proxmox.url,
  })
  setIn(answers, 'proxmox.url', normalizeProxmoxUrl(url))
  const auth = await q<'token' | 'password'>('proxmox.auth', '--proxmox-auth', 'AUTOLABS_PROXMOX_AUTH', 'Authenticate with:', flags.proxmoxAuth, {
    choices: [
      {name: 'API token (recommended)', value: 'token'},
      {name: 'User and password', value: 'password'},
    ],
  })
  const credentials = progress.credentials
  if (auth === 'token') {
    await q('proxmox.tokenId', '--proxmox-token-id', 'AUTOLABS_PROXMOX_TOKEN_ID', 'API token id (user@realm!tokenid):', flags.proxmoxTokenId)
    if (opts.needCredentials) {
      const given = flags.proxmoxTokenSecretFile
        ? await readSecretFile(flags.proxmoxTokenSecretFile, '--proxmox-token-secret-file')
        : process.env.AUTOLABS_PROXMOX_TOKEN_SECRET || undefined
      credentials.tokenSecret = await ask<string>(
        {
          key: 'proxmox token secret',
          flag: '--proxmox-token-secret-file',
          env: 'AUTOLABS_PROXMOX_TOKEN_SECRET',
          message: 'API token secret:',
          secret: true,
          given,
          existing: opts.existingSecrets?.proxmox.tokenSecret,
          required: true,
          normalize: (v) => v.trim(),
          validate: (v) => (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v) ? true : 'must be the token secret UUID (lowercase), as Proxmox showed it once'),
        },
        ctx,
      )
      registerSecret(credentials.tokenSecret)
    }
  } else {
    await q('proxmox.username', '--proxmox-username', 'AUTOLABS_PROXMOX_USERNAME', 'Proxmox user (user@realm):', flags.proxmoxUsername)
    if (opts.needCredentials) {
      const given = flags.proxmoxPasswordFile
        ? await readSecretFile(flags.proxmoxPasswordFile, '--proxmox-password-file')
        : process.env.AUTOLABS_PROXMOX_PASSWORD || undefined
      credentials.password = await ask<string>(
        {key: 'proxmox password', flag: '--proxmox-password-file', env: 'AUTOLABS_PROXMOX_PASSWORD', message: 'Password:', secret: true, given, existing: opts.existingSecrets?.proxmox.password, required: true},
        ctx,
      )
      registerSecret(credentials.password)
    }
  }
  if (flags.proxmoxFingerprint !== undefined) set('proxmox.fingerprint', '--proxmox-fingerprint', 'AUTOLABS_PROXMOX_FINGERPRINT', flags.proxmoxFingerprint.toUpperCase())
  if (flags.proxmoxCaFile !== undefined) set('proxmox.caFile', '--proxmox-ca-file', 'AUTOLABS_PROXMOX_CA_FILE', flags.proxmoxCaFile)
  if (flags.insecure) set('proxmox.insecure', '--insecure', 'AUTOLABS_INSECURE', true)

  // Node, storages and bridge: in a real run offered from the API (with its default picks);
  // in a dry run they default to the names of a fresh Proxmox installation.
  const port = opts.discover ? await opts.discover(answers, credentials) : undefined
  const offer = <T>(choices: Array<{name: string; value: T; description?: string}> | undefined, def: T | undefined) =>
    choices && choices.length > 0 ? {choices, ...(def === undefined ? {} : {default: def})} : {}
  const node = await q<string>('proxmox.node', '--proxmox-node', 'AUTOLABS_PROXMOX_NODE', 'Proxmox node:', flags.proxmoxNode, offer(port?.nodes.map((n) => ({...n, value: n.name})), port?.nodes[0]?.name))
  const found = port ? await port.load(node) : undefined
  await q('proxmox.vmStorage', '--vm-storage', 'AUTOLABS_VM_STORAGE', 'Storage for VM disks:', flags.vmStorage, offer(found?.vmStorages, found?.defaults.vmStorage))
  await q('proxmox.imageStorage', '--image-storage', 'AUTOLABS_IMAGE_STORAGE', 'Storage for the cloud image (import):', flags.imageStorage, offer(found?.imageStorages, found?.defaults.imageStorage))
  await q('proxmox.bridge', '--bridge', 'AUTOLABS_BRIDGE', 'Network bridge:', flags.bridge, offer(found?.bridges, found?.defaults.bridge))

  // The gateway and the addresses follow the subnet (see derive).
  const subnet = await q<string>('network.subnet', '--subnet', 'AUTOLABS_SUBNET', 'VM subnet (CIDR):', flags.subnet)
  await q<string>('network.gateway', '--gateway', 'AUTOLABS_GATEWAY', 'Gateway:', flags.gateway, {existing: inSubnet('network.gateway', subnet), default: planned('network.gateway')})
  for (const [role, flag, given] of [
    ['gitlab', '--gitlab-ip', flags.gitlabIp],
    ['database', '--database-ip', flags.databaseIp],
    ['k8s', '--k8s-ip', flags.k8sIp],
  ] as const) {
    const key = `network.vms.${role}.ip`
    await q<string>(key, flag, `AUTOLABS_${role.toUpperCase()}_IP`, `${role}-vm IP:`, given, {existing: inSubnet(key, subnet), default: planned(key)})
  }
  derive(answers)
  const dnsRule = fieldValidator('network.dns', base, derive)
  const dns = await q<string>('network.dns', '--dns', 'AUTOLABS_DNS', 'DNS servers (comma-separated):', flags.dns?.join(','), {
    existing: getIn(existingRaw, 'network.dns')?.join?.(','),
    default: defaults.network.dns.join(','),
    validate: (v: string) => dnsRule(splitList(v)),
  })
  setIn(answers, 'network.dns', splitList(dns))
  if (flags.aptProxy !== undefined) set('network.aptProxy', '--apt-proxy', 'AUTOLABS_APT_PROXY', flags.aptProxy === '' ? null : flags.aptProxy)

  await q('ssh.publicKeyFile', '--ssh-public-key', 'AUTOLABS_SSH_PUBLIC_KEY', 'SSH public key to install on the VMs:', flags.sshPublicKey)
  await q('image.os', '--os', 'AUTOLABS_OS', 'Guest OS:', flags.os, {choices: GUEST_OS.map((os) => ({name: IMAGES[os].title, value: os}))})
  await q<number>('vms.k8s.cores', '--k8s-cores', 'AUTOLABS_K8S_CORES', 'k8s-vm cores (4–16):', flags.k8sCores, {kind: 'number'})
  // Memory is typed as the flag takes it: 16G or MiB.
  const memRule = fieldValidator('vms.k8s.memoryMiB', base, derive)
  const memory = await q<string>('vms.k8s.memoryMiB', '--k8s-memory', 'AUTOLABS_K8S_MEMORY', 'k8s-vm memory (8G–16G, or MiB):', flags.k8sMemory, {
    existing: memoryText(getIn(existingRaw, 'vms.k8s.memoryMiB')),
    default: memoryText(defaults.vms.k8s.memoryMiB),
    normalize: (v: string) => v.trim(),
    validate: (v: string) => {
      const mib = parseMemory(v)
      return mib === undefined ? 'must be a size like 16G or 12288 (MiB)' : memRule(mib)
    },
  })
  setIn(answers, 'vms.k8s.memoryMiB', parseMemory(memory))

  return progress
}

function splitList(v: string): string[] {
  return v
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean)
}

export interface InitResult {
  workspace: string
  dryRun: boolean
  created: boolean
  plan: Plan
  secretsGenerated: string[]
  warnings: FieldIssue[]
}

/**
 * Validate everything first, then write the workspace. Invalid input writes nothing and leaves
 * an existing workspace byte-for-byte unchanged.
 */
export async function prepareWorkspace(
  ws: Workspace,
  flags: InitAnswersFlags,
  ctx: AskContext,
  opts: {dryRun: boolean; discover?: Parameters<typeof collectAnswers>[3]['discover']},
): Promise<{config: Config; secrets: Secrets; result: InitResult; credentials: CollectedAnswers['credentials']}> {
  const existing = await readRawConfig(ws)
  await refuseForeignFiles(ws, existing)
  const existingRaw = (existing?.raw ?? {}) as Record<string, any>
  if (existing) validateConfig(existingRaw, ws.configFile) // a broken workspace is reported as such, untouched
  const existingSecrets = await loadSecrets(ws)
  // The answers a stopped run kept come before the workspace's own values.
  const draft = await loadDraft(ws)
  const progress: CollectedAnswers = {input: structuredClone(draft ?? existingRaw) as ConfigInput, credentials: {}, given: new Set(), flags: {}}
  let input: ConfigInput
  let credentials: CollectedAnswers['credentials']
  let config: Config
  let warnings: FieldIssue[]
  try {
    ;({input, credentials} = await collectAnswers(flags, draft ?? existingRaw, ctx, {needCredentials: !opts.dryRun, existingSecrets, discover: opts.discover}, progress))
    ;({config, warnings} = validateConfig(input, existing ? ws.configFile : 'the answers (flags, environment)', {given: progress.given, flags: progress.flags}))
  } catch (error) {
    // Whatever was typed at the prompts is kept for the next run (flags are typed again anyway).
    if (ctx.interactive && !ctx.yes && progress.given.size > 0) {
      await saveDraft(ws, progress.input as Record<string, unknown>, progress.credentials)
      process.stderr.write(
        `\nYour answers are kept in ${draftFile(ws)}${progress.credentials.tokenSecret || progress.credentials.password ? ` (the secret in ${ws.secretsFile}, 0600)` : ''}; \`autolabs init\` offers them as defaults.\n`,
      )
    }
    throw error
  }
  const d = derived(config)
  if (opts.dryRun && !existsSync(d.sshPublicKeyFile))
    warnings.push({path: 'ssh.publicKeyFile', message: `${d.sshPublicKeyFile} does not exist; the real run needs it`, fix: 'create one with `ssh-keygen -t ed25519` or pass --ssh-public-key', severity: 'warning'})
  if (!opts.dryRun && !existsSync(d.sshPublicKeyFile))
    throw new UsageError(`SSH public key ${d.sshPublicKeyFile} (ssh.publicKeyFile) does not exist.`, {
      suggestion: 'Create one with `ssh-keygen -t ed25519` or pass --ssh-public-key <path>.',
    })

  let secrets: Secrets
  let secretsGenerated: string[] = []
  if (existingSecrets) {
    const done = completeSecrets(existingSecrets, config.services.postgres.databases)
    secrets = done.secrets
    secretsGenerated = done.added
  } else {
    secrets = generateSecrets(config.services.postgres.databases)
    secretsGenerated = ['postgres.superuser', ...config.services.postgres.databases.map((db) => `postgres.users.${db}`), 'redis.password', 'objectStorage.accessKey', 'objectStorage.secretKey', 'gitlab.rootPassword', 'kubernetes.bootstrapToken']
  }
  if (credentials.tokenSecret) secrets.proxmox = {...secrets.proxmox, tokenSecret: credentials.tokenSecret}
  if (credentials.password) secrets.proxmox = {...secrets.proxmox, password: credentials.password}

  // Everything is valid: render all files in memory, then write them together (all new or,
  // after any failure, all old). A stop signal that came during the questions stops here.
  const configText = renderConfigYaml(completeConfig(input), existing?.text)
  const files = await workspaceFiles(ws, config, secrets)
  checkpoint()
  await ensureDir(ws.root)
  await ensureDir(ws.stateDir, 0o700)
  await ensureDir(ws.logsDir, 0o700)
  await ensureDir(ws.terraformDir, 0o755)
  registerSecrets(secrets)
  await writeFilesTogether([
    {path: ws.configFile, content: configText, mode: 0o644},
    {path: ws.secretsFile, content: secretsText(secrets), mode: 0o600},
    ...files.filter((f) => !(f.onlyIfMissing && existsSync(f.path))),
  ])
  await clearDraft(ws)
  const written = [ws.configFile, ws.secretsFile, ...files.map((f) => f.path)].map((p) => p.slice(ws.root.length + 1)).sort()
  return {
    config,
    secrets,
    credentials,
    result: {workspace: ws.root, dryRun: opts.dryRun, created: !existing, plan: buildPlan(config, written), secretsGenerated, warnings},
  }
}

/** autolabs.yaml is written complete (defaults included), so it documents every setting. */
function completeConfig(input: ConfigInput): ConfigInput {
  return configSchema.parse(input) as ConfigInput
}
