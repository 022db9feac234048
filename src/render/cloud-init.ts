import {readFile} from 'node:fs/promises'
import {fileURLToPath} from 'node:url'
import {parse} from 'yaml'

import {BugError} from '../errors.js'
import {derived} from '../config/load.js'
import {type Config, type Role, ROLES} from '../config/schema.js'

/** assets/ is a sibling of src/ and of dist/, so the same relative path works from both. */
export const ASSETS_DIR = fileURLToPath(new URL('../../assets/', import.meta.url))

export interface CloudInitInput {
  hostname: string
  domain?: string | null
  user: string
  sshPublicKeys: string[]
  aptProxy?: string | null
}

const q = (v: string) => JSON.stringify(v)

/** Fill the user-data template. Pure: the template text is a parameter. */
export function fillUserData(template: string, input: CloudInitInput): string {
  const values: Record<string, string> = {
    hostname: q(input.hostname),
    fqdn: input.domain ? `fqdn: ${q(`${input.hostname}.${input.domain}`)}\n` : '',
    user: q(input.user),
    ssh_authorized_keys: `[${input.sshPublicKeys.map((k) => q(k.trim())).join(', ')}]`,
    // cloud-init's apt module writes Acquire::http::Proxy (and https) for the proxy.
    apt: input.aptProxy ? `\n# Packages through the configured apt proxy (a cache or the university's proxy).\napt:\n  proxy: ${q(input.aptProxy)}\n` : '',
  }
  const out = template.replaceAll(/\{\{(\w+)\}\}/g, (_, key: string) => {
    if (!(key in values)) throw new BugError(`cloud-init template uses an unknown placeholder {{${key}}}`)
    return values[key]
  })
  // A broken template is our bug, not the user's: fail here rather than at first boot.
  const doc = parse(out) as Record<string, unknown> | null
  if (!doc || doc.hostname !== input.hostname) throw new BugError('rendered cloud-init user-data does not parse back to the same hostname')
  return out
}

export async function readUserDataTemplate(): Promise<string> {
  return readFile(new URL('cloud-init/user-data.yaml', `file://${ASSETS_DIR}`), 'utf8')
}

/**
 * The user-data snippet of every VM, keyed by role: what cloud-init runs at first boot in
 * "snippet" mode. (In "builtin" mode Proxmox generates the user-data itself from the VM's
 * cloud-init settings, and these files are not used.)
 */
export async function renderCloudInit(config: Config, sshPublicKeys: string[]): Promise<Record<Role, string>> {
  const template = await readUserDataTemplate()
  const user = derived(config).sshUser
  const out = {} as Record<Role, string>
  for (const role of ROLES) {
    out[role] = fillUserData(template, {
      hostname: config.vms[role].name,
      domain: config.network.searchDomain,
      user,
      sshPublicKeys,
      aptProxy: config.network.aptProxy,
    })
  }
  return out
}
