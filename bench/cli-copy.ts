import {cp, mkdtemp, rm, symlink} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {ROOT} from '../test/lab/deploy-support.js'

/**
 * A private copy of the built CLI (bin, dist, manifest; node_modules linked): helpers working
 * in the same checkout rebuild dist/ at any time, which would break a long benchmark midway.
 */
export async function snapshotCli(): Promise<{bin: string; remove: () => Promise<void>}> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-cli-'))
  for (const f of ['bin', 'dist', 'package.json', 'oclif.manifest.json', 'assets']) await cp(path.join(ROOT, f), path.join(dir, f), {recursive: true})
  await symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'))
  return {bin: path.join(dir, 'bin/run.js'), remove: () => rm(dir, {recursive: true, force: true})}
}
