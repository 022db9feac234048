import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../base-command.js'
import type {VerifyResult} from '../../backup/verify.js'
import {canPrompt} from '../../prompts/ask.js'
import {sshFlags, sshOptions} from '../../ssh/flags.js'
import {findWorkspace} from '../../workspace/workspace.js'

export default class BackupVerify extends BaseCommand<typeof BackupVerify> {
  static override summary = 'Check a backup: every file against its SHA-256, the PostgreSQL dump restored into a scratch cluster and compared, the base backup replayed with the WAL archive.'
  static override description = `The scratch cluster runs on the database VM (same PostgreSQL major version, unix socket only, in /var/tmp, removed afterwards; it needs free disk about the size of the data). The dump is replayed into it, dumped again, and compared database by database with the original. A base backup is unpacked into such a scratch cluster and replayed through the VM's WAL archive to its end: it must reach a consistent state and answer. Exit 1 when anything does not match.`
  static override examples = [{description: 'Verify one backup:', command: '<%= config.bin %> <%= command.id %> 20261125-020000'}]
  static override args = {id: Args.string({description: 'Backup id (see `autolabs backup list`).', required: true})}
  static override flags = {
    'checksums-only': Flags.boolean({summary: 'Skip the restore into a scratch cluster.', env: 'AUTOLABS_VERIFY_CHECKSUMS_ONLY', default: false}),
    ...sshFlags,
  }

  public async run(): Promise<VerifyResult> {
    const {args, flags} = await this.parse(BackupVerify)
    const ws = findWorkspace({dir: flags.dir})
    const [{openDayTwo}, {verifyBackup}, {findBackup}] = await Promise.all([import('../../status/context.js'), import('../../backup/verify.js'), import('../../backup/manifest.js')])
    // SSH is settled up front (a passphrase asked before any output) only when a scratch cluster will run.
    const onVm = !flags['checksums-only'] && (await findBackup(ws.backupsDir, args.id)).manifest.parts.some((p) => p.status === 'ok' && (p.part === 'postgres' || p.part === 'basebackup'))
    const ctx = await openDayTwo(ws, {warn: (m) => this.warnUser(m), withProxmox: false, ssh: onVm ? sshOptions(flags, canPrompt() && !this.jsonEnabled()) : undefined})
    try {
      const r = await verifyBackup(ws.backupsDir, args.id, {connectDatabase: () => ctx.connect('database'), restoreCheck: !flags['checksums-only'], onProgress: (m) => this.info(m)})
      if (!this.jsonEnabled()) {
        const lines = r.files.map((f) => `${f.ok ? 'ok  ' : 'FAIL'}  ${f.part}/${f.path}: ${f.detail}`)
        if (r.etcd) lines.push(`${r.etcd.ok ? 'ok  ' : 'FAIL'}  etcd snapshot: ${r.etcd.detail}`)
        if (r.basebackup) lines.push(`${r.basebackup.ok ? 'ok  ' : 'FAIL'}  base backup replay: ${r.basebackup.detail} (${(r.basebackup.durationMs / 1000).toFixed(1)} s)`)
        if (r.postgres) lines.push(`${r.postgres.ok ? 'ok  ' : 'FAIL'}  postgres restore: ${r.postgres.detail} (${(r.postgres.durationMs / 1000).toFixed(1)} s)`)
        lines.push(r.ok ? `Backup ${r.id} verified.` : `Backup ${r.id} FAILED verification.`)
        process.stdout.write(lines.join('\n') + '\n')
      }
      if (!r.ok) process.exitCode = 1
      return r
    } finally {
      await ctx.close()
    }
  }
}
