import {readFile} from 'node:fs/promises'

import {derived, imageFileName, renderConfigYaml} from '../config/load.js'
import type {Config} from '../config/schema.js'
import {UserError} from '../errors.js'
import {writeFileAtomic} from '../workspace/fs.js'
import type {Secrets} from '../workspace/secrets.js'
import type {Workspace} from '../workspace/workspace.js'
import {type PinnedImage, resolveDatedImage} from './image.js'
import type {ProvisionResult} from './provision.js'
import {workspaceFiles} from './render-workspace.js'

export interface ImageUpdateResult {
  os: string
  from: {url: string; checksum: string | null}
  to: PinnedImage
  /** False when the pinned build is already the newest. */
  changed: boolean
  /** What the update rebuilds; the VMs are never among them unless --allow-replace. */
  rebuilds: string[]
  /** True when autolabs.yaml was rewritten and Terraform applied (not with --check). */
  applied: boolean
  plan?: ProvisionResult['plan']
}

export interface ImageUpdateOptions {
  ws: Workspace
  config: Config
  secrets: Secrets
  /** Only show what would change. */
  check: boolean
  /** Resolve the newest build (a port for tests). */
  resolve?: (os: Config['image']['os']) => Promise<PinnedImage>
  /** Runs Terraform for the rewritten workspace (provisionWorkspace with rebuildTemplate). */
  provision: (config: Config) => Promise<ProvisionResult>
  log: (message: string) => void
}

/**
 * `autolabs image update`: move to a newer build of the guest image on purpose. It pins the
 * newest dated build (URL + checksum) in autolabs.yaml, re-renders terraform/, and applies:
 * Proxmox downloads the new file and the template is rebuilt from it (the provider imports a
 * disk only at creation, so only a new template makes new VMs get the new image). Running VMs
 * are full clones and stay as they are; a plan that would replace one is refused unless
 * --allow-replace. Idempotent: with the newest build already pinned nothing is done.
 */
export async function updateImage(opts: ImageUpdateOptions): Promise<ImageUpdateResult> {
  const {config} = opts
  const d = derived(config)
  const from = {url: d.imageUrl, checksum: config.image.checksum}
  const to = await (opts.resolve ?? ((os) => resolveDatedImage(os)))(config.image.os)
  const changed = to.url !== config.image.url || to.checksum !== config.image.checksum
  const rebuilds = changed
    ? [`cloud image ${imageFileName(config.image.os, to.url)} (downloaded by Proxmox, checksum verified)`, `template ${config.proxmox.templateVmid} (rebuilt from the new image)`]
    : []
  const result: ImageUpdateResult = {os: config.image.os, from, to, changed, rebuilds, applied: false}
  if (!changed) {
    opts.log(`The image is already the newest ${d.image.title} build: ${to.url}`)
    return result
  }
  opts.log(`${d.image.title}: ${from.url} → ${to.url} (build ${to.serial}, checksum ${to.checksum.slice(0, 16)}…)`)
  opts.log(`Rebuilds: ${rebuilds.join('; ')}. Running VMs keep their disks; VMs created from now on get the new image.`)
  if (opts.check) return result
  const updated: Config = {...config, image: {...config.image, url: to.url, checksum: to.checksum}}
  const text = await readFile(opts.ws.configFile, 'utf8').catch(() => {
    throw new UserError(`Cannot read ${opts.ws.configFile}.`, {suggestion: 'Run `autolabs init` first.'})
  })
  // The pin is written before Terraform runs: after a failure, `autolabs init` or this command
  // again continues with the same build.
  await writeFileAtomic(opts.ws.configFile, renderConfigYaml(updated, text), 0o644)
  for (const f of await workspaceFiles(opts.ws, updated, opts.secrets)) if (!f.onlyIfMissing) await writeFileAtomic(f.path, f.content, f.mode)
  const prov = await opts.provision(updated)
  return {...result, applied: prov.applied, plan: prov.plan}
}
