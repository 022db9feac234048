import {readdir, readFile} from 'node:fs/promises'
import path from 'node:path'

import {isMovingImageUrl} from '../config/catalog.js'
import {derived, expandHome} from '../config/load.js'
import {type Config, type Role, ROLES} from '../config/schema.js'
import {UserError} from '../errors.js'
import {parsePublicKeys} from '../config/public-key.js'
import {ensureDir, READ_LIMITS, readTextFile, writeFileAtomic} from '../workspace/fs.js'
import type {Secrets} from '../workspace/secrets.js'
import {ASSETS_DIR, renderCloudInit} from './cloud-init.js'

/** A file of the rendered terraform/ directory; `path` is relative to it. */
export interface RenderedFile {
  path: string
  content: string
  mode: number
}

export interface RenderTerraformOptions {
  /** The OpenSSH public key(s) to install. Default: read config.ssh.publicKeyFile. */
  sshPublicKeys?: string[]
  /** The static .tf files (name → text). Default: read assets/terraform/. */
  assets?: Record<string, string>
  /** The cloud-init user-data per role (snippet mode). Default: rendered from assets/cloud-init/. */
  userData?: Record<Role, string>
}

export const TFVARS_FILE = 'terraform.tfvars.json'

/** The shape of terraform.tfvars.json: one key per variable in assets/terraform/variables.tf. */
export interface TerraformVariables {
  proxmox_endpoint: string
  proxmox_api_token: string | null
  proxmox_username: string | null
  proxmox_password: string | null
  proxmox_insecure: boolean
  proxmox_ssh_username: string | null
  proxmox_node: string
  vm_datastore: string
  image_datastore: string
  snippet_datastore: string
  bridge: string
  network: {prefix_length: number; gateway: string; dns_servers: string[]; search_domain: string | null}
  environment_name: string
  image: {url: string; file_name: string; checksum: string | null; checksum_algorithm: 'sha256' | 'sha512'}
  template: {vm_id: number; name: string}
  vm_user: string
  ssh_public_keys: string[]
  vms: Record<Role, {name: string; vm_id: number; cores: number; memory_mib: number; disk_gib: number; ip: string}>
  cloud_init_mode: 'builtin' | 'snippet'
  clone_retries: number
  cpu_type: string
}

/**
 * Which credentials Terraform uses: the least-privilege token autolabs created for it if
 * there is one, else the administrator's token or password given at init.
 */
export function terraformCredentials(config: Config, secrets: Secrets | undefined): Pick<TerraformVariables, 'proxmox_api_token' | 'proxmox_username' | 'proxmox_password'> {
  const p = secrets?.proxmox ?? {}
  if (p.terraformTokenId && p.terraformTokenSecret) {
    return {proxmox_api_token: `${p.terraformTokenId}=${p.terraformTokenSecret}`, proxmox_username: null, proxmox_password: null}
  }
  if (config.proxmox.auth === 'token' && p.tokenSecret) {
    return {proxmox_api_token: `${config.proxmox.tokenId}=${p.tokenSecret}`, proxmox_username: null, proxmox_password: null}
  }
  if (config.proxmox.auth === 'password' && p.password) {
    return {proxmox_api_token: null, proxmox_username: config.proxmox.username, proxmox_password: p.password}
  }
  // Nothing stored: the provider falls back to PROXMOX_VE_API_TOKEN / _USERNAME / _PASSWORD.
  return {proxmox_api_token: null, proxmox_username: null, proxmox_password: null}
}

function prefixLength(cidr: string): number {
  return Number.parseInt(cidr.split('/')[1], 10)
}

/** https://host:8006 → https://host:8006/ (the provider wants the base URL, no /api2/json). */
function endpoint(url: string): string {
  const u = new URL(url)
  return `${u.protocol}//${u.host}/`
}

/** Config + secrets → the variable values. Pure. */
export function terraformVariables(config: Config, secrets: Secrets | undefined, sshPublicKeys: string[]): TerraformVariables {
  const d = derived(config)
  const vms = {} as TerraformVariables['vms']
  for (const role of ROLES) {
    const vm = config.vms[role]
    vms[role] = {name: vm.name, vm_id: vm.vmid, cores: vm.cores, memory_mib: vm.memoryMiB, disk_gib: vm.diskGiB, ip: config.network.vms[role].ip}
  }
  const checksum = config.image.checksum
  return {
    proxmox_endpoint: endpoint(config.proxmox.url),
    ...terraformCredentials(config, secrets),
    proxmox_insecure: config.proxmox.insecure,
    // The provider's SSH user must be a PAM user of the node; only snippet mode needs it.
    proxmox_ssh_username: config.cloudInit.mode === 'snippet' ? 'root' : null,
    proxmox_node: config.proxmox.node,
    vm_datastore: config.proxmox.vmStorage,
    image_datastore: config.proxmox.imageStorage,
    snippet_datastore: config.cloudInit.snippetStorage,
    bridge: config.proxmox.bridge,
    network: {
      prefix_length: prefixLength(config.network.subnet),
      gateway: config.network.gateway,
      dns_servers: config.network.dns,
      search_domain: config.network.searchDomain,
    },
    environment_name: config.name,
    image: {
      url: d.imageUrl,
      file_name: d.imageFileName,
      checksum,
      checksum_algorithm: checksum && checksum.length === 128 ? 'sha512' : 'sha256',
    },
    template: {vm_id: config.proxmox.templateVmid, name: `${config.name}-${config.image.os.replace('.', '')}-template`},
    vm_user: d.sshUser,
    ssh_public_keys: sshPublicKeys.map((k) => k.trim()).filter(Boolean),
    vms,
    cloud_init_mode: config.cloudInit.mode,
    clone_retries: 3,
    cpu_type: 'x86-64-v2-AES',
  }
}

