import tls from 'node:tls'
import {isIP} from 'node:net'

import {Agent, buildConnector} from 'undici'

import {CertificateMismatchError, ProxmoxUnreachableError} from './errors.js'

/**
 * TLS for the Proxmox API without ever switching verification off process-wide
 * (NODE_TLS_REJECT_UNAUTHORIZED is never touched). Three ways to trust a server:
 *  - a pinned SHA-256 fingerprint of its leaf certificate (what the wizard stores), checked on
 *    every new connection;
 *  - a CA file (normal chain + hostname verification against that CA);
 *  - the system CAs (a publicly trusted certificate).
 * `insecure` exists only as an explicit, loudly warned opt-in.
 */
export interface TlsTrust {
  fingerprint?: string | null
  caPem?: string | null
  insecure?: boolean
}

/** "ab:CD:..." or "abcd..." → "AB:CD:..." (how Node and the PVE GUI show SHA-256). */
export {normalizeFingerprint} from '../util/fingerprint.js'
import {normalizeFingerprint} from '../util/fingerprint.js'

export interface ServerCertificate {
  fingerprint: string
  subject: string
  issuer: string
  validFrom: string
  validTo: string
  /** Whether the system CAs (plus the given CA) would trust it for this host name. */
  trusted: boolean
  trustError?: string
}

/**
 * First contact: connect without trusting anything, only to read the server certificate so the
 * user can compare the fingerprint with the host (`pvenode cert info`). Nothing is sent.
 */
export async function getServerFingerprint(url: string, opts: {timeoutMs?: number; caPem?: string | null} = {}): Promise<ServerCertificate> {
  const u = new URL(url)
  const host = u.hostname.replace(/^\[|\]$/g, '')
  const port = Number(u.port || 8006)
  const timeoutMs = opts.timeoutMs ?? 10_000
  const started = Date.now()
  return await new Promise<ServerCertificate>((resolve, reject) => {
    const socket = tls.connect({host, port, servername: isIP(host) ? undefined : host, rejectUnauthorized: false, ca: opts.caPem ?? undefined})
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new ProxmoxUnreachableError(url, Date.now() - started, 'TLS handshake timed out', {method: 'CONNECT', path: '/'}))
    }, timeoutMs)
    socket.once('secureConnect', () => {
      clearTimeout(timer)
      const cert = socket.getPeerCertificate()
      let trustError = socket.authorized ? undefined : String(socket.authorizationError ?? 'untrusted')
      if (!trustError) {
        const idErr = tls.checkServerIdentity(host, cert)
        if (idErr) trustError = idErr.message
      }
      socket.end()
      resolve({
        fingerprint: cert.fingerprint256,
        subject: formatName(cert.subject),
        issuer: formatName(cert.issuer),
        validFrom: cert.valid_from,
        validTo: cert.valid_to,
        trusted: !trustError,
        trustError,
      })
    })
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      reject(new ProxmoxUnreachableError(url, Date.now() - started, error.code ?? error.message, {method: 'CONNECT', path: '/'}))
    })
  })
}

function formatName(name: tls.Certificate | undefined): string {
  if (!name) return ''
  return Object.entries(name)
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
    .join(', ')
}

/** An undici dispatcher that trusts exactly what `trust` says. */
export function createDispatcher(url: string, trust: TlsTrust): Agent {
  const common = {keepAliveTimeout: 4_000, connections: 8}
  if (trust.fingerprint) {
    const expected = normalizeFingerprint(trust.fingerprint)
    // Chain verification is replaced by the pin: PVE's default certificate is signed by the
    // cluster's own CA, which no client trusts, so only the leaf's fingerprint identifies it.
    // No TLS session resumption: a resumed session presents no certificate to check.
    const base = buildConnector({rejectUnauthorized: false, maxCachedSessions: 0})
    return new Agent({
      ...common,
      connect(options, callback) {
        base(options, (err, socket) => {
          if (err || !socket) return callback(err ?? new Error('no socket'), null)
          const actual = (socket as tls.TLSSocket).getPeerCertificate?.()?.fingerprint256
          if (actual !== expected) {
            socket.destroy()
            return callback(new CertificateMismatchError(url, expected, actual ?? '(none)'), null)
          }
          callback(null, socket)
        })
      },
    })
  }
  if (trust.caPem) return new Agent({...common, connect: {ca: trust.caPem}})
  if (trust.insecure) return new Agent({...common, connect: {rejectUnauthorized: false}})
  return new Agent(common)
}

export const INSECURE_WARNING =
  'TLS verification of the Proxmox API is OFF (--insecure): anyone on the network path can read the API token and change what autolabs creates. ' +
  'Pin the certificate instead: --proxmox-fingerprint <SHA-256 from `pvenode cert info`>.'
