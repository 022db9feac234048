import {existsSync} from 'node:fs'

import {GUEST_OS, IMAGES} from '../config/catalog.js'
import {derived, expandHome, readRawConfig, renderConfigYaml, validateConfig} from '../config/load.js'
import {type Config, configSchema, type ConfigInput} from '../config/schema.js'
import {crossFieldIssues, zodIssuesToFieldIssues} from '../config/validate.js'
import {type FieldIssue, UsageError} from '../errors.js'
import {ask, type AskContext} from '../prompts/ask.js'
import {registerSecret} from '../util/redact.js'
import {normalizeProxmoxUrl, parseMemory} from '../config/input.js'
import {checkpoint} from '../util/interrupt.js'
import {ensureDir, READ_LIMITS, readTextFile, writeFilesTogether} from '../workspace/fs.js'
import {completeSecrets, generateSecrets, loadSecrets, registerSecrets, type Secrets, secretsText} from '../workspace/secrets.js'
import type {Workspace} from '../workspace/workspace.js'
import {buildPlan, type Plan} from './plan.js'
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

/** A prompt-time validator for one field: the schema and the cross-field rules, at that path. */
function fieldValidator(path: string, base: () => Record<string, unknown>) {
  return (value: unknown): string | true => {
    const candidate = structuredClone(base())
    setIn(candidate, path, value)
    const parsed = configSchema.safeParse(candidate)
    let issues: FieldIssue[]
    if (parsed.success) issues = crossFieldIssues(parsed.data).filter((i) => i.severity !== 'warning')
    else issues = zodIssuesToFieldIssues(configSchema, parsed.error.issues)
    const hit = issues.find((i) => i.path === path)
    return hit ? `${hit.message}${hit.fix ? ` (${hit.fix})` : ''}` : true
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
}

/**
 * The wizard: every question, with defaults from the design document. `needCredentials`
 * is false for --dry-run (nothing is contacted, so no secret is asked for).
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
): Promise<CollectedAnswers> {
  const answers: Record<string, any> = structuredClone(existingRaw)
  const base = () => answers
  const defaults = configSchema.parse({})
  const q = async <T>(key: string, flag: string, env: string | undefined, message: string, given: T | undefined, extra: Partial<Parameters<typeof ask<T>>[0]> = {}) => {
    const value = await ask<T>(
      {key, flag, env, message, given, existing: getIn(existingRaw, key), default: getIn(defaults, key), validate: fieldValidator(key, base) as (v: T) => string | true, ...extra},
      ctx,
    )
    setIn(answers, key, value)
    return value
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
  const credentials: CollectedAnswers['credentials'] = {}
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
          validate: (v) => (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v.trim()) ? true : 'must be the token secret UUID (lowercase), as Proxmox showed it once'),
        },
        ctx,
      )
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
    }
  }
  if (flags.proxmoxFingerprint !== undefined) setIn(answers, 'proxmox.fingerprint', flags.proxmoxFingerprint.toUpperCase())
  if (flags.proxmoxCaFile !== undefined) setIn(answers, 'proxmox.caFile', flags.proxmoxCaFile)
  if (flags.insecure) setIn(answers, 'proxmox.insecure', true)

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

  await q('network.subnet', '--subnet', 'AUTOLABS_SUBNET', 'VM subnet (CIDR):', flags.subnet)
  await q('network.gateway', '--gateway', 'AUTOLABS_GATEWAY', 'Gateway:', flags.gateway)
  await q('network.vms.gitlab.ip', '--gitlab-ip', 'AUTOLABS_GITLAB_IP', 'gitlab-vm IP:', flags.gitlabIp)
  await q('network.vms.database.ip', '--database-ip', 'AUTOLABS_DATABASE_IP', 'database-vm IP:', flags.databaseIp)
  await q('network.vms.k8s.ip', '--k8s-ip', 'AUTOLABS_K8S_IP', 'k8s-vm IP:', flags.k8sIp)
  const dns = await q<string>('network.dns', '--dns', 'AUTOLABS_DNS', 'DNS servers (comma-separated):', flags.dns?.join(','), {
    existing: getIn(existingRaw, 'network.dns')?.join?.(','),
    default: defaults.network.dns.join(','),
    validate: (v: string) => fieldValidator('network.dns', base)(splitList(v)) === true ? true : (fieldValidator('network.dns', base)(splitList(v)) as string),
  })
  setIn(answers, 'network.dns', splitList(dns))
  if (flags.aptProxy !== undefined) setIn(answers, 'network.aptProxy', flags.aptProxy === '' ? null : flags.aptProxy)

  await q('ssh.publicKeyFile', '--ssh-public-key', 'AUTOLABS_SSH_PUBLIC_KEY', 'SSH public key to install on the VMs:', flags.sshPublicKey)
  await q('image.os', '--os', 'AUTOLABS_OS', 'Guest OS:', flags.os, {
    choices: GUEST_OS.map((os) => ({name: IMAGES[os].title, value: os})),
    validate: (v: string) => ((GUEST_OS as readonly string[]).includes(v) ? true : `must be one of ${GUEST_OS.join(', ')}`),
  })
  await q<number>('vms.k8s.cores', '--k8s-cores', 'AUTOLABS_K8S_CORES', 'k8s-vm cores (4–16):', flags.k8sCores, {kind: 'number'})
  const memGiven = flags.k8sMemory === undefined ? undefined : parseMemory(flags.k8sMemory)
  if (flags.k8sMemory !== undefined && memGiven === undefined)
    throw new UsageError(`Invalid --k8s-memory "${flags.k8sMemory}" for vms.k8s.memoryMiB: must be a size like 16G or 12288 (MiB).`, {suggestion: 'Pass e.g. --k8s-memory 16G.'})
  await q<number>('vms.k8s.memoryMiB', '--k8s-memory', 'AUTOLABS_K8S_MEMORY', 'k8s-vm memory in MiB (8192–16384):', memGiven, {kind: 'number'})

  return {input: answers as ConfigInput, credentials}
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
  const existingRaw = (existing?.raw ?? {}) as Record<string, any>
  if (existing) validateConfig(existingRaw, ws.configFile) // a broken workspace is reported as such, untouched
  const existingSecrets = await loadSecrets(ws)
  const {input, credentials} = await collectAnswers(flags, existingRaw, ctx, {needCredentials: !opts.dryRun, existingSecrets, discover: opts.discover})

  const {config, warnings} = validateConfig(input, existing ? ws.configFile : 'the answers (flags, environment)')
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
