import {Flags} from '@oclif/core'

import path from 'node:path'

import {BaseCommand, terraformFlag} from '../base-command.js'
import {paint} from '../ui/output.js'
import {canPrompt} from '../prompts/ask.js'
import {sshFlags, sshOptions} from '../ssh/flags.js'
import {formatPlan} from '../steps/plan-format.js'
import {type InitResult, prepareWorkspace} from '../steps/init.js'
import {findWorkspace} from '../workspace/workspace.js'

export default class Init extends BaseCommand<typeof Init> {
  static override summary = 'Set up an AutoLabs environment: wizard → workspace → Terraform → the deployment stages.'
  static override description = `Asks for the Proxmox host, credentials, storage, network, SSH key, guest OS and Kubernetes size (defaults from the design document), validates every answer, and writes the workspace: autolabs.yaml, .autolabs/secrets.yaml (generated, 0600), terraform/ and .gitignore.

With --dry-run nothing is contacted: the workspace is written and the plan is printed (VM table, stages and steps per VM). Every question has a flag and an AUTOLABS_* environment variable; --yes accepts the defaults for everything not given. Secrets are read from a hidden prompt, the environment or a file, never from a plain flag.

Running init again on an existing workspace updates it; generated secrets are never regenerated.`

  static override examples = [
    {description: 'See the whole installation without a server (every default):', command: '<%= config.bin %> <%= command.id %> --dry-run --yes --dir ./lab'},
    {
      description: 'Non-interactive, secret from the environment:',
      command: 'AUTOLABS_PROXMOX_TOKEN_SECRET=… <%= config.bin %> <%= command.id %> --yes --proxmox-url https://pve.lan:8006 --proxmox-token-id root@pam!autolabs --proxmox-fingerprint AB:CD:…',
    },
  ]

  static override flags = {
    yes: Flags.boolean({char: 'y', summary: 'Accept defaults for everything not given; no prompts, no confirmations.', env: 'AUTOLABS_YES', default: false}),
    'dry-run': Flags.boolean({summary: 'Write the workspace and print the plan; contact nothing.', default: false}),
    name: Flags.string({summary: 'Environment name (DNS label).', env: 'AUTOLABS_NAME', helpGroup: 'ENVIRONMENT'}),
    'proxmox-url': Flags.string({summary: 'Proxmox VE API URL, e.g. https://pve.example:8006 (port 8006 is the default).', env: 'AUTOLABS_PROXMOX_URL', helpGroup: 'PROXMOX'}),
    'proxmox-node': Flags.string({summary: 'Node name.', env: 'AUTOLABS_PROXMOX_NODE', helpGroup: 'PROXMOX'}),
    'proxmox-auth': Flags.string({summary: 'Authentication method.', options: ['token', 'password'], env: 'AUTOLABS_PROXMOX_AUTH', helpGroup: 'PROXMOX'}),
    'proxmox-token-id': Flags.string({summary: 'API token id, user@realm!tokenid.', env: 'AUTOLABS_PROXMOX_TOKEN_ID', helpGroup: 'PROXMOX'}),
    'proxmox-token-secret-file': Flags.string({
      summary: "File holding the API token's secret (or set AUTOLABS_PROXMOX_TOKEN_SECRET).",
      env: 'AUTOLABS_PROXMOX_TOKEN_SECRET_FILE',
      helpGroup: 'PROXMOX',
    }),
    'proxmox-username': Flags.string({summary: 'User for password auth, user@realm.', env: 'AUTOLABS_PROXMOX_USERNAME', helpGroup: 'PROXMOX'}),
    'proxmox-password-file': Flags.string({summary: 'File holding the password (or set AUTOLABS_PROXMOX_PASSWORD).', env: 'AUTOLABS_PROXMOX_PASSWORD_FILE', helpGroup: 'PROXMOX'}),
    'proxmox-fingerprint': Flags.string({summary: "SHA-256 fingerprint of the server's certificate (pins TLS).", env: 'AUTOLABS_PROXMOX_FINGERPRINT', helpGroup: 'PROXMOX'}),
    'proxmox-ca-file': Flags.string({summary: 'CA bundle that signs the server certificate.', env: 'AUTOLABS_PROXMOX_CA_FILE', helpGroup: 'PROXMOX'}),
    insecure: Flags.boolean({summary: 'Do not verify the TLS certificate (dangerous; prefer --proxmox-fingerprint).', env: 'AUTOLABS_INSECURE', helpGroup: 'PROXMOX', default: false}),
    'vm-storage': Flags.string({summary: 'Storage for VM disks (content images).', env: 'AUTOLABS_VM_STORAGE', helpGroup: 'PROXMOX'}),
    'image-storage': Flags.string({summary: 'File storage for the cloud image (content import).', env: 'AUTOLABS_IMAGE_STORAGE', helpGroup: 'PROXMOX'}),
    bridge: Flags.string({summary: 'Bridge the VMs attach to.', env: 'AUTOLABS_BRIDGE', helpGroup: 'PROXMOX'}),
    subnet: Flags.string({summary: 'VM subnet, CIDR.', env: 'AUTOLABS_SUBNET', helpGroup: 'NETWORK'}),
    gateway: Flags.string({summary: 'Gateway address.', env: 'AUTOLABS_GATEWAY', helpGroup: 'NETWORK'}),
    'gitlab-ip': Flags.string({summary: 'gitlab-vm address.', env: 'AUTOLABS_GITLAB_IP', helpGroup: 'NETWORK'}),
    'database-ip': Flags.string({summary: 'database-vm address.', env: 'AUTOLABS_DATABASE_IP', helpGroup: 'NETWORK'}),
    'k8s-ip': Flags.string({summary: 'k8s-vm address.', env: 'AUTOLABS_K8S_IP', helpGroup: 'NETWORK'}),
    dns: Flags.string({summary: 'DNS servers, comma-separated.', env: 'AUTOLABS_DNS', helpGroup: 'NETWORK'}),
    'apt-proxy': Flags.string({summary: 'apt proxy URL for the VMs ("" for none).', env: 'AUTOLABS_APT_PROXY', helpGroup: 'NETWORK'}),
    'ssh-public-key': Flags.string({summary: 'Public key file installed on the VMs.', env: 'AUTOLABS_SSH_PUBLIC_KEY', helpGroup: 'VMS'}),
    os: Flags.string({summary: 'Guest OS: ubuntu-22.04, ubuntu-24.04 or debian-12.', env: 'AUTOLABS_OS', helpGroup: 'VMS'}),
    'k8s-cores': Flags.integer({summary: 'k8s-vm cores (4–16).', env: 'AUTOLABS_K8S_CORES', helpGroup: 'VMS'}),
    'rotate-token': Flags.boolean({summary: "Re-create autolabs' Terraform API token when its secret is lost (the old secret stops working).", env: 'AUTOLABS_ROTATE_TOKEN', default: false}),
    'allow-replace': Flags.boolean({
      summary: 'Apply a Terraform plan that destroys or replaces a VM or the template (their disks are lost). --yes alone never does.',
      env: 'AUTOLABS_ALLOW_REPLACE',
      default: false,
    }),
    'skip-deploy': Flags.boolean({summary: 'Stop after the VMs are created and ready; run the stages later with `autolabs deploy`.', env: 'AUTOLABS_SKIP_DEPLOY', default: false}),
    'k8s-memory': Flags.string({summary: 'k8s-vm memory, e.g. 8G–16G or MiB.', env: 'AUTOLABS_K8S_MEMORY', helpGroup: 'VMS'}),
    terraform: terraformFlag,
    ...sshFlags,
  }

