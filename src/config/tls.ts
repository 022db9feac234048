/**
 * GitLab's HTTPS certificate (services.gitlab.tls): read from the workstation and checked before
 * anything reaches the VM — a wrong file would otherwise surface 20 minutes later as GitLab's
 * nginx refusing to start, or as a readiness wait that never ends.
 *
 *   const tls = loadGitlabTls(config, ws.root, ws.configFile)   // null: plain http or Let's Encrypt
 *   tls?.certPem, tls?.keyPem, tls?.caPem, tls?.notAfter
 */
import {createPrivateKey, type KeyObject, X509Certificate} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {isIP} from 'node:net'
import path from 'node:path'

import {ConfigError, type FieldIssue} from '../errors.js'
import {expandHome} from './load.js'
import type {Config} from './schema.js'

export interface GitlabTls {
  /** The certificate and its chain, as given. */
  certPem: string
  keyPem: string
  /** The CA clients must trust (tls.caFile), or '' for a publicly trusted certificate. */
  caPem: string
  notAfter: Date
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

/** Resolves a tls.* path: `~/…` from home, a relative path from the workspace root. */
export function tlsPath(root: string, p: string): string {
  const e = expandHome(p)
  return path.isAbsolute(e) ? e : path.join(root, e)
}

export function loadGitlabTls(config: Config, root: string, source: string, now = new Date()): GitlabTls | null {
  const g = config.services.gitlab
  const t = g.tls
  if (!t.certFile || !t.keyFile || !g.externalUrl?.startsWith('https://')) return null
  const issues: FieldIssue[] = []
  const fail = (field: string, message: string, fix: string) => issues.push({path: `services.gitlab.tls.${field}`, message, fix})
  const read = (field: string, p: string): string | undefined => {
    const file = tlsPath(root, p)
    try {
      return readFileSync(file, 'utf8')
    } catch (error) {
      fail(field, `cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`, 'give the path of a PEM file, relative to the workspace or absolute')
      return undefined
    }
  }
  const certText = read('certFile', t.certFile)
  const keyText = read('keyFile', t.keyFile)
  const caText = t.caFile ? read('caFile', t.caFile) : ''
  const host = new URL(g.externalUrl).hostname

  let leaf: X509Certificate | undefined
  let chain: X509Certificate[] = []
  if (certText !== undefined) {
    chain = parseCerts(certText)
    leaf = chain[0]
    if (!leaf) fail('certFile', 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)', 'export the certificate in PEM format (openssl x509 -outform PEM)')
  }
  let key: KeyObject | undefined
  if (keyText !== undefined) {
    try {
      key = createPrivateKey(keyText)
    } catch (error) {
      const encrypted = /ENCRYPTED/.test(keyText) || /passphrase/i.test(String((error as Error).message))
      fail(
        'keyFile',
        encrypted ? 'is encrypted with a passphrase' : `is not a PEM private key (${(error as Error).message})`,
        encrypted ? 'GitLab cannot ask for a passphrase at start: decrypt it with `openssl pkey -in key.pem -out plain.pem`' : 'give the PEM private key of certFile',
      )
    }
  }
  if (leaf) {
    const address = host.replace(/^\[|\]$/g, '') // URL keeps an IPv6 address in brackets
    const isIp = isIP(address) !== 0
    const covers = isIp ? leaf.checkIP(address) : leaf.checkHost(host)
    if (!covers)
      fail('certFile', `is for ${leaf.subjectAltName ?? leaf.subject.replaceAll('\n', ', ')}, not for ${host} (the externalUrl's host)`, `issue it for ${host} (subjectAltName ${isIp ? 'IP' : 'DNS'}:${host})`)
    const notAfter = new Date(leaf.validTo)
    if (notAfter <= now) fail('certFile', `expired on ${notAfter.toISOString().slice(0, 10)}`, 'renew it')
    else if (new Date(leaf.validFrom) > now) fail('certFile', `is not valid before ${new Date(leaf.validFrom).toISOString().slice(0, 10)}`, "check this machine's clock or the certificate")
    if (key && !leaf.checkPrivateKey(key)) fail('keyFile', 'is not the private key of certFile', "give the key the certificate was issued for (their public keys differ)")
  }
  if (caText) {
    const cas = parseCerts(caText)
    if (cas.length === 0) fail('caFile', 'holds no PEM certificate', 'give the PEM certificate of the CA (for a self-signed certificate, certFile itself)')
    else if (leaf && !signedByAny(leaf, chain.slice(1), cas))
      fail('caFile', `did not sign certFile (issuer ${leaf.issuer.replaceAll('\n', ', ')})`, 'give the CA that issued it, or the intermediate chain in certFile')
  }
  if (issues.length > 0) throw new ConfigError(source, issues)
  return {certPem: certText!, keyPem: keyText!, caPem: caText ?? '', notAfter: new Date(leaf!.validTo)}
}

function parseCerts(text: string): X509Certificate[] {
  const out: X509Certificate[] = []
  for (const m of text.match(PEM_CERT) ?? []) {
    try {
      out.push(new X509Certificate(m))
    } catch {
      // A damaged block: the certificate checks below say what is missing.
    }
  }
  return out
}

/** Does the leaf chain up (through the given intermediates) to one of the CAs? */
function signedByAny(leaf: X509Certificate, intermediates: X509Certificate[], cas: X509Certificate[]): boolean {
  let cert = leaf
  for (let hops = 0; hops <= intermediates.length; hops++) {
    if (cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) return true
    const next = intermediates.find((i) => cert.checkIssued(i) && cert.verify(i.publicKey))
    if (!next) return false
    cert = next
  }
  return false
}
