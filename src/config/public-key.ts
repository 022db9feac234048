import {UsageError} from '../errors.js'

/**
 * OpenSSH public keys (the .pub / authorized_keys line format without options), parsed as keys:
 * the algorithm must be one OpenSSH knows, the base64 must decode, and the blob's first field
 * (an SSH string, RFC 4253 §6.6) must name the same algorithm. A private key, a certificate
 * request or any other text is refused before it reaches the tfvars or the VMs.
 */
const KEY_TYPES = new Set([
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
])

export interface PublicKey {
  type: string
  /** The normalised line: type, base64 and the comment (control characters removed). */
  line: string
}

/** Why `line` is not an OpenSSH public key, or the key. Never echoes the line (it may be a secret). */
export function parsePublicKeyLine(line: string): PublicKey | string {
  const [type, b64, ...comment] = line.trim().split(/\s+/)
  if (!KEY_TYPES.has(type)) return `does not start with an OpenSSH key type (${[...KEY_TYPES].slice(0, 3).join(', ')}, …)`
  if (!b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return 'has no base64 key data after the key type'
  const blob = Buffer.from(b64, 'base64')
  if (blob.length < 4) return 'has key data too short to be a key'
  const n = blob.readUInt32BE(0)
  if (n > blob.length - 4 || blob.subarray(4, 4 + n).toString('latin1') !== type) return `has key data that does not encode a ${type} key`
  // eslint-disable-next-line no-control-regex
  const text = comment.join(' ').replace(/[\u0000-\u001f\u007f]/g, '')
  return {type, line: text ? `${type} ${b64} ${text}` : `${type} ${b64}`}
}

/**
 * Every key in the text of a public key file (blank lines and # comments skipped). Throws a
 * UsageError naming the file and line for anything else, and says so for a private key.
 */
export function parsePublicKeys(text: string, file: string): string[] {
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(text) || /^PuTTY-User-Key-File/m.test(text)) {
    throw new UsageError(`${file} (ssh.publicKeyFile) is a PRIVATE key; only the public key is installed on the VMs.`, {
      suggestion: `Pass the .pub file of the pair instead (e.g. --ssh-public-key ${file.endsWith('.pub') ? file : `${file}.pub`}); create it with \`ssh-keygen -y -f ${file} > ${file}.pub\` if it is missing.`,
    })
  }
  const keys: string[] = []
  for (const [i, raw] of text.split('\n').entries()) {
    const l = raw.trim()
    if (!l || l.startsWith('#')) continue
    const key = parsePublicKeyLine(l)
    if (typeof key === 'string')
      throw new UsageError(`${file} (ssh.publicKeyFile), line ${i + 1}, is not an OpenSSH public key: it ${key}.`, {
        suggestion: 'Point ssh.publicKeyFile (or --ssh-public-key) at the .pub file of your key pair, e.g. ~/.ssh/id_ed25519.pub.',
      })
    keys.push(key.line)
  }
  return keys
}
