import {access, readFile} from 'node:fs/promises'

import {HOST_MINIMUM} from '../config/catalog.js'
import {derived} from '../config/load.js'
import {redisSupportFindings} from '../config/redis-support.js'
import {ROLES, type Config} from '../config/schema.js'
import {compatibilityFindings, supportFindings} from '../config/support.js'
import {loadGitlabTls} from '../config/tls.js'
import {ConfigError, UserError} from '../errors.js'
import type {ProxmoxClient} from '../proxmox/client.js'
import {isAutolabsOwned, templateSlotStatus} from '../proxmox/template.js'
import {flavorName, probeTerraform, resolveTerraformBin} from '../terraform/binary.js'
import type {StorageInfo, VmInfo} from '../proxmox/types.js'
import {terraformEnv} from '../util/child-env.js'
import {CERT_WARN_DAYS, certificateLife} from '../util/expiry.js'
import type {Workspace} from '../workspace/workspace.js'

export type CheckStatus = 'pass' | 'warn' | 'fail'

export interface PreflightCheck {
  id: string
  title: string
  status: CheckStatus
  detail: string
  fix?: string
}

export interface PreflightResult {
  checks: PreflightCheck[]
  ok: boolean
}

export interface PreflightInput {
  /** null: the Proxmox checks are reported as not run (warn). */
  client: ProxmoxClient | null
  config: Config
  workspace?: Workspace
  /** Default: the config's ssh.publicKeyFile. */
  sshPublicKeyPath?: string
  /** --terraform; default: AUTOLABS_TERRAFORM, else terraform or tofu on PATH (resolveTerraformBin). */
  terraformBin?: string
  /**
   * When the image storage lacks `import`: true → enable it, a function → ask (the wizard's
   * confirm), false/undefined → fail with the fix.
   */
  enableImport?: boolean | ((storage: string) => Promise<boolean>)
  /** Which way SSH will reach the VMs and why (src/ssh/route.ts); omitted: not checked. */
  sshRoute?: () => Promise<PreflightCheck>
  /** Today, for the end-of-support dates (tests pass a fixed clock). */
  now?: Date
}

const GiB = 1024 ** 3
const MiB = 1024 ** 2
/** Storage types that allocate lazily (thin provisioning): free space is advisory. */
const THIN = new Set(['lvmthin', 'zfspool', 'rbd'])

/** Every check autolabs runs before it creates anything. Never throws for a failed check. */
export async function runPreflight(input: PreflightInput): Promise<PreflightResult> {
  const checks: PreflightCheck[] = []
  const add = (c: PreflightCheck) => checks.push(c)

  if (input.client) await proxmoxChecks(input.client, input, add)
  else
    add({
      id: 'proxmox-connection',
      title: 'Proxmox connection',
      status: 'warn',
      detail: 'not checked: no Proxmox credentials were given',
      fix: 'Set AUTOLABS_PROXMOX_TOKEN_SECRET (or --proxmox-token-secret-file) to run the Proxmox checks.',
    })

  add(await terraformCheck(resolveTerraformBin(input.terraformBin)))
  add(await sshKeyCheck(input.sshPublicKeyPath ?? derived(input.config).sshPublicKeyFile))
  if (input.sshRoute) add(await input.sshRoute())
  const tls = gitlabTlsCheck(input.config, input.workspace?.root ?? process.cwd(), input.workspace?.configFile ?? 'autolabs.yaml')
  if (tls) add(tls)
  add(versionSupportCheck(input.config, input.now ?? new Date()))
  return {checks, ok: checks.every((c) => c.status !== 'fail')}
}

