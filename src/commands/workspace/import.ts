import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import type {ImportResult} from '../../workspace/import.js'
import {findWorkspace} from '../../workspace/workspace.js'

export default class WorkspaceImport extends BaseCommand<typeof WorkspaceImport> {
  static override summary = 'Restore a workspace from an encrypted archive (workspace export, or a backup\'s workspace.tar.age).'
  static override description = `The archive is decrypted and checked whole (every file against the checksums in its index) before anything is written: a wrong key, a truncated or altered archive writes nothing.

A full archive (workspace export) goes into an empty folder or the same environment's workspace. A private-state archive (backups/<id>/workspace.tar.age, or its copy on database-vm) goes into a clone of the environment's Git repository. Another environment is refused. Files that differ from the archive are replaced only with --force. Modes are restored (.autolabs/ 0700, secrets 0600).`

  static override examples = [
    {description: 'A handover into a new folder:', command: '<%= config.bin %> <%= command.id %> autolabs-handover.tar.age --dir ./autolabs'},
    {description: 'After losing the workstation: clone the Git repository, then', command: '<%= config.bin %> <%= command.id %> 20261201-020000.tar.age --identity-file ~/safe/autolabs.agekey'},
  ]

  static override args = {
    file: Args.string({description: 'The encrypted archive (.tar.age).', required: true}),
  }

  static override flags = {
    'identity-file': Flags.string({summary: 'age identity file (AGE-SECRET-KEY-1…) for an archive encrypted to an age key.', env: 'AUTOLABS_AGE_IDENTITY_FILE'}),
    'passphrase-file': Flags.string({summary: 'File whose first line is the archive\'s passphrase.', env: 'AUTOLABS_BACKUP_PASSPHRASE_FILE'}),
    force: Flags.boolean({summary: 'Replace workspace files that differ from the archive.', env: 'AUTOLABS_FORCE', default: false}),
  }

  public async run(): Promise<ImportResult> {
    const {args} = await this.parse(WorkspaceImport)
    const f = this.flags
    const ws = findWorkspace({dir: f.dir ?? process.cwd()})
    const [{decryptKey}, {openArchive, readArchiveFile}, {importArchive}, {canPrompt}, {derived, validateConfig}, fs, {parse}] = await Promise.all([
      import('../../workspace/archive-key.js'),
      import('../../workspace/archive.js'),
      import('../../workspace/import.js'),
      import('../../prompts/ask.js'),
      import('../../config/load.js'),
      import('node:fs'),
      import('yaml'),
    ])
    const encrypted = await readArchiveFile(args.file)
    const key = await decryptKey({identityFile: f['identity-file'], passphraseFile: f['passphrase-file'], interactive: canPrompt()})
    const opened = await openArchive(encrypted, key, args.file)
    const result = await importArchive(ws, opened, {force: f.force})
    this.info(`Imported ${opened.index.kind === 'full' ? 'the workspace' : 'the private state'} of "${result.environment.name}" (archived ${result.createdAt}) into ${result.dir}: ${result.written.length} written, ${result.unchanged.length} unchanged.`)
    const {config} = validateConfig(parse(fs.readFileSync(ws.configFile, 'utf8')) ?? {}, ws.configFile)
    const sshKey = derived(config).sshPrivateKeyFile
    if (!fs.existsSync(sshKey)) this.warnUser(`the SSH key ${sshKey} (ssh.privateKeyFile) is not on this workstation: status, deploy and backup need it (or an agent holding it).`)
    return result
  }
}
