import {describe, expect, it} from 'vitest'

import {configSchema} from '../../../src/config/schema.js'
import {findChecksum, resolveImageChecksum} from '../../../src/steps/image.js'

const A = 'a'.repeat(64)
const B = 'b'.repeat(64)
const SUMS = `${B} *jammy-server-cloudimg-amd64-disk-kvm.img\n${A} *jammy-server-cloudimg-amd64.img\n`

const fakeFetch = (status: number, body: string) => (async () => new Response(body, {status})) as unknown as typeof fetch

describe('the cloud image checksum', () => {
  it('is read from the publisher list (Ubuntu "*name" and Debian "  name" forms)', () => {
    expect(findChecksum(SUMS, 'jammy-server-cloudimg-amd64.img')).toBe(A)
    expect(findChecksum(`${'c'.repeat(128)}  debian-12-genericcloud-amd64.qcow2`, 'debian-12-genericcloud-amd64.qcow2')).toBe('c'.repeat(128))
    expect(findChecksum(SUMS, 'other.img')).toBeUndefined()
  })

  it('is resolved at init when autolabs.yaml has none', async () => {
    expect(await resolveImageChecksum(configSchema.parse({}), fakeFetch(200, SUMS))).toBe(A)
  })

  it('is taken as pinned when autolabs.yaml has one (no request)', async () => {
    const c = configSchema.parse({image: {checksum: B}})
    expect(await resolveImageChecksum(c, (() => Promise.reject(new Error('no'))) as unknown as typeof fetch)).toBe(B)
  })

  it('fails with the URL and the fix when the list is unreachable or lacks the image', async () => {
    await expect(resolveImageChecksum(configSchema.parse({}), fakeFetch(404, ''))).rejects.toThrow(/SHA256SUMS: HTTP 404/)
    await expect(resolveImageChecksum(configSchema.parse({}), fakeFetch(200, `${B} *x.img`))).rejects.toThrow(/lists no checksum/)
  })

  it('requires a checksum for a custom image URL', async () => {
    await expect(resolveImageChecksum(configSchema.parse({image: {url: 'https://mirror.lan/img.qcow2'}}))).rejects.toThrow(/image.checksum/)
  })
})
