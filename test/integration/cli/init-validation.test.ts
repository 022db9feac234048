import {mkdir, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'
import {stringify} from 'yaml'

import {removeDir, runCli, snapshotTree, tempDir} from '../../support/cli.js'

/**
 * Every validation rule, through the real CLI: each bad input exits 2, names the field path
 * (or the flag), and writes nothing — an existing workspace stays byte-for-byte unchanged.
 */
const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => removeDir(d))))

const flagCases: Array<[string, string[], string]> = [
  ['a VM address outside the subnet', ['--gitlab-ip', '10.0.0.5'], 'network.vms.gitlab.ip'],
  ['two VMs on one address', ['--gitlab-ip', '192.168.100.10', '--database-ip', '192.168.100.10'], 'network.vms.database.ip'],
  ['the network address', ['--k8s-ip', '192.168.100.0'], 'network.vms.k8s.ip'],
  ['the broadcast address', ['--k8s-ip', '192.168.100.255'], 'network.vms.k8s.ip'],
  ['the gateway address for a VM', ['--gitlab-ip', '192.168.100.1'], 'network.vms.gitlab.ip'],
  ['a gateway outside the subnet', ['--gateway', '10.1.1.1'], 'network.gateway'],
  ['a subnet with host bits', ['--subnet', '192.168.100.5/24'], 'network.subnet'],
  ['a subnet that is no CIDR', ['--subnet', '300.1.1.0/24'], 'network.subnet'],
  ['an address that is no IP', ['--gitlab-ip', 'not-an-ip'], 'network.vms.gitlab.ip'],
  ['too few k8s cores', ['--k8s-cores', '2'], 'vms.k8s.cores'],
  ['too many k8s cores', ['--k8s-cores', '32'], 'vms.k8s.cores'],
  ['too little k8s memory', ['--k8s-memory', '4G'], 'vms.k8s.memoryMiB'],
  ['an unreadable k8s memory size', ['--k8s-memory', 'lots'], 'vms.k8s.memoryMiB'],
  ['an environment name that is no DNS label', ['--name', 'Bad_Name'], 'name'],
  ['an unknown guest OS', ['--os', 'windows-11'], 'image.os'],
  ['a Proxmox URL that is not https', ['--proxmox-url', 'ftp://pve.example'], 'proxmox.url'],
  ['a token id without realm and id', ['--proxmox-token-id', 'rootpam'], 'proxmox.tokenId'],
  ['a DNS server that is no IP', ['--dns', '1.2.3'], 'network.dns'],
  ['more than three DNS servers', ['--dns', '1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4'], 'network.dns'],
  ['a malformed fingerprint', ['--proxmox-fingerprint', 'zz:11'], 'proxmox.fingerprint'],
  ['an apt proxy that is no URL', ['--apt-proxy', 'not a url'], 'network.aptProxy'],
  ['a bridge name that is invalid', ['--bridge', '1bad bridge'], 'proxmox.bridge'],
  ['a subnet too small for three VMs', ['--subnet', '192.168.100.0/30', '--gateway', '192.168.100.1'], 'network.subnet'],
  ['an unknown auth method', ['--proxmox-auth', 'kerberos'], '--proxmox-auth'],
  ['an unknown flag', ['--gitlab-ipp', '192.168.100.11'], '--gitlab-ipp'],
]

