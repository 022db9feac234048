import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'

import {generateSecrets, saveSecrets} from '../../../src/workspace/secrets.js'
import {Workspace} from '../../../src/workspace/workspace.js'
import {makeLeaf} from '../../support/certs.js'
import {removeDir, runCli, tempDir} from '../../support/cli.js'

// `autolabs deploy` refuses bad input before it contacts any VM (no network here).
describe('autolabs deploy (built CLI): input errors come before any connection', () => {
  let dir: string
  beforeEach(async () => {
    dir = await tempDir()
    await writeFile(path.join(dir, 'autolabs.yaml'), 'name: t\n')
  })
  afterEach(async () => {
    await removeDir(dir)
  })

  it('an unknown --only value exits 2 and lists the valid VMs and stages', async () => {
    await saveSecrets(new Workspace(dir), generateSecrets(['autolabs', 'zitadel', 'gitlab']))
    const r = await runCli(['deploy', '--only', 'postgres', '--dir', dir])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('--only postgres: no VM or stage has that name.')
    expect(r.stderr).toMatch(/gitlab-vm, database-vm, k8s-vm.*base, gitlab, database, k8s/s)
  })

  it('a workspace without secrets exits 1 and says to run init', async () => {
    const r = await runCli(['deploy', '--dir', dir, '--json'])
    expect(r.exitCode).toBe(1)
    expect(JSON.parse(r.stdout).error.message).toMatch(/No secrets in .*secrets\.yaml/)
    expect(r.stderr).toContain('autolabs init')
  })

  it('a certificate that is not for the https externalUrl exits 2 naming services.gitlab.tls.certFile, before any connection', async () => {
    await saveSecrets(new Workspace(dir), generateSecrets(['autolabs', 'zitadel', 'gitlab']))
    const leaf = makeLeaf(dir, 'other', {san: 'DNS:other.lab'})
    const key = await readFile(leaf.key, 'utf8')
    await writeFile(
      path.join(dir, 'autolabs.yaml'),
      'name: t\nservices:\n  gitlab:\n    externalUrl: https://gitlab.lab\n    tls:\n      certFile: other.crt\n      keyFile: other.key\n',
    )
    const r = await runCli(['deploy', '--dir', dir, '--json'])
    expect(r.exitCode).toBe(2)
    const err = JSON.parse(r.stdout).error
    expect(err.message).toContain("services.gitlab.tls.certFile: is for DNS:other.lab, not for gitlab.lab (the externalUrl's host)")
    for (const line of key.split('\n').filter((l) => l.length > 20)) expect(r.stdout + r.stderr).not.toContain(line)
    // --only without gitlab-vm does not need the certificate.
    const other = await runCli(['deploy', '--dir', dir, '--only', 'database'])
    expect(other.stderr).not.toContain('services.gitlab.tls')
  })

  it('an unreadable SSH key exits 1 naming ssh.privateKeyFile', async () => {
    await saveSecrets(new Workspace(dir), generateSecrets(['autolabs', 'zitadel', 'gitlab']))
    await writeFile(path.join(dir, 'autolabs.yaml'), 'name: t\nssh:\n  privateKeyFile: ./no-such-key\n')
    const r = await runCli(['deploy', '--dir', dir])
    expect(r.exitCode).toBe(1)
    expect(r.stderr).toMatch(/Cannot read the SSH key \S*no-such-key/)
    expect(r.stderr).toContain('ssh.privateKeyFile')
  })
})
