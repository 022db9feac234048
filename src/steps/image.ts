import path from 'node:path'

import {IMAGES, isMovingImageUrl, type GuestOs} from '../config/catalog.js'
import type {Config} from '../config/schema.js'
import {UserError} from '../errors.js'

/**
 * Images pinned for good. The publisher's "current"/"latest" URL downloads a different file
 * every few days, so a checksum pinned next to it stops matching and Proxmox's download fails on
 * every new server. autolabs pins a dated build instead: its immutable URL (Ubuntu's
 * releases/<codename>/release-<serial>/, Debian's <codename>/<serial>/) together with the
 * checksum from that build's own list. Proxmox downloads and verifies it
 * (proxmox_download_file.checksum); autolabs only reads the publisher's listing and checksum
 * list, over verified HTTPS, at init and at `autolabs image update`.
 */

export interface PinnedImage {
  url: string
  checksum: string
  /** The publisher's build serial, e.g. 20261120 (Ubuntu) or 20261110-2293 (Debian). */
  serial: string
}

type Fetch = typeof fetch

export function findChecksum(sumsText: string, fileName: string): string | undefined {
  for (const line of sumsText.split('\n')) {
    const m = /^([0-9a-f]{64}|[0-9a-f]{128})\s+\*?(\S+)\s*$/i.exec(line.trim())
    if (m && path.basename(m[2]) === fileName) return m[1].toLowerCase()
  }
  return undefined
}

/**
 * The dated builds in a directory listing (Apache's autoindex, as both publishers serve it:
 * `<a href="release-20261120/">`), newest first. Serials sort as numbers part by part.
 */
export function datedBuilds(listingHtml: string, serialDir: RegExp): string[] {
  const serials = new Set<string>()
  for (const m of listingHtml.matchAll(/href="([^"/?]+)\/"/g)) {
    const s = serialDir.exec(m[1])?.[1]
    if (s) serials.add(s)
  }
  const key = (s: string) => s.split(/[.-]/).map(Number)
  return [...serials].sort((a, b) => {
    const [x, y] = [key(a), key(b)]
    for (let i = 0; i < Math.max(x.length, y.length); i++) if ((x[i] ?? -1) !== (y[i] ?? -1)) return (y[i] ?? -1) - (x[i] ?? -1)
    return 0
  })
}

async function getText(url: string, fetchFn: Fetch, timeoutMs: number, what: string): Promise<string | undefined> {
  let res: Response
  try {
    res = await fetchFn(url, {signal: AbortSignal.timeout(timeoutMs)})
  } catch (error) {
    throw new UserError(`Cannot read ${what} ${url}: ${(error as Error).message}`, {
      suggestion: 'Check that this workstation can reach it (a proxy: HTTPS_PROXY), or pin image.url (a dated URL or your mirror) and image.checksum in autolabs.yaml.',
    })
  }
  if (res.status === 404) return undefined
  if (!res.ok)
    throw new UserError(`Cannot read ${what} ${url}: HTTP ${res.status}`, {suggestion: 'Try again later, or pin image.url and image.checksum in autolabs.yaml.'})
  return res.text()
}

/** How many dated builds to look through (a build still being published has no checksum list yet). */
const MAX_BUILDS = 40

/**
 * The newest dated build of `os`, or — with `checksum` — the build whose checksum list holds
 * that checksum (the migration of a workspace that pinned a checksum next to a moving URL).
 */
export async function resolveDatedImage(os: GuestOs, opts: {checksum?: string; fetchFn?: Fetch; timeoutMs?: number} = {}): Promise<PinnedImage> {
  const img = IMAGES[os]
  const fetchFn = opts.fetchFn ?? fetch
  const timeoutMs = opts.timeoutMs ?? 30_000
  const listing = await getText(img.indexUrl, fetchFn, timeoutMs, 'the list of image builds')
  const builds = datedBuilds(listing ?? '', img.serialDir).slice(0, MAX_BUILDS)
  if (builds.length === 0)
    throw new UserError(`${img.indexUrl} lists no dated ${img.title} builds.`, {suggestion: 'Pin image.url (a dated URL or your mirror) and image.checksum in autolabs.yaml.'})
  for (const serial of builds) {
    const dir = new URL(`${img.datedDir(serial)}/`, img.indexUrl)
    const file = img.datedFile(serial)
    const sums = await getText(new URL(img.sumsFile, dir).href, fetchFn, timeoutMs, 'the checksum list')
    const checksum = sums === undefined ? undefined : findChecksum(sums, file)
    if (!checksum) continue
    if (opts.checksum && checksum !== opts.checksum.toLowerCase()) continue
    return {url: new URL(file, dir).href, checksum, serial}
  }
  if (opts.checksum)
    throw new UserError(`No dated ${img.title} build at ${img.indexUrl} has the pinned checksum ${opts.checksum.slice(0, 16)}… (the publisher no longer serves that image).`, {
      suggestion: 'Move to a current build on purpose with `autolabs image update` (it rebuilds the template; running VMs are kept).',
    })
  throw new UserError(`None of the newest ${builds.length} ${img.title} builds at ${img.indexUrl} has a checksum for its image.`, {
    suggestion: 'Try again later, or pin image.url and image.checksum in autolabs.yaml.',
  })
}

/** What `init` pins: nothing to do, a fresh pin, or a migration of a moving URL. */
export type ImagePinning = {action: 'kept'} | {action: 'pinned' | 'migrated'; image: PinnedImage}

/**
 * The image as init must pin it: a workspace with url + checksum is kept as it is (a dated URL
 * or a mirror); one without a URL gets the newest dated build; one whose checksum sat next to
 * the publisher's moving URL (written before images were pinned by date) is migrated to the
 * dated build holding that very checksum, so nothing is rebuilt.
 */
export async function pinImage(config: Config, opts: {fetchFn?: Fetch; timeoutMs?: number} = {}): Promise<ImagePinning> {
  const {url, checksum, os} = config.image
  const moving = url === null || isMovingImageUrl(url)
  if (url && !moving && checksum) return {action: 'kept'}
  if (url && !moving && !checksum)
    throw new UserError(`image.url is set to ${url} but image.checksum is empty.`, {
      suggestion: "Set image.checksum in autolabs.yaml to the image's SHA-256 (or SHA-512): a custom image cannot be verified otherwise.",
      exitCode: 2,
    })
  if (url && moving && url !== IMAGES[os].url)
    throw new UserError(`image.url ${url} is a moving link: what it downloads changes, and the pinned checksum will stop matching.`, {
      suggestion: `Use a dated URL (under ${IMAGES[os].indexUrl}) or a mirror of one, with its checksum; or set image.url and image.checksum to null to let autolabs pin the newest build.`,
      exitCode: 2,
    })
  if (checksum) return {action: 'migrated', image: await resolveDatedImage(os, {...opts, checksum})}
  return {action: 'pinned', image: await resolveDatedImage(os, opts)}
}
