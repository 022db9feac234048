import {readFile, rm} from 'node:fs/promises'
import path from 'node:path'
import {parse, stringify} from 'yaml'

import {configSchema} from '../config/schema.js'
import {ensureDir, writeFileAtomic} from '../workspace/fs.js'
import {generateSecrets, loadSecrets, saveSecrets} from '../workspace/secrets.js'
import type {Workspace} from '../workspace/workspace.js'

/**
 * The wizard's answers, kept when a run stops before the workspace is written (a later step
 * failed, the host was unreachable, Ctrl+C) and offered as defaults by the next `init`.
 * Never a secret: a typed token secret or password goes to the 0600 secrets file only.
 */
export const draftFile = (ws: Workspace) => path.join(ws.stateDir, 'answers.yaml')

export async function loadDraft(ws: Workspace): Promise<Record<string, any> | undefined> {
  let text: string
  try {
    text = await readFile(draftFile(ws), 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
  const raw = parse(text)
  // A draft that no longer parses as a configuration is dropped, not trusted.
  return raw && typeof raw === 'object' && configSchema.safeParse(raw).success ? raw : undefined
}

export async function saveDraft(ws: Workspace, answers: Record<string, unknown>, credentials: {tokenSecret?: string; password?: string}): Promise<void> {
  await ensureDir(ws.stateDir, 0o700)
  // The workspace's .gitignore is not written yet: keep this folder out of Git on its own.
  await writeFileAtomic(path.join(ws.stateDir, '.gitignore'), '*\n', 0o600)
  const header = '# autolabs init: the answers of a run that stopped; offered as defaults by the next `autolabs init`.\n'
  await writeFileAtomic(draftFile(ws), header + stringify(answers), 0o600)
  if (!credentials.tokenSecret && !credentials.password) return
  const secrets = (await loadSecrets(ws)) ?? generateSecrets(configSchema.parse(answers).services.postgres.databases)
  await saveSecrets(ws, {...secrets, proxmox: {...secrets.proxmox, ...credentials}})
}

export async function clearDraft(ws: Workspace): Promise<void> {
  await rm(draftFile(ws), {force: true})
}
