import {X509Certificate} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {isIP} from 'node:net'
import tls from 'node:tls'

import {expandHome} from '../config/load.js'
import type {Config} from '../config/schema.js'
import {UserError} from '../errors.js'
import {writeFileAtomic} from '../workspace/fs.js'
import type {Workspace} from '../workspace/workspace.js'
import {normalizeFingerprint} from '../util/fingerprint.js'

/**
 * How Terraform's provider trusts the Proxmox certificate without `insecure = true`.
 *
 * The bpg provider has no CA or fingerprint option (bpg/terraform-provider-proxmox#1609): it
 * verifies against the system roots, and only `insecure` turns that off. It is a Go program,
 * and Go on Linux/BSD reads its roots from the file named by SSL_CERT_FILE. So autolabs writes
 * a bundle — the system roots plus the Proxmox CA (proxmox.caFile) or, with only a pinned
 * fingerprint, the server's own certificate after checking it against that fingerprint — and
 * runs terraform with SSL_CERT_FILE pointing at it. Go accepts a certificate that is itself in
 * the root pool, and still checks the host name against its SANs.
 * (macOS and Windows builds of Go use the OS verifier and ignore SSL_CERT_FILE: there, add the
 * Proxmox CA to the system trust store; see docs/terraform.md.)
 */

export const SYSTEM_BUNDLES = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem']


/** The server's certificate (PEM) if its SHA-256 fingerprint is the pinned one; else UserError. */
export async function fetchPinnedCertificate(url: string, fingerprint: string, timeoutMs = 10_000): Promise<string> {
  const u = new URL(url)
  const host = u.hostname.replace(/^\[|\]$/g, '')
  const port = Number(u.port || 443)
  const der = await new Promise<Buffer>((resolve, reject) => {
    const socket = tls.connect({host, port, servername: isIP(host) ? undefined : host, rejectUnauthorized: false, timeout: timeoutMs}, () => {
      const cert = socket.getPeerCertificate()
      socket.end()
      if (!cert?.raw) reject(new Error('the server sent no certificate'))
      else resolve(cert.raw)
    })
    socket.on('timeout', () => {
      socket.destroy()
      reject(new Error(`no TLS answer within ${timeoutMs / 1000} s`))
    })
    socket.on('error', reject)
  }).catch((error: Error) => {
    throw new UserError(`Cannot fetch the Proxmox certificate from ${u.host}: ${error.message}`, {
      suggestion: 'Check proxmox.url in autolabs.yaml and that the host is reachable on that port.',
      exitCode: 3,
    })
  })
  const cert = new X509Certificate(der)
  if (normalizeFingerprint(cert.fingerprint256) !== normalizeFingerprint(fingerprint)) {
    throw new UserError(`The Proxmox certificate at ${u.host} has SHA-256 fingerprint ${cert.fingerprint256}, not the pinned ${fingerprint}.`, {
      suggestion:
        'If the certificate was renewed on purpose, check the new fingerprint on the Proxmox host (`pvenode cert info`) and set proxmox.fingerprint in autolabs.yaml; otherwise do not continue: something else answers at that address.',
    })
  }
  return cert.toString()
}

async function systemRoots(): Promise<string> {
  for (const f of SYSTEM_BUNDLES) {
    try {
      return await readFile(f, 'utf8')
    } catch {
      // try the next location
    }
  }
  return ''
}

/** The environment terraform needs to trust the Proxmox API (may write .autolabs/terraform-ca.pem). */
export async function terraformTlsEnv(ws: Workspace, config: Config, opts: {fetch?: typeof fetchPinnedCertificate} = {}): Promise<Record<string, string>> {
  if (config.proxmox.insecure) return {} // proxmox_insecure = true in the tfvars: the explicit opt-in.
  let extra: string | undefined
  if (config.proxmox.caFile) {
    try {
      extra = await readFile(expandHome(config.proxmox.caFile), 'utf8')
    } catch (error) {
      throw new UserError(`Cannot read proxmox.caFile ${config.proxmox.caFile}: ${(error as Error).message}`, {
        suggestion: 'Copy the Proxmox CA (/etc/pve/pve-root-ca.pem on the host) to this machine and set proxmox.caFile to its path.',
      })
    }
  } else if (config.proxmox.fingerprint) {
    extra = await (opts.fetch ?? fetchPinnedCertificate)(config.proxmox.url, config.proxmox.fingerprint)
  }
  if (!extra) return {} // A publicly trusted certificate: the system roots are enough.
  const file = `${ws.stateDir}/terraform-ca.pem`
  const bundle = `${(await systemRoots()).trimEnd()}\n# Proxmox VE (${config.proxmox.url}), added by autolabs\n${extra.trim()}\n`
  await writeFileAtomic(file, bundle, 0o600)
  return {SSL_CERT_FILE: file}
}