const yamlCases: Array<[string, Record<string, unknown> | string, string, string?]> = [
  ['an unknown top-level key', {netwrok: {}}, 'netwrok', 'did you mean "network"'],
  ['an unknown nested key', {network: {vms: {databse: {ip: '192.168.100.20'}}}}, 'network.vms.databse', 'did you mean "database"'],
  ['a pod CIDR overlapping the VM subnet (Calico default)', {services: {kubernetes: {podCidr: '192.168.0.0/16'}}}, 'services.kubernetes.podCidr'],
  ['a service CIDR overlapping the pod CIDR', {services: {kubernetes: {serviceCidr: '10.244.0.0/16'}}}, 'services.kubernetes.serviceCidr'],
  ['a VM on the template VMID', {vms: {gitlab: {vmid: 9000}}}, 'vms.gitlab.vmid'],
  ['two VMs on one VMID', {vms: {database: {vmid: 110}}}, 'vms.database.vmid'],
  ['a VMID below 100', {vms: {k8s: {vmid: 50}}}, 'vms.k8s.vmid'],
  ['PostgreSQL too old for GitLab 19', {services: {postgres: {version: 15}}}, 'services.postgres.version', 'needs PostgreSQL 17'],
  ['a VM name that is no DNS label', {vms: {gitlab: {name: 'gitlab_vm'}}}, 'vms.gitlab.name'],
  ['two VMs with one name', {vms: {database: {name: 'gitlab-vm'}}}, 'vms.database.name'],
  ['a YAML syntax error', 'network:\n  subnet: [unclosed\n', '(yaml)', 'line'],
  ["GitLab's SSH on the host's port 22", {services: {gitlab: {sshPort: 22}}}, 'services.gitlab.sshPort'],
  ['an unsupported Kubernetes minor', {services: {kubernetes: {version: '1.28'}}}, 'services.kubernetes.version'],
  ['insecure TLS together with a pinned fingerprint', {proxmox: {insecure: true, fingerprint: Array(32).fill('AB').join(':')}}, 'proxmox.insecure'],
  ['a database listed twice', {services: {postgres: {databases: ['autolabs', 'gitlab', 'gitlab']}}}, 'services.postgres.databases'],
  ['an unknown format version', {version: 2}, 'version'],
  ['an IP of the wrong type', {network: {vms: {gitlab: {ip: 42}}}}, 'network.vms.gitlab.ip'],
  ['a namespace that is no DNS label', {services: {kubernetes: {namespaces: ['Platform']}}}, 'services.kubernetes.namespaces[0]'],
  ['a Redis version other than 7', {services: {redis: {version: '8.0'}}}, 'services.redis.version'],
  ['MinIO as object storage', {services: {objectStorage: {engine: 'minio'}}}, 'services.objectStorage.engine'],
  ['a memory size that is not a whole number', {vms: {gitlab: {memoryMiB: 8192.5}}}, 'vms.gitlab.memoryMiB'],
  ['an unknown cloud-init mode', {cloudInit: {mode: 'magic'}}, 'cloudInit.mode'],
]

describe('init rejects invalid flags: exit 2, the field named, nothing written', () => {
  it.concurrent.each(flagCases)('%s', async (_title, args, field) => {
    const dir = await tempDir()
    dirs.push(dir)
    const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir, ...args])
    expect(r.exitCode, r.stderr).toBe(2)
    expect(r.stderr).toContain(field)
    expect(r.stderr).not.toMatch(/\n\s+at /) // no stack trace without --verbose
    expect(await snapshotTree(dir)).toEqual({})
  })
})

describe('init rejects an invalid autolabs.yaml: exit 2, the field path named, the workspace unchanged', () => {
  it.concurrent.each(yamlCases)('%s', async (_title, content, field, hint) => {
    const dir = await tempDir()
    dirs.push(dir)
    await writeFile(path.join(dir, 'autolabs.yaml'), typeof content === 'string' ? content : stringify(content))
    await mkdir(path.join(dir, '.autolabs'), {mode: 0o700})
    await writeFile(path.join(dir, '.autolabs', 'marker'), 'keep me')
    const before = await snapshotTree(dir)
    const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir])
    expect(r.exitCode, r.stderr).toBe(2)
    expect(r.stderr).toContain(field)
    if (hint) expect(r.stderr).toContain(hint)
    expect(await snapshotTree(dir)).toEqual(before)
  })
})

describe('init without a terminal fails at once when a required answer is missing', () => {
  it('names --proxmox-url when no Proxmox URL is given', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const r = await runCli(['init', '--dir', dir])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('--proxmox-url')
    expect(r.stderr).toContain('AUTOLABS_PROXMOX_URL')
    expect(await snapshotTree(dir)).toEqual({})
  })

  it('names the token secret file flag and env when no secret is given', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const r = await runCli(['init', '--yes', '--dir', dir, '--proxmox-url', 'pve.example'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('--proxmox-token-secret-file')
    expect(r.stderr).toContain('AUTOLABS_PROXMOX_TOKEN_SECRET')
    expect(await snapshotTree(dir)).toEqual({})
  })

  it('refuses a token secret that is not a UUID, without echoing it', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const r = await runCli(['init', '--yes', '--dir', dir, '--proxmox-url', 'pve.example'], {env: {AUTOLABS_PROXMOX_TOKEN_SECRET: 'hunter2-not-a-uuid'}})
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('UUID')
    expect(r.stderr + r.stdout).not.toContain('hunter2-not-a-uuid')
    expect(await snapshotTree(dir)).toEqual({})
  })

  it('reports a missing token secret file by its flag', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const r = await runCli(['init', '--yes', '--dir', dir, '--proxmox-url', 'pve.example', '--proxmox-token-secret-file', path.join(dir, 'nope')])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('--proxmox-token-secret-file')
    expect(await snapshotTree(dir)).toEqual({})
  })
})

describe('errors as JSON', () => {
  it('prints a redacted error envelope on stdout under --json', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const r = await runCli(['init', '--dry-run', '--yes', '--json', '--dir', dir, '--gitlab-ip', '10.0.0.5'])
    expect(r.exitCode).toBe(2)
    const body = JSON.parse(r.stdout)
    expect(body.error.exitCode).toBe(2)
    expect(body.error.issues[0].path).toBe('network.vms.gitlab.ip')
  })
})
