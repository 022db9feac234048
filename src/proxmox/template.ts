import type {ProxmoxClient} from './client.js'
import {ProxmoxServerError} from './errors.js'
import type {VmConfig} from './types.js'

/**
 * The template VM (VMID 9000 by default) is created by Terraform (bpg/proxmox:
 * proxmox_download_file + a `template = true` VM), never by autolabs through the API, so
 * there is one owner and Terraform's state always knows it. autolabs only checks the slot:
 * free, or already holding the template autolabs' Terraform made (tagged / described
 * "autolabs"). Anything else there is somebody else's VM and must not be touched.
 */
export type TemplateSlot =
  | {state: 'free'}
  | {state: 'autolabs-template'; name: string}
  | {state: 'autolabs-unfinished'; name: string; detail: string}
  | {state: 'foreign'; name: string; template: boolean}

export function isAutolabsOwned(config: VmConfig): boolean {
  const tags = (config.tags ?? '').split(/[;,\s]+/)
  return tags.includes('autolabs') || /autolabs/i.test(decodeURIComponentSafe(config.description ?? ''))
}

export async function templateSlotStatus(client: ProxmoxClient, node: string, vmid: number): Promise<TemplateSlot> {
  let config: VmConfig
  try {
    config = await client.vmConfig(node, vmid)
  } catch (error) {
    if (error instanceof ProxmoxServerError && /does not exist/.test(error.reason)) return {state: 'free'}
    throw error
  }
  const name = config.name ?? `VM ${vmid}`
  const template = config.template === '1'
  if (!isAutolabsOwned(config)) return {state: 'foreign', name, template}
  if (!template) return {state: 'autolabs-unfinished', name, detail: 'created by autolabs but not converted to a template (an interrupted terraform apply)'}
  return {state: 'autolabs-template', name}
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}
