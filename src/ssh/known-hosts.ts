/**
 * SSH host-key pinning in `.autolabs/known_hosts`, in OpenSSH's format, so that
 * `ssh -o UserKnownHostsFile=.autolabs/known_hosts debian@10.0.0.5` works with the same file.
 *
 *   host ssh-ed25519 AAAA… autolabs:database-vm          (port 22)
 *   [host]:2222 ssh-ed25519 AAAA… autolabs:gitlab-vm      (other ports)
 *   |1|salt|hash ssh-ed25519 AAAA…                          (hashed lines written by ssh are read too)
 *
 * API:
 * - `checkHostKey(file, {name, host, port}, keyBlob, {expectedFingerprint?})` → {fingerprint, firstContact}:
 *   a known host must offer a recorded key, else HostKeyChangedError (a UserError that explains and
 *   names `autolabs hosts forget <vm>`); an unknown host is recorded (trust on first use), or —
 *   when `expectedFingerprint` is given (e.g. read through the Proxmox guest agent) — recorded only
 *   if it matches, else HostKeyMismatchError.
 * - `forgetHost(file, hostOrVmName, port?)` → number of lines removed.
 * - `fingerprint(keyBlob)` → "SHA256:…" as `ssh-keygen -lf` prints it; `knownKeyTypes(file, host, port)`.
 */
import {createHash, createHmac} from 'node:crypto'
import {appendFileSync, existsSync, mkdirSync, readFileSync} from 'node:fs'
import path from 'node:path'

import {UserError} from '../errors.js'
import {writeFileAtomic} from '../workspace/fs.js'

export interface HostRef {
  /** The VM's name (written as a comment, matched by forgetHost). */
  name: string
  host: string
  port?: number
}

export interface KnownHostLine {
  pattern: string
  type: string
  keyBase64: string
  comment?: string
  marker?: string
}

/** SHA256 fingerprint of a public key blob (SSH wire format), as OpenSSH shows it. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`
}

/** The key type named inside an SSH public key blob (its first string). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown'
  const len = keyBlob.readUInt32BE(0)
  return keyBlob.subarray(4, 4 + len).toString('latin1')
}

/** The known_hosts host field: `host` for port 22, `[host]:port` otherwise. */
export function hostPattern(host: string, port = 22): string {
  return port === 22 ? host : `[${host}]:${port}`
}

function parseLine(raw: string): KnownHostLine | undefined {
  const line = raw.trim()
  if (!line || line.startsWith('#')) return undefined
  const fields = line.split(/\s+/)
  let marker: string | undefined
  if (fields[0].startsWith('@')) marker = fields.shift()
  if (fields.length < 3) return undefined
  const [pattern, type, keyBase64, ...rest] = fields
  return {pattern, type, keyBase64, marker, comment: rest.length > 0 ? rest.join(' ') : undefined}
}

function patternMatches(pattern: string, host: string, port: number): boolean {
  const want = hostPattern(host, port)
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|')
    if (!salt || !hash) return false
    const h = createHmac('sha1', Buffer.from(salt, 'base64')).update(want).digest('base64')
    return h === hash
  }
  // Comma-separated names; wildcards and negations are not used in our file.
  return pattern.split(',').some((p) => p === want)
}

export function readKnownHosts(file: string): KnownHostLine[] {
  if (!existsSync(file)) return []
  return readFileSync(file, 'utf8')
    .split('\n')
    .map(parseLine)
    .filter((l): l is KnownHostLine => l !== undefined)
}

/** Recorded keys for host:port (revoked/cert-authority lines are not host keys here). */
export function lookupHost(file: string, host: string, port = 22): KnownHostLine[] {
  return readKnownHosts(file).filter((l) => !l.marker && patternMatches(l.pattern, host, port))
}

/** Key types recorded for host:port, to make the server offer the pinned kind of key. */
export function knownKeyTypes(file: string, host: string, port = 22): string[] {
  return [...new Set(lookupHost(file, host, port).map((l) => l.type))]
}

export function recordHostKey(file: string, ref: HostRef, keyBlob: Buffer): void {
  mkdirSync(path.dirname(file), {recursive: true})
  const line = `${hostPattern(ref.host, ref.port ?? 22)} ${keyTypeOf(keyBlob)} ${keyBlob.toString('base64')} autolabs:${ref.name}\n`
  // One short append is atomic enough for three VMs recorded concurrently.
  appendFileSync(file, line, {mode: 0o600})
}

/**
 * Removes every line for a host (all ports unless `port` is given) or for a VM name recorded in
 * the comment. Returns how many lines were removed.
 */
