import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {validateConfig} from '../../../src/config/load.js'
import {loadGitlabTls} from '../../../src/config/tls.js'
import {gitlabTlsCheck} from '../../../src/steps/preflight.js'
import {ConfigError} from '../../../src/errors.js'
import {type CertFiles, makeCa, makeLeaf} from '../../support/certs.js'

// services.gitlab.tls: the cross-field rules (validateConfig) and the certificate checks made on
// the workstation before deploy (loadGitlabTls), with real certificates made by openssl.
let dir: string
let ca: CertFiles
let signed: CertFiles
let selfSigned: CertFiles
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'al-tls-'))
  ca = makeCa(dir, 'lab-ca')
  makeCa(dir, 'other-ca')
  signed = makeLeaf(dir, 'signed', {san: 'DNS:gitlab.lab', ca})
  selfSigned = makeLeaf(dir, 'self', {san: 'DNS:gitlab.lab'})
  makeLeaf(dir, 'ip', {san: 'IP:10.0.0.10'})
})
afterAll(() => rmSync(dir, {recursive: true, force: true}))

const config = (gitlab: Record<string, unknown>) => validateConfig({services: {gitlab}}, 'autolabs.yaml').config
const load = (gitlab: Record<string, unknown>, now?: Date) => loadGitlabTls(config(gitlab), dir, 'autolabs.yaml', now)
const issuesOf = (fn: () => unknown) => {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError)
    return (error as ConfigError).issues.map((i) => `${i.path}: ${i.message}`)
  }
  throw new Error('no ConfigError')
}

describe('services.gitlab.tls rules', () => {
  it('wants a certificate or Let\'s Encrypt for an https externalUrl, and says how to give one', () => {
    const err = issuesOf(() => config({externalUrl: 'https://gitlab.lab'}))
    expect(err).toEqual(['services.gitlab.tls: externalUrl https://gitlab.lab is https but no certificate is configured'])
    expect(() => config({externalUrl: 'https://gitlab.lab', tls: {letsencrypt: true}})).not.toThrow()
    expect(() => config({externalUrl: 'https://gitlab.lab', tls: {certFile: 'a.crt', keyFile: 'a.key'}})).not.toThrow()
  })
  it('refuses half a pair, both sources at once, a CA alone, and TLS on an http URL', () => {
    expect(issuesOf(() => config({externalUrl: 'https://gitlab.lab', tls: {certFile: 'a.crt'}}))).toEqual(['services.gitlab.tls.keyFile: is missing'])
    expect(issuesOf(() => config({externalUrl: 'https://gitlab.lab', tls: {certFile: 'a.crt', keyFile: 'a.key', letsencrypt: true}}))).toEqual([
      'services.gitlab.tls.letsencrypt: is true while tls.certFile is set',
    ])
    expect(issuesOf(() => config({externalUrl: 'https://gitlab.lab', tls: {letsencrypt: true, caFile: 'ca.crt'}}))).toEqual(['services.gitlab.tls.caFile: is set without tls.certFile'])
    expect(issuesOf(() => config({tls: {certFile: 'a.crt', keyFile: 'a.key'}}))).toEqual(['services.gitlab.tls: is set but externalUrl (default) is not https'])
  })
})

