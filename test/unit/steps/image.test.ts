import {readFileSync} from 'node:fs'

import {describe, expect, it} from 'vitest'

import {IMAGES, isMovingImageUrl} from '../../../src/config/catalog.js'
import {imageFileName} from '../../../src/config/load.js'
import {configSchema} from '../../../src/config/schema.js'
import {datedBuilds, findChecksum, pinImage, resolveDatedImage} from '../../../src/steps/image.js'

const fixture = (name: string) => readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8')
const A = 'a'.repeat(64)
const B = 'b'.repeat(64)
const C = 'c'.repeat(64)
const UBUNTU = 'https://cloud-images.ubuntu.com/releases/jammy/'

/** The publisher's site as a map URL → body (anything else is a 404). */
function site(pages: Record<string, string>) {
  const asked: string[] = []
  const fetchFn = (async (url: string | URL) => {
    asked.push(String(url))
    const body = pages[String(url)]
    return body === undefined ? new Response('Not Found', {status: 404}) : new Response(body, {status: 200})
  }) as unknown as typeof fetch
  return {fetchFn, asked}
}
const sums = (sum: string, file = 'ubuntu-22.04-server-cloudimg-amd64.img') => `${B} *ubuntu-22.04-server-cloudimg-amd64-disk-kvm.img\n${sum} *${file}\n`

