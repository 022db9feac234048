import {derived, renderConfigYaml} from '../config/load.js'
import type {Config, Role} from '../config/schema.js'
import {ROLES} from '../config/schema.js'
import type {DeployResult} from '../deploy/run.js'
import {UserError} from '../errors.js'
import type {AskContext} from '../prompts/ask.js'
import type {ProxmoxAuth, ProxmoxClient} from '../proxmox/client.js'
import type {TrustDecision} from '../proxmox/trust.js'
import type {SshAccess, SshAccessOptions} from '../ssh/access.js'
import {checkpoint, interruptSignal} from '../util/interrupt.js'
import {READ_LIMITS, readTextFile, writeFilesTogether} from '../workspace/fs.js'
import {registerSecrets, type Secrets, secretsText} from '../workspace/secrets.js'
import type {VmRecord} from '../workspace/state.js'
import type {Workspace} from '../workspace/workspace.js'
import {pinImage} from './image.js'
import {type DiscoveryPort, type InitAnswersFlags, type InitResult, prepareWorkspace} from './init.js'
import type {PreflightCheck} from './preflight.js'
import {workspaceFiles} from './render-workspace.js'

export interface RunInitOptions {
  ws: Workspace
  answers: InitAnswersFlags
  ctx: AskContext
  log: (message: string) => void
  warn: (message: string) => void
  json: boolean
  verbose?: boolean
  /** Stop after provisioning (the stages are left to `autolabs deploy`). */
  skipDeploy?: boolean
  /** Re-create the Terraform token when its secret is lost. */
  rotateToken?: boolean
  /** --terraform: the Terraform or OpenTofu executable (default: resolveTerraformBin()). */
  terraformBin?: string
  /** --ssh-passphrase-file, --ssh-jump-host. */
  ssh?: SshAccessOptions
  /** --allow-replace: apply a plan that destroys or replaces a VM or the template. */
  allowReplace?: boolean
}

export interface LiveInitResult extends InitResult {
  trust: TrustDecision['how']
  preflight: PreflightCheck[]
  terraformAccess: {tokenId: string; changes: string[]}
  vms: VmRecord[]
  ready: Array<{name: string; host: string; fingerprint: string; firstContact: boolean}>
  deploy?: DeployResult
}

const GiB = 1024 ** 3

/**
 * The full init: wizard (with choices read from the API) → workspace → preflight →
 * least-privilege Terraform token → Terraform → VMs ready (host keys pinned) → the stages.
 * Every phase checks before it acts, so running init again continues where it stopped.
 */