  public async run(): Promise<InitResult> {
    const f = this.flags
    const ws = findWorkspace({dir: f.dir})
    const ctx = {interactive: canPrompt() && !this.jsonEnabled(), yes: f.yes}
    const answers = {
      name: f.name,
      proxmoxUrl: f['proxmox-url'],
      proxmoxNode: f['proxmox-node'],
      proxmoxAuth: f['proxmox-auth'] as 'token' | 'password' | undefined,
      proxmoxTokenId: f['proxmox-token-id'],
      proxmoxTokenSecretFile: f['proxmox-token-secret-file'],
      proxmoxUsername: f['proxmox-username'],
      proxmoxPasswordFile: f['proxmox-password-file'],
      proxmoxFingerprint: f['proxmox-fingerprint'],
      proxmoxCaFile: f['proxmox-ca-file'],
      insecure: f.insecure,
      vmStorage: f['vm-storage'],
      imageStorage: f['image-storage'],
      bridge: f.bridge,
      subnet: f.subnet,
      gateway: f.gateway,
      gitlabIp: f['gitlab-ip'],
      databaseIp: f['database-ip'],
      k8sIp: f['k8s-ip'],
      dns: f.dns?.split(',').map((s) => s.trim()).filter(Boolean),
      sshPublicKey: f['ssh-public-key'],
      os: f.os,
      k8sCores: f['k8s-cores'],
      k8sMemory: f['k8s-memory'],
      aptProxy: f['apt-proxy'],
    }

    if (f['dry-run']) {
      const {result} = await prepareWorkspace(ws, answers, ctx, {dryRun: true})
      for (const w of result.warnings) this.warnUser(`${w.path}: ${w.message}${w.fix ? ` (${w.fix})` : ''}`)
      if (!this.jsonEnabled()) {
        process.stdout.write(formatPlan(result.plan, {color: paint.stdout}) + '\n')
        this.info(`\nDry run: workspace ${result.created ? 'written' : 'updated'} in ${ws.root}; nothing was contacted or created.`)
        if (result.secretsGenerated.length > 0) this.info(`Generated secrets (in .autolabs/secrets.yaml, 0600): ${result.secretsGenerated.join(', ')}`)
        this.info(`\n${paint.stderr.bold('Next:')} ${nextCommand(ws.root, result.plan.proxmox.url)}`)
      }
      return result
    }

    const {runInit} = await import('../steps/init-run.js')
    return runInit({ws, answers, ctx, log: (m) => this.info(m), warn: (m) => this.warnUser(m), json: this.jsonEnabled(), verbose: f.verbose, skipDeploy: f['skip-deploy'], rotateToken: f['rotate-token'], ssh: sshOptions(f, ctx.interactive && !f.yes), terraformBin: f.terraform, allowReplace: f['allow-replace']})
  }
}

/** The command that turns a dry run into the real thing: same workspace, the host still missing. */
export function nextCommand(root: string, url: string): string {
  const rel = path.relative(process.cwd(), root)
  const dir = rel === '' ? '' : ` --dir ${/^[\w./-]+$/.test(rel) ? rel : JSON.stringify(rel)}`
  if (/\/\/pve\.example[:/]/.test(url)) return `\`autolabs init${dir} --proxmox-url <your Proxmox host>\` creates the VMs.`
  return `\`autolabs preflight${dir}\` checks the host, then \`autolabs init${dir}\` creates the VMs.`
}
