/** The SSH flags of every command that connects to the VMs (only oclif here: `--help` stays light). */
import {Flags} from '@oclif/core'

export const sshJumpHostFlag = Flags.string({
  summary: 'How SSH reaches the VMs: auto, none, or user@host[:port] (overrides ssh.jumpHost).',
  env: 'AUTOLABS_SSH_JUMP_HOST',
  helpGroup: 'SSH',
})

export const sshFlags = {
  'ssh-passphrase-file': Flags.string({
    summary: "File holding the SSH key's passphrase (else AUTOLABS_SSH_PASSPHRASE, ssh-agent, or a hidden prompt).",
    env: 'AUTOLABS_SSH_PASSPHRASE_FILE',
    helpGroup: 'SSH',
  }),
  'ssh-jump-host': sshJumpHostFlag,
}

/** What a command's SSH flags ask for, as openSshAccess takes it. */
export function sshOptions(flags: {'ssh-passphrase-file'?: string; 'ssh-jump-host'?: string}, interactive: boolean) {
  return {passphraseFile: flags['ssh-passphrase-file'], jumpHost: flags['ssh-jump-host'], interactive}
}
