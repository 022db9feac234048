import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'

import {CertificateMismatchError, UntrustedCertificateError} from '../../../src/proxmox/errors.js'
import {getServerFingerprint, INSECURE_WARNING, normalizeFingerprint} from '../../../src/proxmox/tls.js'
import {clientFor} from '../../support/pve-sim/connect.js'
import {type PveSim, startPveSim} from '../../support/pve-sim/index.mjs'

let sim: PveSim
let tmp: string
beforeAll(async () => {
  sim = await startPveSim()
  tmp = await mkdtemp(path.join(os.tmpdir(), 'autolabs-tls-'))
})
afterEach(() => {
  expect(sim.invalidRequests).toEqual([])
  expect(process.env.NODE_TLS_REJECT_UNAUTHORIZED).toBeUndefined()
})
afterAll(async () => {
  await sim.stop()
  await rm(tmp, {recursive: true, force: true})
})

const OTHER = 'AA:'.repeat(31) + 'AA'

describe('first contact', () => {
  it("reads the server certificate's SHA-256 fingerprint without trusting or sending anything", async () => {
    const before = sim.requests.length
    const cert = await getServerFingerprint(sim.url)
    expect(cert.fingerprint).toBe(sim.fingerprint)
    expect(cert.trusted).toBe(false)
    expect(cert.trustError).toMatch(/SELF_SIGNED/)
    expect(cert.subject).toContain('CN=pve-sim')
    expect(sim.requests.length).toBe(before)
  })

  it('normalises fingerprints typed in lowercase or without colons', () => {
    const plain = sim.fingerprint.replaceAll(':', '').toLowerCase()
    expect(normalizeFingerprint(plain)).toBe(sim.fingerprint)
    expect(() => normalizeFingerprint('AB:CD')).toThrow(/not a SHA-256 fingerprint/)
  })
})

describe('pinned fingerprint', () => {
  it('connects when the certificate matches the pin', async () => {
    const c = await clientFor(sim, {tls: {fingerprint: sim.fingerprint.toLowerCase()}})
    expect((await c.version()).major).toBe(9)
    await c.close()
  })

  it('refuses a different certificate before any credentials are sent, saying expected vs got and the fix', async () => {
    const before = sim.requests.length
    const c = await clientFor(sim, {tls: {fingerprint: OTHER}})
    const err = await c.version().catch((e: unknown) => e)
    await c.close()
    expect(err).toBeInstanceOf(CertificateMismatchError)
    const e = err as CertificateMismatchError
    expect(e.expected).toBe(OTHER)
    expect(e.actual).toBe(sim.fingerprint)
    expect(e.message).toContain(`expected: ${OTHER}`)
    expect(e.message).toContain(`got:      ${sim.fingerprint}`)
    expect(e.suggestion).toContain('pvenode cert info')
    expect(sim.requests.length).toBe(before)
  })

  it('notices when the server starts presenting another certificate mid-session', async () => {
    const own = await startPveSim()
    const c = await clientFor(own)
    await c.version()
    const oldFp = own.fingerprint
    const newFp = await own.rotateCertificate()
    expect(newFp).not.toBe(oldFp)
    const err = await c.version().catch((e: unknown) => e)
    await c.close()
    await own.stop()
    expect(err).toBeInstanceOf(CertificateMismatchError)
    expect((err as CertificateMismatchError).actual).toBe(newFp)
  })
})

describe('without a pin', () => {
  it('refuses an untrusted certificate and shows the fingerprint to pass', async () => {
    const c = await clientFor(sim, {tls: {}})
    const err = await c.version().catch((e: unknown) => e)
    await c.close()
    expect(err).toBeInstanceOf(UntrustedCertificateError)
    expect((err as UntrustedCertificateError).fingerprint).toBe(sim.fingerprint)
    expect((err as UntrustedCertificateError).suggestion).toContain(`--proxmox-fingerprint ${sim.fingerprint}`)
  })

  it('trusts a CA file that signs the certificate', async () => {
    const ca = path.join(tmp, 'ca.pem')
    await writeFile(ca, sim.certificate.cert)
    const c = await clientFor(sim, {tls: {caFile: ca}})
    expect((await c.version()).major).toBe(9)
    await c.close()
  })

  it('connects with --insecure only after a loud warning', async () => {
    const warnings: string[] = []
    const c = await clientFor(sim, {tls: {insecure: true}, warn: (m) => warnings.push(m)})
    expect((await c.version()).major).toBe(9)
    await c.close()
    expect(warnings).toEqual([INSECURE_WARNING])
    expect(INSECURE_WARNING).toContain('TLS verification of the Proxmox API is OFF')
  })
})
