import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {CertificateMismatchError, UntrustedCertificateError} from '../../../src/proxmox/errors.js'
import {establishTrust} from '../../../src/proxmox/trust.js'
import {type PveSim, startPveSim} from '../../support/pve-sim/index.mjs'

let sim: PveSim
let tmp: string
beforeAll(async () => {
  sim = await startPveSim()
  tmp = await mkdtemp(path.join(os.tmpdir(), 'autolabs-trust-'))
})
afterAll(async () => {
  expect(sim.requests).toEqual([]) // deciding trust never sends an API request (or a credential)
  await sim.stop()
  await rm(tmp, {recursive: true, force: true})
})

describe('establishTrust (first contact)', () => {
  it('shows the certificate and pins its fingerprint when the user confirms it', async () => {
    const shown: string[] = []
    const d = await establishTrust({url: sim.url, canAsk: true, confirm: async (c) => (shown.push(c.fingerprint), true)})
    expect(shown).toEqual([sim.fingerprint])
    expect(d).toMatchObject({fingerprint: sim.fingerprint, how: 'confirmed', insecure: false})
  })

  it('refuses when the user says no', async () => {
    await expect(establishTrust({url: sim.url, canAsk: true, confirm: async () => false})).rejects.toThrow(/Not trusting the certificate/)
  })

  it('refuses an unknown certificate without a TTY (or with --yes), showing the fingerprint to pass', async () => {
    const err = await establishTrust({url: sim.url, canAsk: false, confirm: async () => true}).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UntrustedCertificateError)
    expect((err as UntrustedCertificateError).suggestion).toContain(`--proxmox-fingerprint ${sim.fingerprint}`)
  })

  it('accepts a given fingerprint that matches, in any spelling', async () => {
    const d = await establishTrust({url: sim.url, fingerprint: sim.fingerprint.replaceAll(':', '').toLowerCase(), canAsk: false})
    expect(d).toMatchObject({fingerprint: sim.fingerprint, how: 'pinned'})
  })

  it('refuses a given fingerprint that does not match', async () => {
    await expect(establishTrust({url: sim.url, fingerprint: 'AB:'.repeat(31) + 'AB', canAsk: true, confirm: async () => true})).rejects.toBeInstanceOf(CertificateMismatchError)
  })

  it('accepts a CA file that signs the certificate and rejects one that does not', async () => {
    const good = path.join(tmp, 'good.pem')
    await writeFile(good, sim.certificate.cert)
    expect(await establishTrust({url: sim.url, caFile: good, canAsk: false})).toMatchObject({caFile: good, fingerprint: null, how: 'ca-file'})
    const other = await startPveSim()
    const bad = path.join(tmp, 'bad.pem')
    await writeFile(bad, other.certificate.cert)
    await other.stop()
    await expect(establishTrust({url: sim.url, caFile: bad, canAsk: false})).rejects.toBeInstanceOf(UntrustedCertificateError)
  })

  it('passes --insecure through only when asked for explicitly', async () => {
    expect(await establishTrust({url: sim.url, insecure: true, canAsk: false})).toMatchObject({insecure: true, how: 'insecure'})
  })
})
