import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import {AGE_RECIPIENT} from '../../config/schema.js'
import {UsageError} from '../../errors.js'
import {findWorkspace} from '../../workspace/workspace.js'

export interface ExportResult {
  file: string
  bytes: number
  sha256: string
  encryptedWith: string
  environment: {name: string; proxmoxUrl: string; node: string; vmids: number[]}
  files: string[]
}

export default class WorkspaceExport extends BaseCommand<typeof WorkspaceExport> {
  static override summary = 'Write the whole workspace (Git part and private state) to one age-encrypted archive.'
  static override description = `Hands the environment to another workstation or person: autolabs.yaml, terraform/ (without provider binaries), .autolabs/ (secrets, state, pinned host keys, kubeconfig; not logs) and the Terraform state and values, in a tar encrypted with age (https://age-encryption.org).

Encrypted to --recipient or backup.recipients (age public keys), else with a passphrase (AUTOLABS_BACKUP_PASSPHRASE, --passphrase-file, or asked twice). Restore with \`autolabs workspace import FILE\`, or by hand: age -d -o ws.tar FILE && tar -xf ws.tar. The file is written 0600 and never overwritten without --force.`

  static override examples = [
    {description: 'With a passphrase from the environment:', command: 'AUTOLABS_BACKUP_PASSPHRASE=… <%= config.bin %> <%= command.id %> ../autolabs-handover.tar.age'},
    {description: 'To a colleague\'s age key:', command: '<%= config.bin %> <%= command.id %> handover.tar.age --recipient age1…'},
  ]

  static override args = {
    file: Args.string({description: 'The archive to write (e.g. autolabs-handover.tar.age).', required: true}),
  }

  static override flags = {
    recipient: Flags.string({summary: 'age public key (age1…) to encrypt to, instead of backup.recipients (repeatable).', multiple: true, env: 'AUTOLABS_WORKSPACE_RECIPIENT'}),
    'passphrase-file': Flags.string({summary: 'File whose first line is the passphrase (when no recipient is set).', env: 'AUTOLABS_BACKUP_PASSPHRASE_FILE'}),
    force: Flags.boolean({summary: 'Overwrite FILE if it exists.', env: 'AUTOLABS_FORCE', default: false}),
  }

  public async run(): Promise<ExportResult> {
    const {args} = await this.parse(WorkspaceExport)
    const f = this.flags
    for (const r of f.recipient ?? []) {
      if (!AGE_RECIPIENT.test(r)) throw new UsageError(`--recipient ${r} is not an age public key.`, {suggestion: 'Pass a key like age1… (from `autolabs workspace keygen` or `age-keygen`).'})
    }
    const ws = findWorkspace({dir: f.dir})
    const [{loadConfig}, {encryptKey}, {describeKey, packArchive}, {writeNewFile}, {canPrompt}, {createHash}, path] = await Promise.all([
      import('../../config/load.js'),
      import('../../workspace/archive-key.js'),
      import('../../workspace/archive.js'),
      import('../../workspace/fs.js'),
      import('../../prompts/ask.js'),
      import('node:crypto'),
      import('node:path'),
    ])
    const {config} = await loadConfig(ws)
    const file = path.resolve(args.file)
    const key = await encryptKey(config, {recipients: f.recipient, passphraseFile: f['passphrase-file'], interactive: canPrompt()})
    const {bytes, index} = await packArchive(ws, config, {kind: 'full', key, createdBy: `autolabs ${this.config.version}`})
    await writeNewFile(file, bytes, {mode: 0o600, overwrite: f.force, flag: '--force'})
    const result: ExportResult = {
      file,
      bytes: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      encryptedWith: describeKey(key),
      environment: index.environment,
      files: index.files.map((x) => x.path),
    }
    this.info(`Exported ${index.files.length} files of "${config.name}" to ${file} (${bytes.length} bytes, encrypted with ${result.encryptedWith}).`)
    this.info(`On the other side: autolabs workspace import ${path.basename(file)} --dir <empty folder>`)
    return result
  }
}