async function proxmoxChecks(client: ProxmoxClient, input: PreflightInput, add: (c: PreflightCheck) => void): Promise<void> {
  const {config} = input
  const node = config.proxmox.node
  const planned = ROLES.map((role) => ({role, ...config.vms[role], ip: config.network.vms[role].ip}))

  // 1. Reachable, trusted, credentials accepted, version.
  let version
  try {
    version = await client.version()
  } catch (error) {
    const e = error as Error & {suggestion?: string}
    add({id: 'proxmox-connection', title: `Proxmox API at ${client.url}`, status: 'fail', detail: e.message, fix: e.suggestion})
    return
  }
  const v = `${version.major}.${version.minor}`
  if (version.major > 9 || (version.major === 9 && version.minor >= 0)) add({id: 'pve-version', title: 'Proxmox VE version', status: 'pass', detail: `PVE ${version.version}`})
  else if (version.major === 8 && version.minor >= 4)
    add({
      id: 'pve-version',
      title: 'Proxmox VE version',
      status: 'warn',
      detail: `PVE ${version.version}: supported, but PVE 8 is end of life since 2026-08`,
      fix: 'Plan the upgrade to PVE 9 (pve8to9 --full, then https://pve.proxmox.com/wiki/Upgrade_from_8_to_9).',
    })
  else
    add({
      id: 'pve-version',
      title: 'Proxmox VE version',
      status: 'fail',
      detail: `PVE ${version.version} (${v}) is too old: importing a cloud image through the API (download-url, content=import) needs 8.4 or newer`,
      fix: 'Upgrade the host to PVE 9 (or at least 8.4).',
    })

  // 2. The node, its CPU and memory.
  const guard = async (id: string, title: string, fn: () => Promise<void>) => {
    try {
      await fn()
    } catch (error) {
      const e = error as Error & {suggestion?: string}
      add({id, title, status: 'fail', detail: e.message, fix: e.suggestion})
    }
  }

  let vms: VmInfo[] = []
  let nodeOk = false
  await guard('node', `Node ${node}`, async () => {
    const nodes = await client.nodes()
    const n = nodes.find((x) => x.node === node)
    if (!n) {
      add({id: 'node', title: `Node ${node}`, status: 'fail', detail: `no node "${node}" (the cluster has: ${nodes.map((x) => x.node).join(', ') || 'none visible'})`, fix: 'Set proxmox.node in autolabs.yaml or pass --proxmox-node.'})
      return
    }
    if (n.status !== 'online') {
      add({id: 'node', title: `Node ${node}`, status: 'fail', detail: `node is ${n.status}`, fix: 'Bring the node online or choose another one (--proxmox-node).'})
      return
    }
    nodeOk = true
    add({id: 'node', title: `Node ${node}`, status: 'pass', detail: 'online'})
  })
  if (!nodeOk) return

  await guard('vms-list', 'Existing VMs', async () => {
    vms = await client.listVms(node, {withConfig: true})
  })
  // VMs of a previous (interrupted) autolabs run don't need the resources again.
  const existing = (vmid: number) => vms.find((x) => x.vmid === vmid)
  const toCreate = planned.filter((p) => !existing(p.vmid))

  await guard('node-resources', 'CPU and memory', async () => {
    const s = await client.nodeStatus(node)
    const sumCores = planned.reduce((a, p) => a + p.cores, 0)
    const maxCores = Math.max(...planned.map((p) => p.cores))
    const cpuDetail = `${s.cpus} CPU threads; the VMs use ${sumCores} cores (design minimum ${HOST_MINIMUM.cores})`
    if (s.cpus < maxCores)
      add({id: 'node-cpu', title: 'CPU', status: 'fail', detail: `${cpuDetail}: a VM cannot have more cores than the host`, fix: `Lower vms.<role>.cores to at most ${s.cpus} in autolabs.yaml.`})
    else if (s.cpus < Math.max(sumCores, HOST_MINIMUM.cores))
      add({id: 'node-cpu', title: 'CPU', status: 'warn', detail: `${cpuDetail}: the cores are over-committed`, fix: 'Fine for a trial; for teaching use a host with at least 12 cores or lower vms.<role>.cores.'})
    else add({id: 'node-cpu', title: 'CPU', status: 'pass', detail: cpuDetail})

    const needMem = toCreate.reduce((a, p) => a + p.memoryMiB, 0) * MiB
    const memDetail = `${fmtGiB(s.memFree)} free of ${fmtGiB(s.memTotal)}; ${toCreate.length ? `the VMs still to create need ${fmtGiB(needMem)}` : 'the VMs exist already'} (design minimum ${HOST_MINIMUM.memoryMiB / 1024} GiB)`
    if (s.memFree < needMem)
      add({id: 'node-memory', title: 'Memory', status: 'fail', detail: memDetail, fix: 'Free memory on the host (stop other VMs) or lower vms.<role>.memoryMiB in autolabs.yaml.'})
    else if (s.memTotal < HOST_MINIMUM.memoryMiB * MiB)
      add({id: 'node-memory', title: 'Memory', status: 'warn', detail: memDetail, fix: 'The design document asks for at least 16 GB on the host.'})
    else add({id: 'node-memory', title: 'Memory', status: 'pass', detail: memDetail})
  })

  // 3. Storages.
  let storages: StorageInfo[] = []
  await guard('storages', 'Storages', async () => {
    storages = await client.storages(node)
  })
  const vmStorage = storages.find((s) => s.storage === config.proxmox.vmStorage)
  const needDisk = toCreate.reduce((a, p) => a + p.diskGiB, 0) * GiB
  if (!vmStorage)
    add({id: 'vm-storage', title: `VM storage ${config.proxmox.vmStorage}`, status: 'fail', detail: `no storage "${config.proxmox.vmStorage}" on ${node} (has: ${storages.map((s) => s.storage).join(', ')})`, fix: 'Set proxmox.vmStorage in autolabs.yaml to a storage with content "images".'})
  else if (!vmStorage.content.includes('images'))
    add({id: 'vm-storage', title: `VM storage ${vmStorage.storage}`, status: 'fail', detail: `holds ${vmStorage.content.join(', ')} but not VM disks ("images")`, fix: 'Choose a storage with content "images" (proxmox.vmStorage) or add "images" to it (Datacenter → Storage → Edit → Content).'})
  else {
    const detail = `${fmtGiB(vmStorage.avail)} free; the VMs still to create need ${fmtGiB(needDisk)}`
    if (vmStorage.avail >= needDisk) add({id: 'vm-storage', title: `VM storage ${vmStorage.storage}`, status: 'pass', detail})
    else if (THIN.has(vmStorage.type))
      add({id: 'vm-storage', title: `VM storage ${vmStorage.storage}`, status: 'warn', detail: `${detail} (thin-provisioned: it fills as the VMs write)`, fix: 'Make room before the VMs grow, or lower vms.<role>.diskGiB.'})
    else add({id: 'vm-storage', title: `VM storage ${vmStorage.storage}`, status: 'fail', detail, fix: 'Free space on the storage, choose another (proxmox.vmStorage), or lower vms.<role>.diskGiB.'})
  }

  const imageStorage = storages.find((s) => s.storage === config.proxmox.imageStorage)
  const imageTitle = `Image storage ${config.proxmox.imageStorage}`
  if (!imageStorage)
    add({id: 'image-storage', title: imageTitle, status: 'fail', detail: `no storage "${config.proxmox.imageStorage}" on ${node}`, fix: 'Set proxmox.imageStorage in autolabs.yaml to a file-based storage (e.g. local).'})
  else if (imageStorage.content.includes('import')) add({id: 'image-storage', title: imageTitle, status: 'pass', detail: `has content "import" (${fmtGiB(imageStorage.avail)} free)`})
  else {
    const fixCmd = `pvesm set ${imageStorage.storage} --content ${[...imageStorage.content, 'import'].join(',')}`
    const want = typeof input.enableImport === 'function' ? await input.enableImport(imageStorage.storage) : Boolean(input.enableImport)
    if (want) {
      await guard('image-storage', imageTitle, async () => {
        await client.enableStorageContent(imageStorage.storage, 'import')
        add({id: 'image-storage', title: imageTitle, status: 'pass', detail: 'content type "import" enabled now'})
      })
    } else
      add({
        id: 'image-storage',
        title: imageTitle,
        status: 'fail',
        detail: `lacks the content type "import" that Proxmox needs to download the cloud image (has: ${imageStorage.content.join(', ') || 'nothing'})`,
        fix: `Run \`autolabs preflight --enable-import\`, or on the host: ${fixCmd}`,
      })
  }

  // 4. Bridge.
  await guard('bridge', `Bridge ${config.proxmox.bridge}`, async () => {
    const bridges = await client.bridges(node)
    const b = bridges.find((x) => x.iface === config.proxmox.bridge)
    if (!b)
      add({id: 'bridge', title: `Bridge ${config.proxmox.bridge}`, status: 'fail', detail: `no bridge "${config.proxmox.bridge}" on ${node} (has: ${bridges.map((x) => x.iface).join(', ') || 'none'})`, fix: 'Create it (System → Network → Create → Linux Bridge) or set proxmox.bridge in autolabs.yaml (init: --bridge).'})
    else if (!b.active) add({id: 'bridge', title: `Bridge ${b.iface}`, status: 'warn', detail: 'exists but is not active', fix: 'Apply the network configuration on the host (System → Network → Apply Configuration).'})
    else add({id: 'bridge', title: `Bridge ${b.iface}`, status: 'pass', detail: b.cidr ? `active, ${b.cidr}` : 'active'})
  })

  // 5. VMIDs and the template slot.
  for (const p of planned) {
    const vm = existing(p.vmid)
    const title = `VMID ${p.vmid} (${p.name})`
    if (!vm) add({id: `vmid-${p.role}`, title, status: 'pass', detail: 'free'})
    else if (vm.name === p.name && vm.config && isAutolabsOwned(vm.config)) add({id: `vmid-${p.role}`, title, status: 'pass', detail: 'exists from an earlier autolabs run; Terraform keeps it'})
    else
      add({
        id: `vmid-${p.role}`,
        title,
        status: 'fail',
        detail: `taken by "${vm.name || '(no name)'}"${vm.template ? ' (a template)' : ''}, not created by autolabs`,
        fix: `Choose a free VMID for vms.${p.role}.vmid in autolabs.yaml (\`pvesh get /cluster/nextid\` shows one).`,
      })
  }
  await guard('template-vmid', `Template VMID ${config.proxmox.templateVmid}`, async () => {
    const slot = await templateSlotStatus(client, node, config.proxmox.templateVmid)
    const title = `Template VMID ${config.proxmox.templateVmid}`
    if (slot.state === 'free') add({id: 'template-vmid', title, status: 'pass', detail: 'free; Terraform will create the template'})
    else if (slot.state === 'autolabs-template') add({id: 'template-vmid', title, status: 'pass', detail: `holds the autolabs template "${slot.name}"`})
    else if (slot.state === 'autolabs-unfinished') add({id: 'template-vmid', title, status: 'warn', detail: slot.detail, fix: 'terraform apply replaces it; nothing to do unless it keeps failing.'})
    else
      add({
        id: 'template-vmid',
        title,
        status: 'fail',
        detail: `taken by "${slot.name}"${slot.template ? ' (a template not made by autolabs)' : ''}`,
        fix: 'Set proxmox.templateVmid in autolabs.yaml to a free VMID; autolabs never modifies a VM it did not create.',
      })
  })

  // 6. Planned IPs against other VMs' cloud-init ipconfig.
  const plannedIds = new Set([...planned.map((p) => p.vmid), config.proxmox.templateVmid])
  const conflicts: string[] = []
  const moving: string[] = []
  for (const vm of vms) {
    if (plannedIds.has(vm.vmid) || !vm.config) continue
    for (const [key, value] of Object.entries(vm.config)) {
      if (!/^ipconfig\d+$/.test(key)) continue
      const ip = /(?:^|,)ip=([\d.]+)\//.exec(value)?.[1]
      const clash = planned.find((p) => p.ip === ip)
      if (!clash) continue
      // The same VM under its old VMID (vms.<role>.vmid changed): Terraform replaces it, so the
      // address is freed first — and only with --allow-replace. Not somebody else's address.
      if (vm.name === clash.name && isAutolabsOwned(vm.config)) moving.push(`${clash.ip} is held by ${vm.name} under its old VMID ${vm.vmid}, which Terraform replaces`)
      else conflicts.push(`${clash.ip} (${clash.name}) is already used by VM ${vm.vmid} "${vm.name}" (${key})`)
    }
  }
  if (conflicts.length > 0)
    add({id: 'ip-conflicts', title: 'Planned IP addresses', status: 'fail', detail: conflicts.join('; '), fix: 'Change network.vms.<role>.ip in autolabs.yaml, or the other VM\'s IP.'})
  else add({id: 'ip-conflicts', title: 'Planned IP addresses', status: 'pass', detail: [`${planned.map((p) => p.ip).join(', ')} not used by other VMs' cloud-init`, ...moving].join('; ')})
}

