/**
 * Everything a command needs to reach the VMs over SSH, settled once per run before the first
 * connection: the credentials (src/ssh/auth.ts) and the route (src/ssh/route.ts), with the jump
 * host's connection shared by every session.
 *
 *   const access = await openSshAccess(config, ws, ips, {passphraseFile, interactive: canPrompt()})
 *   connectSsh(target, {knownHostsFile, ...access.connectOptions})   // deploy, status, backup, …
 *   waitForReady(targets, {knownHostsFile, ...access.connectOptions})
 *   await access.close()
 */
import os from 'node:os'
import path from 'node:path'

import {derived} from '../config/load.js'
import type {Config} from '../config/schema.js'
import type {Workspace} from '../workspace/workspace.js'
import {resolveSshAuth, type SshAuth} from './auth.js'
import {formatJump} from './jump-spec.js'
import {JumpHost} from './jump.js'
import {chooseRoute, type SshRoute, type TcpProbe} from './route.js'

export const JUMP_HOST_ENV = 'AUTOLABS_SSH_JUMP_HOST'

export interface SshAccessOptions {
  /** --ssh-passphrase-file. */
  passphraseFile?: string
  /** --ssh-jump-host; default AUTOLABS_SSH_JUMP_HOST, then ssh.jumpHost. */
  jumpHost?: string
  /** A person can answer a hidden prompt (terminal, not --json). */
  interactive?: boolean
  env?: NodeJS.ProcessEnv
  /** One line about the route, for the user (stderr). */
  log?: (line: string) => void
  probe?: TcpProbe
}

export interface SshAccess {
  auth: SshAuth
  route: SshRoute
  jump?: JumpHost
  /** Spread into connectSsh's / waitForReady's options. */
  connectOptions: {auth: SshAuth; jump?: JumpHost}
  close(): Promise<void>
}

function expandHome(p: string): string {
  return p.startsWith('~/') ? path.join(os.homedir(), p.slice(2)) : p
}

export async function openSshAccess(config: Config, ws: Workspace, addresses: string[], o: SshAccessOptions = {}): Promise<SshAccess> {
  const env = o.env ?? process.env
  const d = derived(config)
  const keyPath = path.resolve(ws.root, expandHome(d.sshPrivateKeyFile))
  const publicKeyPath = path.resolve(ws.root, expandHome(d.sshPublicKeyFile))
  const askPassphrase = o.interactive
    ? async (message: string) => {
        const {promptHidden} = await import('../prompts/ask.js')
        return promptHidden(message)
      }
    : undefined
  const [auth, route] = await Promise.all([
    resolveSshAuth({keyPath, publicKeyPath, passphraseFile: o.passphraseFile, env, askPassphrase}),
    chooseRoute(config, addresses, {override: o.jumpHost ?? env[JUMP_HOST_ENV], probe: o.probe}),
  ])
  let jump: JumpHost | undefined
  if (route.kind === 'jump') {
    jump = new JumpHost(route.jump, {
      auth,
      knownHostsFile: ws.knownHostsFile,
      expectedFingerprint: config.ssh.jumpHostFingerprint ?? undefined,
    })
    o.log?.(`SSH goes through the jump host ${formatJump(route.jump)} (${route.why}).`)
  }
  return {
    auth,
    route,
    jump,
    connectOptions: {auth, jump},
    close: async () => {
      await jump?.close()
    },
  }
}