export async function runInit(opts: RunInitOptions): Promise<LiveInitResult> {
  const {ws, ctx, log} = opts
  const canAsk = ctx.interactive && !ctx.yes
  // 0. Local prerequisites come before the first question: a missing or old Terraform is
  //    reported now, not after the wizard, the certificate and the token.
  const {flavorName, probeTerraform, resolveTerraformBin} = await import('../terraform/binary.js')
  const tf = await probeTerraform(resolveTerraformBin(opts.terraformBin))
  log(`Using ${flavorName(tf.flavor)} ${tf.version} (${tf.bin}).`)
  const [{ProxmoxClient}, {establishTrust, discover}] = await Promise.all([import('../proxmox/client.js'), import('../proxmox/index.js')])

  // 1. The wizard; after the credentials it connects, so node/storage/bridge are offered from the server.
  let client: ProxmoxClient | undefined
  let trust: TrustDecision | undefined
  const discoverPort = async (answers: Record<string, any>, credentials: {tokenSecret?: string; password?: string}): Promise<DiscoveryPort> => {
    const p = answers.proxmox ?? {}
    trust = await establishTrust({
      url: p.url,
      fingerprint: p.fingerprint,
      caFile: p.caFile,
      insecure: p.insecure,
      canAsk,
      confirm: async (cert) => {
        log(`The Proxmox server at ${p.url} presents a certificate not signed by a known authority:`)
        log(`  subject ${cert.subject}, issuer ${cert.issuer}, valid ${cert.validFrom} – ${cert.validTo}`)
        log(`  SHA-256 fingerprint ${cert.fingerprint}`)
        log('Compare it with `pvenode cert info` on the host.')
        const {confirm} = await import('@inquirer/prompts')
        return confirm({message: 'Trust this certificate and pin it in autolabs.yaml?', default: false}, {output: process.stderr})
      },
    })
    p.fingerprint = trust.fingerprint
    answers.proxmox = p
    const auth: ProxmoxAuth =
      (p.auth ?? 'token') === 'token'
        ? {type: 'token', tokenId: p.tokenId ?? 'root@pam!autolabs', secret: credentials.tokenSecret!}
        : {type: 'password', username: p.username ?? 'root@pam', password: credentials.password!}
    client = await ProxmoxClient.connect({url: p.url, auth, tls: {fingerprint: trust.fingerprint, caFile: trust.caFile, insecure: trust.insecure}, warn: opts.warn})
    const first = await discover(client)
    for (const n of first.notes) opts.warn(n)
    return {
      nodes: first.nodes.map((n) => ({name: n.node, description: n.status})),
      async load(node) {
        const d = node === first.node ? first : await discover(client!, {node})
        const gib = (b: number) => `${Math.floor(b / GiB)} GiB free`
        return {
          defaults: d.defaults,
          vmStorages: d.storages.filter((s) => s.content.includes('images')).map((s) => ({name: `${s.storage} (${s.type}, ${gib(s.avail)})`, value: s.storage})),
          imageStorages: d.storages
            .filter((s) => s.content.includes('import') || s.storage === d.defaults.imageStorage)
            .map((s) => ({name: `${s.storage} (${s.type}, ${gib(s.avail)}${s.content.includes('import') ? '' : ', "import" will be enabled'})`, value: s.storage})),
          bridges: d.bridges.map((b) => ({name: `${b.iface}${b.cidr ? ` (${b.cidr})` : ''}${b.active ? '' : ' inactive'}`, value: b.iface})),
        }
      },
    }
  }

  try {
    const {config, secrets, result} = await prepareWorkspace(ws, opts.answers, ctx, {dryRun: false, discover: discoverPort})
    for (const w of result.warnings) opts.warn(`${w.path}: ${w.message}${w.fix ? ` (${w.fix})` : ''}`)
    if (!client || !trust) throw new UserError('Could not connect to Proxmox.')
    log(`Workspace ${result.created ? 'created' : 'updated'} in ${ws.root}.`)

    // 2. Preflight: nothing is created while any check fails.
    checkpoint()
    const {runPreflight} = await import('./preflight.js')
    const pre = await runPreflight({
      client,
      config,
      workspace: ws,
      terraformBin: tf.bin,
      sshRoute: () => import('../ssh/route.js').then((r) => r.sshRouteCheck(config, {override: opts.ssh?.jumpHost ?? process.env.AUTOLABS_SSH_JUMP_HOST})),
      enableImport: ctx.yes
        ? true
        : canAsk
          ? async (storage: string) => {
              const {confirm} = await import('@inquirer/prompts')
              return confirm({message: `Enable the "import" content type on storage ${storage} (needed for the cloud image)?`, default: true}, {output: process.stderr})
            }
          : false,
    })
    const {statusMark, paint} = await import('../ui/output.js')
    for (const c of pre.checks) log(`  ${statusMark(c.status, c.status === 'pass' ? 'ok  ' : c.status === 'warn' ? 'warn' : 'FAIL', paint.stderr)} ${c.title}: ${c.detail}${c.status !== 'pass' && c.fix ? `\n       fix: ${c.fix}` : ''}`)
    if (!pre.ok)
      throw new UserError('Preflight failed: nothing was created.', {suggestion: 'Fix the checks marked FAIL above (or in `autolabs preflight`), then run `autolabs init` again.'})

    // 3. Least privilege for Terraform (idempotent). A token whose secret was lost is only
    //    re-created with --rotate-token: replacing it silently would break other copies.
    checkpoint()
    const {prepareTerraformToken} = await import('../proxmox/prepare.js')
    let current: Secrets = secrets
    const access = await prepareTerraformToken(client, config, {
      storedTokenId: secrets.proxmox.terraformTokenId,
      storedSecret: secrets.proxmox.terraformTokenSecret,
      rotateToken: opts.rotateToken,
      // Proxmox shows a new token's secret once: it is saved the moment it arrives, whatever
      // signal came meanwhile, together with the tfvars that use it.
      onSecret: async (tokenId, secret) => {
        current = {...secrets, proxmox: {...secrets.proxmox, terraformTokenId: tokenId, terraformTokenSecret: secret}}
        registerSecrets(current)
        await writeFilesTogether([{path: ws.secretsFile, content: secretsText(current), mode: 0o600}, ...generated(await workspaceFiles(ws, config, current))])
      },
    })
    for (const c of access.changes) log(`  Proxmox: ${c}`)
    for (const w of access.warnings) opts.warn(w)

    // 4. Pin the cloud image for good: a dated build's immutable URL with its checksum (and the tfvars, together).
    checkpoint()
    let cfg: Config = config
    const pinning = await pinImage(config)
    if (pinning.action !== 'kept') {
      cfg = {...config, image: {...config.image, url: pinning.image.url, checksum: pinning.image.checksum}}
      const text = (await readTextFile(ws.configFile, {what: 'The configuration', maxBytes: READ_LIMITS.config}))!
      checkpoint()
      await writeFilesTogether([{path: ws.configFile, content: renderConfigYaml(cfg, text), mode: 0o644}, ...generated(await workspaceFiles(ws, cfg, current))])
      log(
        pinning.action === 'pinned'
          ? `Pinned the image ${pinning.image.url} (build ${pinning.image.serial}, checksum ${pinning.image.checksum.slice(0, 16)}…) in autolabs.yaml.`
          : `Migrated image.url from the publisher's moving link to the dated build with the same checksum: ${pinning.image.url}. The template is rebuilt from that identical image; the VMs are kept.`,
      )
    } else if (!access.secretIsNew) {
      await writeFilesTogether(generated(await workspaceFiles(ws, cfg, current)))
    }

    // SSH credentials and route are settled before anything is created (a missing passphrase
    // fails now, not after Terraform), once for the readiness wait and the stages.
    const {openSshAccess} = await import('../ssh/access.js')
    const sshAccess = await openSshAccess(cfg, ws, ROLES.map((role) => cfg.network.vms[role].ip), {log, interactive: canAsk, ...opts.ssh})

    // 5. Terraform: template and the three VMs.
    checkpoint()
    const {provisionWorkspace} = await import('./provision.js')
    const prov = await provisionWorkspace({
      workspace: ws,
      config: cfg,
      secrets: current,
      yes: ctx.yes,
      allowReplace: opts.allowReplace,
      // Same bytes, new URL: rebuilding the template from an identical image loses nothing.
      rebuildTemplate: pinning.action === 'migrated',
      interactive: canAsk,
      log,
      terraformBin: tf.bin,
    })

    // 6. Ready for the stages: SSH up, cloud-init finished, apt free; host keys pinned
    //    (cross-checked through the guest agent where one answers).
    let deployResult: DeployResult | undefined
    let ready
    try {
      checkpoint()
      ready = await waitUntilReady(ws, cfg, client, prov.vms, log, sshAccess)

      // 7. The deployment stages.
      if (!opts.skipDeploy) {
        checkpoint()
        const {deploy, formatDeploySummary} = await import('../deploy/run.js')
        deployResult = await deploy({ws, config: cfg, secrets: current, verbose: opts.verbose, quiet: opts.json, access: sshAccess})
        log(formatDeploySummary(deployResult))
        if (!deployResult.ok) process.exitCode = 1
      }
    } finally {
      await sshAccess.close()
    }
    return {
      ...result,
      trust: trust.how,
      preflight: pre.checks,
      terraformAccess: {tokenId: access.tokenId, changes: access.changes},
      vms: prov.vms,
      ready,
      deploy: deployResult,
    }
  } finally {
    await client?.close()
  }
}