describe('the cloud image, pinned by date', () => {
  it('never uses a moving link in the catalog as the pinned URL (the defect: "current" changes under a pinned checksum)', () => {
    for (const img of Object.values(IMAGES)) {
      expect(isMovingImageUrl(img.url)).toBe(true)
      expect(isMovingImageUrl(new URL(`${img.datedDir('20261120')}/x`, img.indexUrl).href)).toBe(false)
    }
    expect(isMovingImageUrl('https://cloud-images.ubuntu.com/releases/jammy/release/ubuntu-22.04-server-cloudimg-amd64.img')).toBe(true)
  })

  it('reads the dated builds from the publishers’ listings, newest first, without the moving links', () => {
    expect(datedBuilds(fixture('ubuntu-releases-jammy-index.html'), IMAGES['ubuntu-22.04'].serialDir)).toEqual(['20261120', '20261106', '20260925'])
    expect(datedBuilds(fixture('debian-bookworm-index.html'), IMAGES['debian-12'].serialDir)).toEqual(['20261124-2301', '20261110-2293', '20260930-2250'])
    expect(datedBuilds('<a href="release-20261120.1/">x</a><a href="release-20261120/">', IMAGES['ubuntu-22.04'].serialDir)).toEqual(['20261120.1', '20261120'])
  })

  it('init pins the newest dated build: its immutable URL together with the checksum from its own list', async () => {
    const {fetchFn} = site({[UBUNTU]: fixture('ubuntu-releases-jammy-index.html'), [`${UBUNTU}release-20261120/SHA256SUMS`]: sums(A)})
    const pin = await pinImage(configSchema.parse({}), {fetchFn})
    expect(pin).toEqual({action: 'pinned', image: {url: `${UBUNTU}release-20261120/ubuntu-22.04-server-cloudimg-amd64.img`, checksum: A, serial: '20261120'}})
  })

  it('skips a build still being published (no checksum list yet) and takes the one before', async () => {
    const {fetchFn} = site({[UBUNTU]: fixture('ubuntu-releases-jammy-index.html'), [`${UBUNTU}release-20261106/SHA256SUMS`]: sums(C)})
    expect((await resolveDatedImage('ubuntu-22.04', {fetchFn})).url).toBe(`${UBUNTU}release-20261106/ubuntu-22.04-server-cloudimg-amd64.img`)
  })

  it('pins Debian by its dated build and SHA-512', async () => {
    const base = 'https://cloud.debian.org/images/cloud/bookworm/'
    const file = 'debian-12-genericcloud-amd64-20261124-2301.qcow2'
    const {fetchFn} = site({[base]: fixture('debian-bookworm-index.html'), [`${base}20261124-2301/SHA512SUMS`]: `${'e'.repeat(128)}  ${file}\n`})
    expect(await resolveDatedImage('debian-12', {fetchFn})).toEqual({url: `${base}20261124-2301/${file}`, checksum: 'e'.repeat(128), serial: '20261124-2301'})
  })

  it('migrates a workspace that pinned a checksum next to the moving URL to the build with that very checksum', async () => {
    const {fetchFn} = site({
      [UBUNTU]: fixture('ubuntu-releases-jammy-index.html'),
      [`${UBUNTU}release-20261120/SHA256SUMS`]: sums(A),
      [`${UBUNTU}release-20261106/SHA256SUMS`]: sums(C),
    })
    const pin = await pinImage(configSchema.parse({image: {checksum: C}}), {fetchFn})
    expect(pin).toEqual({action: 'migrated', image: {url: `${UBUNTU}release-20261106/ubuntu-22.04-server-cloudimg-amd64.img`, checksum: C, serial: '20261106'}})
    // An explicitly written moving URL of the catalog is migrated the same way.
    expect((await pinImage(configSchema.parse({image: {url: IMAGES['ubuntu-22.04'].url, checksum: C}}), {fetchFn})).action).toBe('migrated')
  })

  it('fails with the way forward when the pinned image is no longer published', async () => {
    const {fetchFn} = site({[UBUNTU]: fixture('ubuntu-releases-jammy-index.html'), [`${UBUNTU}release-20261120/SHA256SUMS`]: sums(A)})
    await expect(pinImage(configSchema.parse({image: {checksum: C}}), {fetchFn})).rejects.toMatchObject({
      message: expect.stringMatching(/No dated Ubuntu 22\.04 LTS \(Jammy\) build .* has the pinned checksum cccccccccccccccc…/),
      suggestion: expect.stringContaining('autolabs image update'),
    })
  })

  it('keeps a dated URL or a mirror with its checksum as it is (no request)', async () => {
    const {fetchFn, asked} = site({})
    expect(await pinImage(configSchema.parse({image: {url: 'https://mirror.lan/jammy-20261120.qcow2', checksum: A}}), {fetchFn})).toEqual({action: 'kept'})
    expect(asked).toEqual([])
  })

  it('refuses a mirror without a checksum, and a moving URL of its own', async () => {
    await expect(pinImage(configSchema.parse({image: {url: 'https://mirror.lan/img.qcow2'}}))).rejects.toThrow(/image.checksum is empty/)
    await expect(pinImage(configSchema.parse({image: {url: 'https://mirror.lan/jammy/current/img.qcow2', checksum: A}}))).rejects.toMatchObject({exitCode: 2, message: expect.stringMatching(/moving link/)})
  })

  it('fails with the URL and the fix when the listing is unreachable', async () => {
    const down = (async () => {
      throw new Error('getaddrinfo ENOTFOUND cloud-images.ubuntu.com')
    }) as unknown as typeof fetch
    await expect(resolveDatedImage('ubuntu-22.04', {fetchFn: down})).rejects.toMatchObject({
      message: `Cannot read the list of image builds ${UBUNTU}: getaddrinfo ENOTFOUND cloud-images.ubuntu.com`,
      suggestion: expect.stringContaining('image.checksum'),
    })
    await expect(resolveDatedImage('ubuntu-22.04', {fetchFn: site({[UBUNTU]: '<html></html>'}).fetchFn})).rejects.toThrow(/lists no dated/)
  })

  it('names the file in the storage after the build, so two builds never share it', () => {
    expect(imageFileName('ubuntu-22.04', `${UBUNTU}release-20261120/ubuntu-22.04-server-cloudimg-amd64.img`)).toBe('jammy-server-cloudimg-amd64-20261120.qcow2')
    expect(imageFileName('debian-12', 'https://cloud.debian.org/images/cloud/bookworm/20261124-2301/debian-12-genericcloud-amd64-20261124-2301.qcow2')).toBe('debian-12-genericcloud-amd64-20261124-2301.qcow2')
    expect(imageFileName('ubuntu-22.04', 'https://mirror.lan/x.img')).toBe('jammy-server-cloudimg-amd64.qcow2')
  })

  it('reads a checksum list in Ubuntu\'s "*name" and Debian\'s "  name" forms', () => {
    expect(findChecksum(sums(A), 'ubuntu-22.04-server-cloudimg-amd64.img')).toBe(A)
    expect(findChecksum(`${'c'.repeat(128)}  debian-12-genericcloud-amd64.qcow2`, 'debian-12-genericcloud-amd64.qcow2')).toBe('c'.repeat(128))
    expect(findChecksum(sums(A), 'other.img')).toBeUndefined()
  })
})
