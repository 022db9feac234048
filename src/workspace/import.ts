/**
 * `autolabs workspace import`: writes a checked archive (src/workspace/archive.ts) into a
 * workspace. A private-state archive goes into the environment's Git clone; a full one into an
 * empty folder or the same environment's workspace. Another environment is refused, and so is
 * overwriting a file that differs unless asked (--force). The files change together
 * (writeFilesTogether): all or none.
 */
import {existsSync} from 'node:fs'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {parse} from 'yaml'

import {validateConfig} from '../config/load.js'
import {UsageError, UserError} from '../errors.js'
import {describeEnvironment, environmentOf, type EnvironmentIdentity, type OpenedArchive, sameEnvironment} from './archive.js'
import {ensureDir, refuseSymlinkSync, writeFilesTogether} from './fs.js'
import type {Workspace} from './workspace.js'

export interface ImportResult {
  dir: string
  kind: OpenedArchive['index']['kind']
  createdAt: string
  environment: EnvironmentIdentity
  written: string[]
  unchanged: string[]
}

async function configIdentity(source: string, text: string): Promise<EnvironmentIdentity> {
  const {config} = validateConfig(parse(text) ?? {}, source)
  return environmentOf(config)
}

/** Each folder on the way to `rel`, and the file itself, must not be a symbolic link: the import must land in the workspace. */
function refuseLinks(root: string, rel: string): void {
  let cur = root
  for (const seg of rel.split('/')) refuseSymlinkSync((cur = path.join(cur, seg)), 'the files a workspace import writes')
}

export async function importArchive(ws: Workspace, archive: OpenedArchive, opts: {force?: boolean} = {}): Promise<ImportResult> {
  const {index, files} = archive
  const target = existsSync(ws.configFile) ? await configIdentity(ws.configFile, await readFile(ws.configFile, 'utf8')) : undefined
  if (!target && index.kind === 'private') {
    throw new UsageError(`${ws.root} has no autolabs.yaml: a private-state archive restores into the environment's workspace.`, {
      suggestion: `Clone the workspace's Git repository (autolabs.yaml + terraform/), then run the import in it (or pass --dir). The archive is of ${describeEnvironment(index.environment)}.`,
    })
  }
  if (target && !sameEnvironment(target, index.environment)) {
    throw new UserError(`${ws.root} holds another environment: ${describeEnvironment(target)}; the archive is of ${describeEnvironment(index.environment)}.`, {
      suggestion: 'Import into an empty folder (--dir), or into the clone of the archived environment. Nothing was written.',
    })
  }
  const incoming = files.find((f) => f.path === 'autolabs.yaml')
  if (incoming && !sameEnvironment(await configIdentity('autolabs.yaml in the archive', incoming.data.toString('utf8')), index.environment)) {
    throw new UserError("The archive's autolabs.yaml does not describe the environment its index names.", {suggestion: 'Use another copy of the archive. Nothing was written.'})
  }

  const written: string[] = []
  const unchanged: string[] = []
  const conflicts: string[] = []
  for (const f of files) {
    refuseLinks(ws.root, f.path)
    const abs = path.join(ws.root, f.path)
    const current = await readFile(abs).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined
      throw new UserError(`Cannot read ${abs}: ${error.code ?? error.message}.`, {suggestion: 'Fix the file or its permissions, then import again. Nothing was written.'})
    })
    if (current?.equals(f.data)) unchanged.push(f.path)
    else {
      if (current) conflicts.push(f.path)
      written.push(f.path)
    }
  }
  if (conflicts.length > 0 && !opts.force) {
    throw new UserError(`${conflicts.length} file(s) in ${ws.root} differ from the archive: ${conflicts.join(', ')}.`, {
      suggestion: 'Pass --force to replace them with the archive\'s (a newer Terraform state or secrets file would be lost), or import into an empty folder. Nothing was written.',
    })
  }

  // All files change together: each is written to a temp file first, then all are renamed.
  await ensureDir(ws.stateDir, 0o700)
  try {
    await writeFilesTogether(files.filter((f) => written.includes(f.path)).map((f) => ({path: path.join(ws.root, f.path), content: f.data, mode: f.mode})))
  } catch (error) {
    if (error instanceof UserError) throw error
    throw new UserError(`Could not write the workspace files: ${(error as Error).message}`, {suggestion: 'Free space or fix permissions in the target folder, then import again. Nothing was replaced.'})
  }
  return {dir: ws.root, kind: index.kind, createdAt: index.createdAt, environment: index.environment, written, unchanged}
}