/** The files init renders (not the bookkeeping files later commands own). */
function generated(files: Awaited<ReturnType<typeof workspaceFiles>>) {
  return files.filter((f) => !f.onlyIfMissing)
}

async function waitUntilReady(ws: Workspace, config: Config, client: ProxmoxClient, vms: VmRecord[], log: (m: string) => void, access: SshAccess) {
  const [{waitForReady}, {fingerprintOfPublicKey}] = await Promise.all([import('../ssh/readiness.js'), import('../ssh/known-hosts.js')])
  const d = derived(config)
  const byName = new Map(vms.map((v) => [v.name, v]))
  const targets = await Promise.all(
    ROLES.map(async (role: Role) => {
      const vm = byName.get(config.vms[role].name)
      const host = vm?.ip ?? config.network.vms[role].ip
      let expectedFingerprint: string | undefined
      if (vm) {
        const pub = await client.agentFileRead(config.proxmox.node, vm.vmid, '/etc/ssh/ssh_host_ed25519_key.pub').catch(() => null)
        if (pub) expectedFingerprint = fingerprintOfPublicKey(pub.trim())
      }
      return {name: config.vms[role].name, host, user: d.sshUser, privateKeyPath: access.auth.keyPath, expectedFingerprint}
    }),
  )
  const results = await waitForReady(targets, {knownHostsFile: ws.knownHostsFile, signal: interruptSignal(), onStatus: (vm, status) => log(`  ${vm}: ${status}`), ...access.connectOptions})
  for (const r of results)
    log(`  ${r.name} ready after ${Math.round(r.waitedMs / 1000)} s; SSH host key ${r.fingerprint}${r.firstContact ? ' recorded' : ' verified'}`)
  return results.map((r) => ({name: r.name, host: r.host, fingerprint: r.fingerprint, firstContact: r.firstContact}))
}
