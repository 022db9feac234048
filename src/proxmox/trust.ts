import {readFile} from 'node:fs/promises'

import {UsageError, UserError} from '../errors.js'
import {CertificateMismatchError, UntrustedCertificateError} from './errors.js'
import {getServerFingerprint, normalizeFingerprint, type ServerCertificate} from './tls.js'

export interface TrustDecision {
  /** Pin this (store it in autolabs.yaml proxmox.fingerprint); null when not pinning. */
  fingerprint: string | null
  caFile: string | null
  insecure: boolean
  /** The certificate seen at first contact (for the wizard to show), when one was read. */
  certificate?: ServerCertificate
  how: 'pinned' | 'confirmed' | 'ca-file' | 'system-ca' | 'insecure'
}

/**
 * First contact with a Proxmox host: decide how its certificate is trusted.
 *  - a given fingerprint must match the server's (else CertificateMismatchError);
 *  - a CA file must verify it;
 *  - a publicly trusted certificate needs nothing (not pinned: it rotates on renewal);
 *  - otherwise the user confirms the fingerprint — only when someone can be asked. Without a
 *    TTY, or with --yes, the certificate is refused and the message shows the fingerprint to
 *    pass: --yes never means "trust anything".
 *  - `insecure` only when explicitly asked for (the client warns loudly).
 */
export async function establishTrust(opts: {
  url: string
  fingerprint?: string | null
  caFile?: string | null
  insecure?: boolean
  /** A person is there to answer (TTY, not --yes, not --json). */
  canAsk: boolean
  /** Show the certificate and ask "trust it?". */
  confirm?: (cert: ServerCertificate) => Promise<boolean>
  timeoutMs?: number
}): Promise<TrustDecision> {
  if (opts.fingerprint) {
    const expected = normalizeFingerprint(opts.fingerprint)
    const cert = await getServerFingerprint(opts.url, {timeoutMs: opts.timeoutMs})
    if (cert.fingerprint !== expected) throw new CertificateMismatchError(opts.url, expected, cert.fingerprint)
    return {fingerprint: expected, caFile: null, insecure: false, certificate: cert, how: 'pinned'}
  }
  if (opts.caFile) {
    let caPem: string
    try {
      caPem = await readFile(opts.caFile, 'utf8')
    } catch (error) {
      throw new UsageError(`Cannot read the CA file ${opts.caFile}: ${(error as Error).message}`, {suggestion: 'Pass --proxmox-ca-file with a readable PEM file.'})
    }
    const cert = await getServerFingerprint(opts.url, {timeoutMs: opts.timeoutMs, caPem})
    if (!cert.trusted) throw new UntrustedCertificateError(opts.url, `not signed by ${opts.caFile}: ${cert.trustError}`, cert.fingerprint)
    return {fingerprint: null, caFile: opts.caFile, insecure: false, certificate: cert, how: 'ca-file'}
  }
  if (opts.insecure) return {fingerprint: null, caFile: null, insecure: true, how: 'insecure'}

  const cert = await getServerFingerprint(opts.url, {timeoutMs: opts.timeoutMs})
  if (cert.trusted) return {fingerprint: null, caFile: null, insecure: false, certificate: cert, how: 'system-ca'}
  if (!opts.canAsk || !opts.confirm) throw new UntrustedCertificateError(opts.url, cert.trustError ?? 'not trusted', cert.fingerprint)
  if (!(await opts.confirm(cert)))
    throw new UserError(`Not trusting the certificate of ${opts.url}.`, {
      suggestion: 'Compare the fingerprint with `pvenode cert info` on the host, then run again and accept it, or pass --proxmox-fingerprint.',
    })
  return {fingerprint: cert.fingerprint, caFile: null, insecure: false, certificate: cert, how: 'confirmed'}
}