/**
 * Terraform (>= 1.5) or OpenTofu (>= 1.6): the one named by --terraform / AUTOLABS_TERRAFORM,
 * else `terraform`, else `tofu` on PATH. The detail says which one ran and its version.
 */
export async function terraformCheck(bin: string): Promise<PreflightCheck> {
  try {
    const t = await probeTerraform(bin, {env: terraformEnv(process.env)})
    return {id: 'terraform', title: flavorName(t.flavor), status: 'pass', detail: `${flavorName(t.flavor)} ${t.version} (${t.bin})`}
  } catch (error) {
    if (!(error instanceof UserError)) throw error
    return {id: 'terraform', title: 'Terraform', status: 'fail', detail: error.message, fix: error.suggestion}
  }
}

export async function sshKeyCheck(file: string): Promise<PreflightCheck> {
  const title = 'SSH public key'
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return {id: 'ssh-key', title, status: 'fail', detail: `${file} does not exist`, fix: `Create a key pair: ssh-keygen -t ed25519 -f ${file.replace(/\.pub$/, '')}  (or pass --ssh-public-key)`}
  }
  const line = text.trim().split('\n')[0] ?? ''
  if (!/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/=]+/.test(line))
    return {id: 'ssh-key', title, status: 'fail', detail: `${file} is not an OpenSSH public key`, fix: 'Point ssh.publicKeyFile (or --ssh-public-key) at the .pub file of your key pair.'}
  const priv = file.replace(/\.pub$/, '')
  const hasPrivate = priv !== file && (await access(priv).then(() => true, () => false))
  return hasPrivate
    ? {id: 'ssh-key', title, status: 'pass', detail: `${file} (${line.split(' ')[0]})`}
    : {id: 'ssh-key', title, status: 'warn', detail: `${file} exists but its private key ${priv} does not`, fix: 'autolabs connects with the private key: set ssh.privateKeyFile in autolabs.yaml if it lives elsewhere (or an agent holds it).'}
}

