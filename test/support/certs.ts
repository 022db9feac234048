/**
 * Certificates for tests, made with the openssl CLI (as an administrator would): a CA, and leaf
 * certificates for a host name or an address, self-signed or signed by a CA.
 *
 *   const ca = makeCa(dir, 'lab-ca')                           // {cert, key} paths
 *   const leaf = makeLeaf(dir, 'gitlab', {san: 'DNS:gitlab.lab', ca})
 */
import {execFileSync} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import path from 'node:path'

export interface CertFiles {
  cert: string
  key: string
}

const openssl = (args: string[]) => execFileSync('openssl', args, {stdio: ['ignore', 'ignore', 'pipe']})
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']

export function makeCa(dir: string, name: string): CertFiles {
  const f = {cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`)}
  openssl(['req', '-x509', ...EC, '-days', '3650', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-keyout', f.key, '-out', f.cert])
  return f
}

/** A leaf for `san` (e.g. "DNS:gitlab.lab" or "IP:10.0.0.10"), valid `days` (365): self-signed, or signed by `ca`. */
export function makeLeaf(dir: string, name: string, opts: {san: string; ca?: CertFiles; days?: number}): CertFiles {
  const f = {cert: path.join(dir, `${name}.crt`), key: path.join(dir, `${name}.key`)}
  const days = String(opts.days ?? 365)
  if (!opts.ca) {
    openssl(['req', '-x509', ...EC, '-days', days, '-subj', `/CN=${name}`, '-addext', `subjectAltName=${opts.san}`, '-keyout', f.key, '-out', f.cert])
    return f
  }
  const csr = path.join(dir, `${name}.csr`)
  const ext = path.join(dir, `${name}.ext`)
  writeFileSync(ext, `subjectAltName=${opts.san}\n`)
  openssl(['req', '-new', ...EC, '-subj', `/CN=${name}`, '-keyout', f.key, '-out', csr])
  openssl(['x509', '-req', '-in', csr, '-CA', opts.ca.cert, '-CAkey', opts.ca.key, '-CAcreateserial', '-days', days, '-extfile', ext, '-out', f.cert])
  return f
}
