import {mkdtempSync, readFileSync, rmSync} from 'node:fs'
import net from 'node:net'
import {tmpdir} from 'node:os'
import path from 'node:path'
import tls from 'node:tls'
import {X509Certificate} from 'node:crypto'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import type {DayTwoContext} from '../../../src/status/context.js'
import {depsFromContext} from '../../../src/status/run.js'
import {type CertFiles, makeCa, makeLeaf} from '../../support/certs.js'
import {freePort} from '../../support/net.js'

// `status` reads GitLab's certificate as served, over a real TLS handshake (a Node TLS server in
// nginx's place): its end date, and whether it verifies for the URL's host against the CA.
describe("status: GitLab's served certificate (real TLS handshakes)", () => {
  let dir: string
  let ca: CertFiles
  let leaf: CertFiles
  let server: tls.Server
  let port: number
  const tlsPeer = depsFromContext({} as DayTwoContext).tlsPeer!
  const ask = (q: {servername: string; ca?: string; port?: number}) => tlsPeer({host: '127.0.0.1', port: q.port ?? port, servername: q.servername, ca: q.ca}, new AbortController().signal)

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'al-tls-peer-'))
    ca = makeCa(dir, 'lab-ca')
    leaf = makeLeaf(dir, 'gitlab', {san: 'DNS:gitlab.lab', ca, days: 200})
    server = tls.createServer({cert: readFileSync(leaf.cert), key: readFileSync(leaf.key)}, (s) => s.end())
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    port = (server.address() as net.AddressInfo).port
  })
  afterAll(async () => {
    await new Promise((r) => server?.close(r))
    rmSync(dir, {recursive: true, force: true})
  })

  it('verifies against the private CA and reads the end date', async () => {
    const p = await ask({servername: 'gitlab.lab', ca: readFileSync(ca.cert, 'utf8')})
    expect(p.authorized).toBe(true)
    expect(p.validTo.toISOString()).toBe(new Date(new X509Certificate(readFileSync(leaf.cert)).validTo).toISOString())
  })
  it('reports a host name the certificate does not cover, and a CA it does not know', async () => {
    expect(await ask({servername: 'git.example.edu', ca: readFileSync(ca.cert, 'utf8')})).toMatchObject({authorized: false, authorizationError: 'ERR_TLS_CERT_ALTNAME_INVALID'})
    expect(await ask({servername: 'gitlab.lab'})).toMatchObject({authorized: false, authorizationError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'})
  })
  it('rejects when nothing listens', async () => {
    await expect(ask({servername: 'gitlab.lab', port: await freePort()})).rejects.toThrow(/ECONNREFUSED/)
  })
})
