import {execFileSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {
  checkHostKey,
  fingerprint,
  fingerprintOfPublicKey,
  forgetHost,
  HostKeyChangedError,
  HostKeyMismatchError,
  hostPattern,
  keyTypeOf,
  lookupHost,
  normalizeFingerprint,
} from '../../../src/ssh/known-hosts.js'
import {missing} from '../../support/tools.js'

// Real keys made by ssh-keygen, so fingerprints are compared with OpenSSH's own.
function newKey(dir: string, name: string): {blob: Buffer; line: string; fp: string} {
  const file = path.join(dir, name)
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file])
  const line = readFileSync(`${file}.pub`, 'utf8').trim()
  const fp = execFileSync('ssh-keygen', ['-lf', `${file}.pub`]).toString().split(' ')[1]
  return {blob: Buffer.from(line.split(' ')[1], 'base64'), line, fp}
}

const haveKeygen = (() => {
  try {
    execFileSync('ssh-keygen', ['-?'], {stdio: 'ignore'})
    return true
  } catch (error) {
    return (error as {status?: number}).status !== undefined
  }
})()

describe.skipIf(missing('ssh-keygen', haveKeygen))('known_hosts pinning (ssh-keygen for real keys)', () => {
  let dir: string
  let file: string
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'autolabs-kh-'))
    file = path.join(dir, '.autolabs', 'known_hosts')
  })
  afterEach(() => rmSync(dir, {recursive: true, force: true}))

  it('computes the same SHA256 fingerprint and key type as OpenSSH', () => {
    const k = newKey(dir, 'a')
    expect(fingerprint(k.blob)).toBe(k.fp)
    expect(fingerprintOfPublicKey(k.line)).toBe(k.fp)
    expect(keyTypeOf(k.blob)).toBe('ssh-ed25519')
  })

  it('writes host for port 22 and [host]:port otherwise, with the VM name as comment, mode 0600', () => {
    const a = newKey(dir, 'a')
    const b = newKey(dir, 'b')
    expect(checkHostKey(file, {name: 'gitlab-vm', host: '10.0.0.4'}, a.blob)).toEqual({fingerprint: a.fp, firstContact: true, keyType: 'ssh-ed25519'})
    checkHostKey(file, {name: 'gitlab-ssh', host: '10.0.0.4', port: 2222}, b.blob)
    const lines = readFileSync(file, 'utf8').trim().split('\n')
    expect(lines[0]).toBe(`10.0.0.4 ${a.line.split(' ').slice(0, 2).join(' ')} autolabs:gitlab-vm`)
    expect(lines[1]).toMatch(/^\[10\.0\.0\.4\]:2222 ssh-ed25519 \S+ autolabs:gitlab-ssh$/)
    expect(hostPattern('10.0.0.4', 2222)).toBe('[10.0.0.4]:2222')
    // The two ports are different hosts to OpenSSH and to us.
    expect(lookupHost(file, '10.0.0.4', 22).map((l) => l.keyBase64)).toEqual([a.blob.toString('base64')])
    expect(checkHostKey(file, {name: 'gitlab-ssh', host: '10.0.0.4', port: 2222}, b.blob).firstContact).toBe(false)
  })

  it('refuses a different key for a recorded host and leaves the file as it was', () => {
    const a = newKey(dir, 'a')
    const b = newKey(dir, 'b')
    checkHostKey(file, {name: 'database-vm', host: '10.0.0.5'}, a.blob)
    const before = readFileSync(file, 'utf8')
    let err: unknown
    try {
      checkHostKey(file, {name: 'database-vm', host: '10.0.0.5'}, b.blob)
    } catch (error) {
      err = error
    }
    expect(err).toBeInstanceOf(HostKeyChangedError)
    expect((err as HostKeyChangedError).expected).toEqual([`${a.fp} (ssh-ed25519)`])
    expect((err as HostKeyChangedError).offered).toBe(`${b.fp} (ssh-ed25519)`)
    expect(readFileSync(file, 'utf8')).toBe(before)
  })

  it('trusts the hypervisor-reported fingerprint over the file, and says so when a recorded key changed', () => {
    const a = newKey(dir, 'a')
    const b = newKey(dir, 'b')
    const ref = {name: 'database-vm', host: '10.0.0.5'}
    checkHostKey(file, ref, a.blob)
    // Recorded and offered agree, but the guest agent reports another key: refused.
    expect(() => checkHostKey(file, ref, a.blob, {expectedFingerprint: b.fp})).toThrow(HostKeyMismatchError)
    // The VM was re-created: the agent confirms the offered key; still refused until forgotten.
    let err: unknown
    try {
      checkHostKey(file, ref, b.blob, {expectedFingerprint: b.fp})
    } catch (error) {
      err = error
    }
    expect(err).toBeInstanceOf(HostKeyChangedError)
    expect((err as Error).message).toContain("The Proxmox guest agent reports the new key as database-vm's own")
  })

  it('reads lines hashed by ssh-keygen -H, and forgets them by address', async () => {
    const a = newKey(dir, 'a')
    checkHostKey(file, {name: 'k8s-vm', host: '10.0.0.6'}, a.blob)
    checkHostKey(file, {name: 'k8s-vm', host: '10.0.0.6', port: 2222}, newKey(dir, 'c').blob)
    execFileSync('ssh-keygen', ['-H', '-f', file], {stdio: 'ignore'})
    expect(readFileSync(file, 'utf8')).not.toContain('10.0.0.6')
    expect(checkHostKey(file, {name: 'k8s-vm', host: '10.0.0.6'}, a.blob).firstContact).toBe(false)
    expect(() => checkHostKey(file, {name: 'k8s-vm', host: '10.0.0.6'}, newKey(dir, 'b').blob)).toThrow(HostKeyChangedError)
    expect(await forgetHost(file, '10.0.0.6')).toBe(2)
    expect(readFileSync(file, 'utf8').trim()).toBe('')
  })

  it('forgets by VM name or by address (one port or all), keeping other hosts and comments', async () => {
    checkHostKey(file, {name: 'gitlab-vm', host: '10.0.0.4'}, newKey(dir, 'a').blob)
    checkHostKey(file, {name: 'gitlab-vm', host: '10.0.0.4', port: 2222}, newKey(dir, 'b').blob)
    checkHostKey(file, {name: 'database-vm', host: '10.0.0.5'}, newKey(dir, 'c').blob)
    writeFileSync(file, `# kept comment\n${readFileSync(file, 'utf8')}`)
    expect(await forgetHost(file, '10.0.0.4', 2222)).toBe(1)
    expect(await forgetHost(file, 'gitlab-vm')).toBe(1)
    expect(await forgetHost(file, 'nothing-here')).toBe(0)
    const left = readFileSync(file, 'utf8')
    expect(left).toMatch(/^# kept comment\n10\.0\.0\.5 ssh-ed25519 \S+ autolabs:database-vm\n?$/)
    expect(await forgetHost(path.join(dir, 'missing'), 'x')).toBe(0)
  })

  it('accepts a fingerprint in the forms the guest agent or a person may give it', () => {
    expect(normalizeFingerprint('256 SHA256:abcDEF+/0 root@vm (ED25519)')).toBe('SHA256:abcDEF+/0')
    expect(normalizeFingerprint('abcDEF+/0=')).toBe('SHA256:abcDEF+/0')
  })
})
