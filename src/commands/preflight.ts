import {Flags} from '@oclif/core'

import {BaseCommand, terraformFlag} from '../base-command.js'
import {statusMark} from '../ui/output.js'
import {hang, terminalWidth} from '../ui/text.js'
import {ExitCode} from '../errors.js'
import {sshJumpHostFlag} from '../ssh/flags.js'
import type {PreflightResult} from '../steps/preflight.js'
import {findWorkspace} from '../workspace/workspace.js'

export default class Preflight extends BaseCommand<typeof Preflight> {
  static override summary = 'Check the Proxmox host, Terraform and the SSH key before anything is created.'
  static override description = `Checks, each reported as pass / warn / fail with the fix: the Proxmox VE version (8.4 or newer, 9.x recommended); the node's CPU and free memory against the three VMs and the design minimum (12 cores, 16 GB); free space on the VM storage against the disks; the image storage has the "import" content type (--enable-import adds it); the bridge exists; the VMIDs are free (or hold what autolabs made); no other VM's cloud-init uses the planned IPs; Terraform >= 1.5 or OpenTofu >= 1.6 (--terraform, else terraform, else tofu on PATH) and its version; the SSH public key exists.

Reads autolabs.yaml; flags override it. Credentials: AUTOLABS_PROXMOX_TOKEN_SECRET, --proxmox-token-secret-file, or .autolabs/secrets.yaml. Exits 1 when any check fails. init runs the same checks before it creates anything.`

  static override examples = [
    {description: 'Check the workspace in the current directory:', command: '<%= config.bin %> <%= command.id %>'},
    {description: 'Machine-readable, and add the import content type if it is missing:', command: '<%= config.bin %> <%= command.id %> --json --enable-import'},
  ]

  static override flags = {
    'proxmox-url': Flags.string({summary: 'Proxmox VE API URL, e.g. https://pve.example:8006.', env: 'AUTOLABS_PROXMOX_URL', helpGroup: 'PROXMOX'}),
    'proxmox-node': Flags.string({summary: 'Node name.', env: 'AUTOLABS_PROXMOX_NODE', helpGroup: 'PROXMOX'}),
    'proxmox-token-id': Flags.string({summary: 'API token id, user@realm!tokenid.', env: 'AUTOLABS_PROXMOX_TOKEN_ID', helpGroup: 'PROXMOX'}),
    'proxmox-token-secret-file': Flags.string({
      summary: "File holding the API token's secret (or set AUTOLABS_PROXMOX_TOKEN_SECRET).",
      env: 'AUTOLABS_PROXMOX_TOKEN_SECRET_FILE',
      helpGroup: 'PROXMOX',
    }),
    'proxmox-password-file': Flags.string({summary: 'File holding the password for password auth (or set AUTOLABS_PROXMOX_PASSWORD).', env: 'AUTOLABS_PROXMOX_PASSWORD_FILE', helpGroup: 'PROXMOX'}),
    'proxmox-fingerprint': Flags.string({summary: "SHA-256 fingerprint of the server's certificate (pins TLS).", env: 'AUTOLABS_PROXMOX_FINGERPRINT', helpGroup: 'PROXMOX'}),
    'proxmox-ca-file': Flags.string({summary: 'CA bundle that signs the server certificate.', env: 'AUTOLABS_PROXMOX_CA_FILE', helpGroup: 'PROXMOX'}),
    insecure: Flags.boolean({summary: 'Do not verify the TLS certificate (dangerous; prefer --proxmox-fingerprint).', env: 'AUTOLABS_INSECURE', helpGroup: 'PROXMOX', default: false}),
    'ssh-public-key': Flags.string({summary: 'Public key file installed on the VMs.', env: 'AUTOLABS_SSH_PUBLIC_KEY'}),
    terraform: terraformFlag,
    'enable-import': Flags.boolean({summary: 'Add the "import" content type to the image storage when it is missing.', env: 'AUTOLABS_ENABLE_IMPORT', default: false}),
    'ssh-jump-host': sshJumpHostFlag,
  }

