import {readFile, writeFile} from 'node:fs/promises'
import https from 'node:https'
import type {AddressInfo} from 'node:net'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {configSchema} from '../../../src/config/schema.js'
import {UserError} from '../../../src/errors.js'
import {fetchPinnedCertificate, terraformTlsEnv} from '../../../src/terraform/tls.js'
import {Workspace} from '../../../src/workspace/workspace.js'
import {makeCertificate} from '../../support/pve-sim/index.mjs'
import {removeDir, tempDir} from '../../support/cli.js'

let server: https.Server
let url: string
let cert: {key: string; cert: string; fingerprint: string}
let dir: string

beforeAll(async () => {
  cert = await makeCertificate('pve-tls-test')
  server = https.createServer({key: cert.key, cert: cert.cert}, (_req, res) => res.end('ok'))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  dir = await tempDir()
})
afterAll(async () => {
  await new Promise((r) => server.close(r))
  await removeDir(dir)
})

describe('trusting the Proxmox certificate for Terraform (SSL_CERT_FILE, never insecure)', () => {
  it('returns the server certificate when its fingerprint is the pinned one', async () => {
    const pem = await fetchPinnedCertificate(url, cert.fingerprint)
    expect(pem.trim()).toBe(cert.cert.trim())
  })

  it('refuses a certificate with another fingerprint, showing both and what to do', async () => {
    const wrong = cert.fingerprint.replace(/^[0-9A-F]{2}/, (h) => (h === '00' ? '11' : '00'))
    const err = await fetchPinnedCertificate(url, wrong).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UserError)
    expect((err as UserError).message).toContain(cert.fingerprint)
    expect((err as UserError).message).toContain(wrong)
    expect((err as UserError).suggestion).toMatch(/pvenode cert info/)
  })

  it('writes a 0600 bundle of the system roots plus the pinned certificate and points SSL_CERT_FILE at it', async () => {
    const ws = new Workspace(dir)
    const env = await terraformTlsEnv(ws, configSchema.parse({proxmox: {url, fingerprint: cert.fingerprint}}))
    expect(env).toEqual({SSL_CERT_FILE: path.join(ws.stateDir, 'terraform-ca.pem')})
    const bundle = await readFile(env.SSL_CERT_FILE, 'utf8')
    expect(bundle).toContain(cert.cert.trim())
    expect(bundle.match(/BEGIN CERTIFICATE/g)!.length).toBeGreaterThan(1)
    // Node (like Go) now verifies the server with that bundle, host name included.
    const body = await new Promise<string>((resolve, reject) =>
      https.get(url, {ca: bundle}, (res) => {
        let t = ''
        res.on('data', (c: Buffer) => (t += c))
        res.on('end', () => resolve(t))
      }).on('error', reject),
    )
    expect(body).toBe('ok')
  })

  it('uses proxmox.caFile when given, and adds nothing for the explicit insecure opt-in', async () => {
    const ws = new Workspace(dir)
    const ca = path.join(dir, 'pve-root-ca.pem')
    await writeFile(ca, cert.cert)
    const env = await terraformTlsEnv(ws, configSchema.parse({proxmox: {url: 'https://192.0.2.1:8006', caFile: ca}}), {
      fetch: () => {
        throw new Error('must not contact the server when a CA file is given')
      },
    })
    expect(await readFile(env.SSL_CERT_FILE, 'utf8')).toContain(cert.cert.trim())
    expect(await terraformTlsEnv(ws, configSchema.parse({proxmox: {url, insecure: true}}))).toEqual({})
  })
})