export async function forgetHost(file: string, hostOrName: string, port?: number): Promise<number> {
  if (!existsSync(file)) return 0
  const lines = readFileSync(file, 'utf8').split('\n')
  let removed = 0
  const kept = lines.filter((raw) => {
    const l = parseLine(raw)
    if (!l) return true
    const byName = l.comment?.split(/\s+/).includes(`autolabs:${hostOrName}`) ?? false
    const byHost =
      port === undefined
        ? l.pattern.split(',').some((p) => p === hostOrName || p.startsWith(`[${hostOrName}]:`)) ||
          [22, ...hashedPortsToTry].some((p) => l.pattern.startsWith('|1|') && patternMatches(l.pattern, hostOrName, p))
        : patternMatches(l.pattern, hostOrName, port)
    if (byName || byHost) {
      removed++
      return false
    }
    return true
  })
  if (removed > 0) await writeFileAtomic(file, kept.join('\n'), 0o600)
  return removed
}

// Hashed lines hide the port; these are the ones autolabs uses (SSH and GitLab's SSH).
const hashedPortsToTry = [2222]

export interface HostKeyCheck {
  fingerprint: string
  /** True when the key was recorded now (first contact). */
  firstContact: boolean
  keyType: string
}

/** A recorded host offered a different key: re-created VM, or someone in between. */
export class HostKeyChangedError extends UserError {
  readonly vm: string
  readonly expected: string[]
  readonly offered: string
  constructor(ref: HostRef, file: string, recorded: string[], offered: string, confirmedByHypervisor = false) {
    const where = hostPattern(ref.host, ref.port ?? 22)
    super(
      [
        `The SSH host key of ${ref.name} (${where}) has changed; autolabs refuses to connect.`,
        `  recorded: ${recorded.join(', ')} (in ${file})`,
        `  offered:  ${offered}`,
        confirmedByHypervisor
          ? `The Proxmox guest agent reports the new key as ${ref.name}'s own, so the VM was most likely re-created.`
          : 'Either the VM was re-created (a new VM has new host keys), or something is intercepting the connection (man-in-the-middle).',
      ].join('\n'),
      {
        suggestion:
          `If ${ref.name} was re-created on purpose, forget its old key with \`autolabs hosts forget ${ref.name}\` and run the command again. ` +
          `Otherwise compare with the VM's own key in the Proxmox console: \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\`.`,
      },
    )
    this.name = 'HostKeyChangedError'
    this.vm = ref.name
    this.expected = recorded
    this.offered = offered
  }
}

/** First contact, but the key is not the one the hypervisor reported. */
export class HostKeyMismatchError extends UserError {
  constructor(ref: HostRef, expected: string, offered: string) {
    super(
      [
        `The SSH host key offered at ${hostPattern(ref.host, ref.port ?? 22)} is not ${ref.name}'s; autolabs refuses to connect.`,
        `  ${ref.name}'s key (read through the Proxmox guest agent): ${expected}`,
        `  offered at that address:                              ${offered}`,
        'Another machine answers at this address (address conflict?), or something is intercepting the connection.',
      ].join('\n'),
      {suggestion: `Check that ${ref.host} in autolabs.yaml is ${ref.name}'s address and that no other machine uses it.`},
    )
    this.name = 'HostKeyMismatchError'
  }
}

/**
 * Verifies (or, on first contact, records) the key a server offered. Synchronous so that it can
 * run inside ssh2's hostVerifier.
 */
export function checkHostKey(file: string, ref: HostRef, keyBlob: Buffer, opts: {expectedFingerprint?: string} = {}): HostKeyCheck {
  const port = ref.port ?? 22
  const offered = fingerprint(keyBlob)
  const keyType = keyTypeOf(keyBlob)
  const expected = opts.expectedFingerprint ? normalizeFingerprint(opts.expectedFingerprint) : undefined
  // The hypervisor's word outranks the file: a key it does not report is refused even if recorded.
  if (expected && expected !== offered) throw new HostKeyMismatchError(ref, expected, offered)
  const known = lookupHost(file, ref.host, port)
  if (known.length > 0) {
    const b64 = keyBlob.toString('base64')
    if (known.some((l) => l.keyBase64 === b64)) return {fingerprint: offered, firstContact: false, keyType}
    const recorded = known.map((l) => `${fingerprint(Buffer.from(l.keyBase64, 'base64'))} (${l.type})`)
    throw new HostKeyChangedError(ref, file, recorded, `${offered} (${keyType})`, Boolean(expected))
  }
  recordHostKey(file, ref, keyBlob)
  return {fingerprint: offered, firstContact: true, keyType}
}

/** Accepts "SHA256:abc", "abc" or a whole `ssh-keygen -lf` line. */
export function normalizeFingerprint(fp: string): string {
  const m = /SHA256:([A-Za-z0-9+/]+)/.exec(fp)
  if (m) return `SHA256:${m[1]}`
  return `SHA256:${fp.trim().replace(/=+$/, '')}`
}

/** Fingerprint of an OpenSSH public key line (`ssh-ed25519 AAAA… comment`). */
export function fingerprintOfPublicKey(line: string): string {
  const b64 = line.trim().split(/\s+/)[1]
  if (!b64) throw new UserError(`Not an OpenSSH public key: "${line.slice(0, 40)}…"`)
  return fingerprint(Buffer.from(b64, 'base64'))
}