/** The pinned versions against their upstream end of support (src/config/support.ts, docs/versions.md). */
export function versionSupportCheck(config: Config, now: Date): PreflightCheck {
  const id = 'version-support'
  const title = 'Pinned versions'
  const found = supportFindings(config, now).map(
    (f) => `${f.path} ${f.version} ${f.state === 'ended' ? `is past its end of support (${f.endOfSupport})` : `reaches its end of support on ${f.endOfSupport} (in ${f.daysLeft} days)`}, per ${f.source}`,
  )
  found.push(...compatibilityFindings(config))
  found.push(...redisSupportFindings(config))
  if (found.length === 0) return {id, title, status: 'pass', detail: 'every pinned version with a published end date is supported beyond its warning window (90 days; GitLab 30)'}
  return {
    id,
    title,
    status: 'warn',
    detail: found.join('; '),
    fix: `Move to a supported version in autolabs.yaml (the supported versions and their dates: docs/versions.md).`,
  }
}

/** GitLab's HTTPS certificate (services.gitlab.tls), for an https externalUrl; null for http. */
export function gitlabTlsCheck(config: Config, root: string, source: string, now = new Date()): PreflightCheck | null {
  const g = config.services.gitlab
  if (!g.externalUrl?.startsWith('https://')) return null
  const id = 'gitlab-tls'
  const title = 'GitLab HTTPS certificate'
  const host = new URL(g.externalUrl).hostname
  if (g.tls.letsencrypt)
    return {
      id,
      title,
      status: 'warn',
      detail: `GitLab will ask Let's Encrypt for a certificate for ${host}`,
      fix: `That works only if ${host} resolves publicly to gitlab-vm and port 80 is reachable from the internet; otherwise set services.gitlab.tls.certFile and keyFile.`,
    }
  try {
    const t = loadGitlabTls(config, root, source, now)
    if (!t) return null
    const {end, days, left} = certificateLife(t.notAfter, now)
    const detail = `for ${host}, valid until ${end}${t.caPem ? ', private CA' : ''}`
    return days < CERT_WARN_DAYS
      ? {id, title, status: 'warn', detail: `${detail}: expires in ${left}`, fix: 'Renew it, put the new files in place and run `autolabs deploy --only gitlab`.'}
      : {id, title, status: 'pass', detail}
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    return {
      id,
      title,
      status: 'fail',
      detail: error.issues.map((i) => `${i.path}: ${i.message}`).join('; '),
      fix: error.issues.map((i) => i.fix).filter(Boolean).join('; '),
    }
  }
}

export {compareVersions} from '../terraform/binary.js'

function fmtGiB(bytes: number): string {
  return `${(bytes / GiB).toFixed(bytes < 10 * GiB ? 1 : 0)} GiB`
}