/**
 * The OpenSSH public keys in a file (comments and blank lines skipped), each parsed as a key;
 * [] if it does not exist. A private key or other text is refused (UsageError).
 */
export async function readPublicKeys(file: string): Promise<string[]> {
  const full = expandHome(file)
  const text = await readTextFile(full, {what: 'The SSH public key file', maxBytes: READ_LIMITS.publicKey, optional: true})
  return text === undefined ? [] : parsePublicKeys(text, full)
}

export async function readTerraformAssets(): Promise<Record<string, string>> {
  const dir = path.join(ASSETS_DIR, 'terraform')
  const names = (await readdir(dir)).filter((n) => n.endsWith('.tf')).sort()
  const out: Record<string, string> = {}
  for (const n of names) out[n] = await readFile(path.join(dir, n), 'utf8')
  return out
}

/**
 * Everything in the workspace's terraform/ directory: the static .tf files copied verbatim
 * (a teacher can read, commit and apply them by hand), terraform.tfvars.json (0600: it holds
 * the API token) and, in snippet mode, the cloud-init user-data per VM.
 *
 * A missing SSH public key does not stop rendering (a dry run works on any machine); the
 * tfvars then has no key, Terraform's validation refuses it, and provisioning checks first.
 */
export async function renderTerraform(config: Config, secrets: Secrets | undefined, opts: RenderTerraformOptions = {}): Promise<RenderedFile[]> {
  const keys = opts.sshPublicKeys ?? (await readPublicKeys(derived(config).sshPublicKeyFile))
  const assets = opts.assets ?? (await readTerraformAssets())
  const files: RenderedFile[] = Object.entries(assets)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, content]) => ({path: name, content, mode: 0o644}))
  const vars = terraformVariables(config, secrets, keys)
  files.push({path: TFVARS_FILE, content: JSON.stringify(vars, null, 2) + '\n', mode: 0o600})
  if (config.cloudInit.mode === 'snippet') {
    const userData = opts.userData ?? (await renderCloudInit(config, vars.ssh_public_keys))
    for (const role of ROLES) files.push({path: `cloud-init/${role}.user-data.yaml`, content: userData[role], mode: 0o644})
  }
  return files
}

/** Write the rendered files under `dir` (the workspace's terraform/), each with its mode. */
export async function writeTerraform(dir: string, files: RenderedFile[]): Promise<string[]> {
  await ensureDir(dir, 0o755)
  const written: string[] = []
  for (const f of files) {
    const target = path.join(dir, f.path)
    await writeFileAtomic(target, f.content, f.mode)
    written.push(target)
  }
  return written
}

/** Provisioning refuses to start without what Terraform's validation would refuse later. */
export function assertProvisionable(vars: TerraformVariables, config: Config): void {
  if (!vars.image.checksum) {
    throw new UserError(`The cloud image has no checksum (image.checksum in autolabs.yaml): Proxmox would download ${vars.image.url} unverified.`, {
      suggestion: "Run `autolabs init` again (it pins the publisher's checksum), or set image.checksum to the image's SHA-256/SHA-512.",
      exitCode: 2,
    })
  }
  if (isMovingImageUrl(vars.image.url)) {
    throw new UserError(`The cloud image URL ${vars.image.url} is the publisher's moving link: its file changes, the pinned checksum stops matching and the download fails on a new server.`, {
      suggestion: 'Run `autolabs init` again: it pins the dated build with that checksum (image.url in autolabs.yaml).',
      exitCode: 2,
    })
  }
  if (vars.ssh_public_keys.length === 0) {
    throw new UserError(`No SSH public key found in ${config.ssh.publicKeyFile} (ssh.publicKeyFile in autolabs.yaml).`, {
      suggestion: 'Create one with `ssh-keygen -t ed25519`, or point ssh.publicKeyFile / --ssh-public-key at an existing .pub file, then run again.',
      exitCode: 2,
    })
  }
}