  public async run(): Promise<PreflightResult> {
    const f = this.flags
    const ws = findWorkspace({dir: f.dir})
    const [{loadConfig, validateConfig}, {loadSecrets}, {resolveAuth, clientFromConfig}, {runPreflight}] = await Promise.all([
      import('../config/load.js'),
      import('../workspace/secrets.js'),
      import('../proxmox/connect.js'),
      import('../steps/preflight.js'),
    ])
    const loaded = await loadConfig(ws)
    // Flags override the file; the merged result is validated again like the file itself.
    const proxmox = {
      ...loaded.config.proxmox,
      ...(f['proxmox-url'] ? {url: f['proxmox-url']} : {}),
      ...(f['proxmox-node'] ? {node: f['proxmox-node']} : {}),
      ...(f['proxmox-token-id'] ? {tokenId: f['proxmox-token-id'], auth: 'token' as const} : {}),
      ...(f['proxmox-fingerprint'] ? {fingerprint: f['proxmox-fingerprint']} : {}),
      ...(f['proxmox-ca-file'] ? {caFile: f['proxmox-ca-file']} : {}),
      ...(f.insecure ? {insecure: true} : {}),
    }
    const ssh = {...loaded.config.ssh, ...(f['ssh-public-key'] ? {publicKeyFile: f['ssh-public-key']} : {})}
    const {config} = validateConfig({...loaded.config, proxmox, ssh}, 'autolabs.yaml + flags')
    for (const w of loaded.warnings) this.warnUser(`${w.path}: ${w.message}`)

    const secrets = await loadSecrets(ws)
    const auth = await resolveAuth(config, {tokenSecretFile: f['proxmox-token-secret-file'], passwordFile: f['proxmox-password-file'], secrets})
    const client = auth ? await clientFromConfig(config, auth, {warn: (m) => this.warnUser(m)}) : null
    let result: PreflightResult
    try {
      // Offer to add "import" when a person is there to answer; otherwise only with the flag.
      const {ask, canPrompt} = await import('../prompts/ask.js')
      const enableImport =
        f['enable-import'] ||
        (canPrompt() && !this.jsonEnabled()
          ? (storage: string) =>
              ask<boolean>(
                {key: 'proxmox.imageStorage', flag: '--enable-import', env: 'AUTOLABS_ENABLE_IMPORT', message: `Storage "${storage}" lacks the "import" content type the cloud image needs. Add it now?`, kind: 'confirm', default: true},
                {interactive: true, yes: false},
              )
          : false)
      const sshRoute = () => import('../ssh/route.js').then((r) => r.sshRouteCheck(config, {override: f['ssh-jump-host']}))
      result = await runPreflight({client, config, workspace: ws, terraformBin: f.terraform, enableImport, sshRoute})
    } finally {
      await client?.close()
    }
    if (!this.jsonEnabled()) process.stdout.write(formatChecks(result, (status, text) => statusMark(status, text), terminalWidth(process.stdout)) + '\n')
    if (!result.ok) process.exitCode = ExitCode.failure
    return result
  }
}

/**
 * Plain text, one check per line, the fix indented below a warning or failure. With `width` (a
 * terminal's columns) long lines wrap under their text instead of running past the edge.
 */
export function formatChecks(result: PreflightResult, paintMark: (status: string, text: string) => string = (_, t) => t, width?: number): string {
  const mark = {pass: 'PASS', warn: 'WARN', fail: 'FAIL'} as const
  const fit = (first: string, text: string, indent: number) => (width === undefined ? first + text : hang(first, text, indent, width))
  const lines = result.checks.flatMap((c) => {
    const m = mark[c.status]
    const head = fit(`${m}  `, `${c.title}: ${c.detail}`, 6)
    return [paintMark(c.status, m) + head.slice(m.length), ...(c.fix && c.status !== 'pass' ? [fit('      fix: ', c.fix, 11)] : [])]
  })
  const fails = result.checks.filter((c) => c.status === 'fail').length
  const warns = result.checks.filter((c) => c.status === 'warn').length
  lines.push('', result.ok ? `Preflight passed${warns ? ` with ${warns} warning${warns > 1 ? 's' : ''}` : ''}.` : `Preflight failed: ${fails} check${fails > 1 ? 's' : ''} to fix before autolabs creates anything.`)
  return lines.join('\n')
}
