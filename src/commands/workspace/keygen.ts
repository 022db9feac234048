import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'

export interface KeygenResult {
  identityFile: string
  recipient: string
}

export default class WorkspaceKeygen extends BaseCommand<typeof WorkspaceKeygen> {
  static override summary = 'Make an age key pair for the workspace archives: the secret key to FILE (0600), the public key printed.'
  static override description = `Put the printed public key (age1…) in autolabs.yaml as backup.recipients: every backup then encrypts the private state to it without asking for anything. Keep FILE where losing this workstation does not lose it too (a password manager, a USB key, a colleague): it is the only way to open those archives. Same format as age-keygen.`

  static override examples = ['<%= config.bin %> <%= command.id %> /media/usb/autolabs.agekey']

  static override args = {
    file: Args.string({description: 'Where to write the secret key (never overwritten without --force).', required: true}),
  }

  static override flags = {
    force: Flags.boolean({summary: 'Overwrite FILE if it exists.', env: 'AUTOLABS_FORCE', default: false}),
  }

  public async run(): Promise<KeygenResult> {
    const {args} = await this.parse(WorkspaceKeygen)
    const [age, {registerSecret}, {writeNewFile}, path] = await Promise.all([import('age-encryption'), import('../../util/redact.js'), import('../../workspace/fs.js'), import('node:path')])
    const identity = await age.generateIdentity()
    registerSecret(identity)
    const recipient = await age.identityToRecipient(identity)
    const file = path.resolve(args.file)
    await writeNewFile(file, `# created: ${new Date().toISOString()} by autolabs workspace keygen\n# public key: ${recipient}\n${identity}\n`, {mode: 0o600, overwrite: this.flags.force, flag: '--force'})
    this.info(`Wrote the secret key to ${file} (0600). Keep it off this workstation.`)
    this.info(`Public key: ${recipient}\nAdd it to autolabs.yaml:\n  backup:\n    recipients: [${recipient}]`)
    if (!this.jsonEnabled()) process.stdout.write(`${recipient}\n`)
    return {identityFile: file, recipient}
  }
}
