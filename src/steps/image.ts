import path from 'node:path'

import {derived} from '../config/load.js'
import type {Config} from '../config/schema.js'
import {UserError} from '../errors.js'

/**
 * The cloud image's published checksum. Proxmox downloads the image itself and verifies it
 * against this value (bpg `proxmox_download_file.checksum`); autolabs only reads the publisher's
 * checksum list (SHA256SUMS / SHA512SUMS, over verified HTTPS) once, at init, and pins the result
 * in autolabs.yaml (`image.checksum`).
 */
export function findChecksum(sumsText: string, fileName: string): string | undefined {
  for (const line of sumsText.split('\n')) {
    const m = /^([0-9a-f]{64}|[0-9a-f]{128})\s+\*?(\S+)\s*$/i.exec(line.trim())
    if (m && path.basename(m[2]) === fileName) return m[1].toLowerCase()
  }
  return undefined
}

export async function resolveImageChecksum(config: Config, fetchFn: typeof fetch = fetch, timeoutMs = 30_000): Promise<string> {
  if (config.image.checksum) return config.image.checksum
  const d = derived(config)
  if (config.image.url)
    throw new UserError(`image.url is set to ${config.image.url} but image.checksum is empty.`, {
      suggestion: "Set image.checksum in autolabs.yaml to the image's SHA-256 (or SHA-512): a custom image cannot be verified otherwise.",
      exitCode: 2,
    })
  const fileName = path.basename(new URL(d.imageUrl).pathname)
  let text: string
  try {
    const res = await fetchFn(d.image.checksumUrl, {signal: AbortSignal.timeout(timeoutMs)})
    if (!res.ok) throw new Error(`HTTP ${res.status}`)
    text = await res.text()
  } catch (error) {
    throw new UserError(`Cannot read the image checksum list ${d.image.checksumUrl}: ${(error as Error).message}`, {
      suggestion: 'Check the workstation can reach it, or set image.checksum (and image.url for a mirror) in autolabs.yaml.',
    })
  }
  const sum = findChecksum(text, fileName)
  if (!sum)
    throw new UserError(`${d.image.checksumUrl} lists no checksum for ${fileName}.`, {
      suggestion: 'Set image.checksum in autolabs.yaml to the published checksum of the image.',
    })
  return sum
}