describe('loadGitlabTls', () => {
  it('is null for http and for Let\'s Encrypt: nothing to read', () => {
    expect(load({})).toBeNull()
    expect(load({externalUrl: 'https://gitlab.lab', tls: {letsencrypt: true}})).toBeNull()
  })
  it('reads a CA-signed certificate, its key and the CA (paths relative to the workspace)', () => {
    const t = load({externalUrl: 'https://gitlab.lab:8443', tls: {certFile: 'signed.crt', keyFile: 'signed.key', caFile: 'lab-ca.crt'}})
    expect(t?.certPem).toBe(readFileSync(signed.cert, 'utf8'))
    expect(t?.keyPem).toBe(readFileSync(signed.key, 'utf8'))
    expect(t?.caPem).toBe(readFileSync(ca.cert, 'utf8'))
    expect(t!.notAfter.getTime()).toBeGreaterThan(Date.now())
  })
  it('takes a self-signed certificate as its own CA, an address in the URL, and absolute paths', () => {
    expect(load({externalUrl: 'https://gitlab.lab', tls: {certFile: selfSigned.cert, keyFile: selfSigned.key, caFile: selfSigned.cert}})).not.toBeNull()
    expect(load({externalUrl: 'https://10.0.0.10', tls: {certFile: 'ip.crt', keyFile: 'ip.key', caFile: 'ip.crt'}})).not.toBeNull()
  })
  it('refuses a certificate for another host, naming both', () => {
    expect(issuesOf(() => load({externalUrl: 'https://git.example.edu', tls: {certFile: 'signed.crt', keyFile: 'signed.key'}}))).toEqual([
      'services.gitlab.tls.certFile: is for DNS:gitlab.lab, not for git.example.edu (the externalUrl\'s host)',
    ])
    expect(issuesOf(() => load({externalUrl: 'https://10.0.0.11', tls: {certFile: 'ip.crt', keyFile: 'ip.key'}}))[0]).toContain('not for 10.0.0.11')
  })
  it('refuses the key of another certificate, and an expired certificate', () => {
    expect(issuesOf(() => load({externalUrl: 'https://gitlab.lab', tls: {certFile: 'signed.crt', keyFile: 'self.key'}}))).toEqual([
      'services.gitlab.tls.keyFile: is not the private key of certFile',
    ])
    const later = new Date(Date.now() + 400 * 86_400_000)
    expect(issuesOf(() => load({externalUrl: 'https://gitlab.lab', tls: {certFile: 'signed.crt', keyFile: 'signed.key'}}, later))[0]).toMatch(
      /^services\.gitlab\.tls\.certFile: expired on \d{4}-\d\d-\d\d$/,
    )
  })
  it('refuses a CA that did not sign the certificate', () => {
    expect(issuesOf(() => load({externalUrl: 'https://gitlab.lab', tls: {certFile: 'signed.crt', keyFile: 'signed.key', caFile: 'other-ca.crt'}}))).toEqual([
      'services.gitlab.tls.caFile: did not sign certFile (issuer CN=lab-ca)',
    ])
  })
  it('accepts an intermediate in certFile that chains up to caFile', () => {
    const inter = makeLeaf(dir, 'inter', {san: 'DNS:inter', ca})
    // Make "inter" a CA: re-issue it with CA:TRUE, then sign a leaf with it.
    const interCa = {cert: path.join(dir, 'inter-ca.crt'), key: inter.key}
    writeFileSync(path.join(dir, 'inter-ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n')
    execFileSync('openssl', ['req', '-new', '-key', inter.key, '-subj', '/CN=inter-ca', '-out', path.join(dir, 'inter-ca.csr')])
    execFileSync('openssl', ['x509', '-req', '-in', path.join(dir, 'inter-ca.csr'), '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '30', '-extfile', path.join(dir, 'inter-ca.ext'), '-out', interCa.cert])
    const leaf = makeLeaf(dir, 'chained', {san: 'DNS:gitlab.lab', ca: interCa})
    writeFileSync(path.join(dir, 'chain.crt'), readFileSync(leaf.cert, 'utf8') + readFileSync(interCa.cert, 'utf8'))
    expect(load({externalUrl: 'https://gitlab.lab', tls: {certFile: 'chain.crt', keyFile: 'chained.key', caFile: 'lab-ca.crt'}})).not.toBeNull()
    // Without the intermediate the chain is broken.
    expect(issuesOf(() => load({externalUrl: 'https://gitlab.lab', tls: {certFile: 'chained.crt', keyFile: 'chained.key', caFile: 'lab-ca.crt'}}))[0]).toContain('did not sign certFile')
  })
  it('says what is wrong with files that are missing, not PEM, or encrypted', () => {
    writeFileSync(path.join(dir, 'junk.crt'), 'hello\n')
    execFileSync('openssl', ['pkey', '-in', signed.key, '-aes256', '-passout', 'pass:secret-pass', '-out', path.join(dir, 'enc.key')])
    const issues = issuesOf(() => load({externalUrl: 'https://gitlab.lab', tls: {certFile: 'junk.crt', keyFile: 'enc.key', caFile: 'nope.crt'}}))
    expect(issues).toEqual([
      `services.gitlab.tls.caFile: cannot read ${path.join(dir, 'nope.crt')} (ENOENT)`,
      'services.gitlab.tls.certFile: holds no PEM certificate (-----BEGIN CERTIFICATE-----)',
      'services.gitlab.tls.keyFile: is encrypted with a passphrase',
    ])
  })
})

describe('preflight: GitLab HTTPS certificate', () => {
  const check = (gitlab: Record<string, unknown>, now?: Date) => gitlabTlsCheck(config(gitlab), dir, 'autolabs.yaml', now)
  it('is not run for http', () => expect(check({})).toBeNull())
  it("passes a good certificate with its end date; warns 30 days before it; warns that Let's Encrypt needs the internet", () => {
    const good = check({externalUrl: 'https://gitlab.lab', tls: {certFile: 'signed.crt', keyFile: 'signed.key', caFile: 'lab-ca.crt'}})
    expect(good).toMatchObject({id: 'gitlab-tls', status: 'pass'})
    expect(good?.detail).toMatch(/^for gitlab\.lab, valid until \d{4}-\d\d-\d\d, private CA$/)
    const soon = check({externalUrl: 'https://gitlab.lab', tls: {certFile: 'signed.crt', keyFile: 'signed.key'}}, new Date(Date.now() + 345 * 86_400_000))
    expect(soon).toMatchObject({status: 'warn', fix: expect.stringContaining('autolabs deploy --only gitlab')})
    expect(soon?.detail).toMatch(/expires in (19|20) days$/)
    expect(check({externalUrl: 'https://gitlab.lab', tls: {letsencrypt: true}})).toMatchObject({status: 'warn', detail: "GitLab will ask Let's Encrypt for a certificate for gitlab.lab"})
  })
  it('fails with every problem and its fix', () => {
    const bad = check({externalUrl: 'https://git.example.edu', tls: {certFile: 'signed.crt', keyFile: 'self.key'}})
    expect(bad).toMatchObject({status: 'fail'})
    expect(bad?.detail).toBe("services.gitlab.tls.certFile: is for DNS:gitlab.lab, not for git.example.edu (the externalUrl's host); services.gitlab.tls.keyFile: is not the private key of certFile")
    expect(bad?.fix).toContain('issue it for git.example.edu')
  })
})
