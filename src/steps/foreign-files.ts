import {readdir} from 'node:fs/promises'

import {configSchema} from '../config/schema.js'
import {UsageError} from '../errors.js'
import {closest} from '../ui/suggest.js'
import type {Workspace} from '../workspace/workspace.js'

const KNOWN_KEYS = new Set(Object.keys(configSchema.shape))
const elsewhere = 'Run init in a directory of its own, e.g. `autolabs init --dir ./autolabs` (or set AUTOLABS_DIR). Nothing was written.'

async function entries(dir: string): Promise<string[]> {
  try {
    return await readdir(dir)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw error
  }
}

/**
 * init never writes over what the user had: an autolabs.yaml that is not an autolabs
 * configuration (no known top-level key), or a terraform/ directory in a folder that has no
 * autolabs.yaml (it is someone else's Terraform, and autolabs' .tf files would join it).
 */
export async function refuseForeignFiles(ws: Workspace, existing: {raw: unknown} | undefined): Promise<void> {
  if (existing) {
    const raw = existing.raw
    const keys = raw && typeof raw === 'object' && !Array.isArray(raw) ? Object.keys(raw) : []
    // A misspelt key (netwrok) is still ours: validation names it with "did you mean".
    if (!keys.some((k) => KNOWN_KEYS.has(k) || closest(k, [...KNOWN_KEYS]) !== undefined))
      throw new UsageError(`${ws.configFile} exists but is not an autolabs configuration (it has none of the keys ${[...KNOWN_KEYS].slice(0, 4).join(', ')}, …), so autolabs will not overwrite it.`, {
        suggestion: elsewhere,
      })
    return
  }
  const tf = await entries(ws.terraformDir)
  if (tf.length > 0)
    throw new UsageError(`${ws.terraformDir} already exists (${tf.slice(0, 3).join(', ')}${tf.length > 3 ? ', …' : ''}) and this folder has no autolabs.yaml: autolabs would write its Terraform files beside yours.`, {
      suggestion: elsewhere,
    })
}
