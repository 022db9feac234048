import {execFileSync, spawn} from 'node:child_process'
import {appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {stringify} from 'yaml'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {UsageError, UserError} from '../../../src/errors.js'
import {resolveSshAuth, type SshAuth} from '../../../src/ssh/auth.js'
import {JumpHost, JumpHostError} from '../../../src/ssh/jump.js'
import {ReadinessError, waitForVmReady} from '../../../src/ssh/readiness.js'
import {connectSsh, SshConnectError} from '../../../src/ssh/session.js'
import {redact} from '../../../src/util/redact.js'
import {BIN} from '../../support/cli.js'
import {freePort} from '../../support/net.js'
import {type Sshd, sshdAvailable, startSshd} from '../../support/sshd/sshd.js'

// Real OpenSSH on loopback: a "VM" sshd reached only through a "jump" sshd (direct-tcpip, as
// ssh -J does), a real ssh-agent started here, and keys protected by a passphrase.
const avail = sshdAvailable()
const hasAgent = existsSync('/usr/bin/ssh-agent') && existsSync('/usr/bin/ssh-add')
const PASSPHRASE = 'an-unguessable passphrase 42'

describe.skipIf(!avail.ok || !hasAgent)(`ssh-agent, passphrases and a jump host against real sshd (${avail.reason})`, () => {
  let vm: Sshd
  let jump: Sshd
  let dir: string
  let lockedKey: string
  let agentSock: string
  let agentPid: number
  const knownHosts = () => path.join(dir, 'known_hosts')

  const sshAdd = (key: string, passphrase = '') => {
    const askpass = path.join(dir, 'askpass')
    writeFileSync(askpass, `#!/bin/sh\necho '${passphrase}'\n`, {mode: 0o700})
    try {
      execFileSync('ssh-add', [key], {env: {PATH: process.env.PATH, SSH_AUTH_SOCK: agentSock, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0'}, stdio: 'pipe'})
    } finally {
      rmSync(askpass)
    }
  }

  beforeAll(async () => {
    ;[vm, jump] = await Promise.all([startSshd(), startSshd()])
    dir = mkdtempSync(path.join(os.tmpdir(), 'autolabs-auth-'))
    lockedKey = path.join(dir, 'locked_ed25519')
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', PASSPHRASE, '-C', 'locked', '-f', lockedKey])
    // Both servers accept the locked key (as the VMs and the Proxmox node accept the admin's key).
    for (const s of [vm, jump]) appendFileSync(path.join(s.dir, 'authorized_keys'), readFileSync(`${lockedKey}.pub`))
    agentSock = path.join(dir, 'agent.sock')
    const out = execFileSync('ssh-agent', ['-s', '-a', agentSock], {encoding: 'utf8'})
    agentPid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)![1])
  })
  afterAll(async () => {
    await Promise.all([vm?.stop(), jump?.stop()])
    if (agentPid) process.kill(agentPid, 'SIGTERM')
    if (dir) rmSync(dir, {recursive: true, force: true})
  })

  const target = (auth: SshAuth, port = vm.port) => ({name: 'database-vm', host: '127.0.0.1', port, user: vm.user, privateKeyPath: auth.keyPath})

  describe('a passphrase-protected key without an agent', () => {
    it('without a terminal and without the variable, fails at once naming both ways', async () => {
      const err = await resolveSshAuth({keyPath: lockedKey, env: {}}).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(UsageError)
      expect((err as UsageError).message).toBe(`The SSH key ${lockedKey} is protected by a passphrase, and there is no terminal to ask for it.`)
      expect((err as UsageError).suggestion).toContain('AUTOLABS_SSH_PASSPHRASE')
      expect((err as UsageError).suggestion).toContain('--ssh-passphrase-file')
      expect((err as UsageError).suggestion).toContain(`ssh-add ${lockedKey}`)
    })

    it('AUTOLABS_SSH_PASSPHRASE unlocks it in memory; the session logs in; the passphrase is redacted everywhere', async () => {
      const auth = await resolveSshAuth({keyPath: lockedKey, env: {AUTOLABS_SSH_PASSPHRASE: PASSPHRASE}})
      expect(auth).toMatchObject({encrypted: true, agent: undefined, how: `${lockedKey} (unlocked with its passphrase)`})
      expect(JSON.stringify(auth)).not.toContain(PASSPHRASE)
      expect(redact(`x ${PASSPHRASE} y`)).not.toContain(PASSPHRASE)
      const log = path.join(dir, 'env.log')
      const s = await connectSsh(target(auth), {knownHostsFile: knownHosts(), auth, logFile: log})
      expect((await s.exec('echo in', {check: true})).stdout.trim()).toBe('in')
      await s.close()
      expect(readFileSync(log, 'utf8')).not.toContain(PASSPHRASE)
    })

    it('--ssh-passphrase-file: one line, its newline not part of it; a wrong one is a usage error that does not echo it', async () => {
      const file = path.join(dir, 'pass')
      writeFileSync(file, `${PASSPHRASE}\n`, {mode: 0o600})
      const auth = await resolveSshAuth({keyPath: lockedKey, passphraseFile: file, env: {AUTOLABS_SSH_PASSPHRASE: 'ignored: the file wins'}})
      expect(auth.key).toBeDefined()
      writeFileSync(file, 'not-the-passphrase\n')
      const err = (await resolveSshAuth({keyPath: lockedKey, passphraseFile: file, env: {}}).catch((e: unknown) => e)) as UsageError
      expect(err).toBeInstanceOf(UsageError)
      expect(err.message).toBe(`The passphrase for the SSH key ${lockedKey} is wrong (from --ssh-passphrase-file).`)
      expect(`${err.message} ${err.suggestion}`).not.toContain('not-the-passphrase')
      const missing = (await resolveSshAuth({keyPath: lockedKey, passphraseFile: path.join(dir, 'nope'), env: {}}).catch((e: unknown) => e)) as UsageError
      expect(missing.message).toMatch(/^Cannot read --ssh-passphrase-file .*nope \(ENOENT\)\.$/)
    })

    it('on a terminal it asks once (hidden prompt), again only after a wrong answer, at most three times', async () => {
      const asked: string[] = []
      const answers = ['wrong', PASSPHRASE]
      const auth = await resolveSshAuth({keyPath: lockedKey, env: {}, askPassphrase: async (m) => (asked.push(m), answers.shift()!)})
      expect(auth.key).toBeDefined()
      expect(asked).toEqual([`Passphrase for ${lockedKey}:`, `Passphrase for ${lockedKey} (wrong, try again):`])
      const err = await resolveSshAuth({keyPath: lockedKey, env: {}, askPassphrase: async () => 'wrong again'}).catch((e: unknown) => e)
      expect((err as Error).message).toBe(`The passphrase for the SSH key ${lockedKey} was wrong three times.`)
    })
  })

  it.skipIf(!existsSync('/usr/bin/script'))('the CLI on a terminal asks once on a hidden prompt (stderr), typed after it appears, and never echoes it', async () => {
    const ws = mkdtempSync(path.join(os.tmpdir(), 'autolabs-prompt-'))
    writeFileSync(
      path.join(ws, 'autolabs.yaml'),
      stringify({
        network: {subnet: '127.0.0.0/24', gateway: '127.0.0.1', adminCidrs: ['127.0.0.0/24'], vms: {gitlab: {ip: '127.0.0.2'}, database: {ip: '127.0.0.3'}, k8s: {ip: '127.0.0.4'}}},
        ssh: {publicKeyFile: `${lockedKey}.pub`, privateKeyFile: lockedKey, user: 'debian', jumpHost: 'none'},
      }),
    )
    const env: Record<string, string> = {PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NO_COLOR: '1', TERM: 'xterm'}
    // script(1) gives the CLI a pseudo-terminal; the passphrase is typed once the prompt shows.
    const child = spawn('script', ['-qfec', `node ${BIN} status --connect-timeout 1 --dir ${ws}`, '/dev/null'], {env})
    let screen = ''
    child.stdout.on('data', (d) => (screen += String(d)))
    const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? -1)))
    const until = Date.now() + 30_000
    while (!screen.includes(`Passphrase for ${lockedKey}:`) && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
    child.stdin.write(`${PASSPHRASE}\r`)
    const code = await exited
    rmSync(ws, {recursive: true, force: true})
    // The prompt redraws its line per key typed; a wrong answer would ask again.
    expect(screen, screen.slice(-1500)).toContain(`Passphrase for ${lockedKey}:`)
    expect(screen).not.toContain('wrong, try again')
    expect(screen).not.toContain(PASSPHRASE)
    // Nothing listens for these "VMs": status answers, the key having been unlocked.
    expect(code).toBe(3)
  })

  describe('ssh-agent', () => {
    it('an agent holding the configured (locked) key is used alone: nothing is asked, no passphrase kept', async () => {
      sshAdd(lockedKey, PASSPHRASE)
      let asked = 0
      const auth = await resolveSshAuth({keyPath: lockedKey, env: {SSH_AUTH_SOCK: agentSock}, askPassphrase: async () => (asked++, '')})
      expect(asked).toBe(0)
      expect(auth).toMatchObject({agent: agentSock, agentHasKey: true, key: undefined, how: `ssh-agent (${agentSock}), which holds ${lockedKey}`})
      const s = await connectSsh(target(auth), {knownHostsFile: knownHosts(), auth})
      expect((await s.exec('echo agent', {check: true})).stdout.trim()).toBe('agent')
      await s.close()
      execFileSync('ssh-add', ['-D'], {env: {PATH: process.env.PATH, SSH_AUTH_SOCK: agentSock}, stdio: 'pipe'})
    })

    it("an agent holding only other keys is offered first and the VM accepts one of them; the locked file is not asked for", async () => {
      sshAdd(vm.keyPath)
      try {
        const auth = await resolveSshAuth({keyPath: lockedKey, env: {SSH_AUTH_SOCK: agentSock}, askPassphrase: async () => {
          throw new Error('must not ask')
        }})
        expect(auth).toMatchObject({agentHasKey: false, agentKeys: 1})
        expect(auth.key).toBeUndefined()
        expect(auth.how).toContain('is passphrase-protected and not in the agent')
        const s = await connectSsh(target(auth), {knownHostsFile: knownHosts(), auth})
        await s.close()
      } finally {
        execFileSync('ssh-add', ['-D'], {env: {PATH: process.env.PATH, SSH_AUTH_SOCK: agentSock}, stdio: 'pipe'})
      }
    })

    it('an agent whose keys the server refuses: the error names the agent and how to unlock the file', async () => {
      const stranger = path.join(dir, 'stranger')
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger])
      sshAdd(stranger)
      try {
        const auth = await resolveSshAuth({keyPath: lockedKey, env: {SSH_AUTH_SOCK: agentSock}})
        const err = (await connectSsh(target(auth), {knownHostsFile: knownHosts(), auth}).catch((e: unknown) => e)) as SshConnectError
        expect(err).toBeInstanceOf(SshConnectError)
        expect(err.kind).toBe('auth')
        expect(err.reason).toBe(`the 1 key of ssh-agent was not accepted for ${vm.user} (${lockedKey} is passphrase-protected and was not unlocked: \`ssh-add ${lockedKey}\`, or AUTOLABS_SSH_PASSPHRASE)`)
      } finally {
        execFileSync('ssh-add', ['-D'], {env: {PATH: process.env.PATH, SSH_AUTH_SOCK: agentSock}, stdio: 'pipe'})
      }
    })

    it('an agent that does not answer is noted, and the key file is used', async () => {
      const auth = await resolveSshAuth({keyPath: vm.keyPath, env: {SSH_AUTH_SOCK: path.join(dir, 'no-agent.sock')}})
      expect(auth).toMatchObject({agent: undefined, encrypted: false})
      expect(auth.key).toBeDefined()
    })
  })

  describe('through a jump host', () => {
    // Unlocking costs seconds of CPU (bcrypt_pbkdf in JavaScript): once for these tests, as once per run.
    let unlocking: Promise<SshAuth> | undefined
    const unlocked = () => (unlocking ??= resolveSshAuth({keyPath: lockedKey, env: {AUTOLABS_SSH_PASSPHRASE: PASSPHRASE}}))
    const jumpHost = (auth: SshAuth, opts: {expectedFingerprint?: string} = {}) =>
      new JumpHost({user: jump.user, host: '127.0.0.1', port: jump.port}, {auth, knownHostsFile: knownHosts(), ...opts})

    it('tunnels the session through the jump host, pins its key as jump-host, and says so in the log', async () => {
      const auth = await unlocked()
      const via = jumpHost(auth)
      const log = path.join(dir, 'jump.log')
      try {
        const s = await connectSsh(target(auth), {knownHostsFile: knownHosts(), auth, jump: via, logFile: log})
        // The VM sees the connection coming from the jump host's side (loopback here), over the tunnel.
        expect((await s.exec('echo "$SSH_CONNECTION"', {check: true})).stdout).toMatch(new RegExp(`^127\\.0\\.0\\.1 \\d+ 127\\.0\\.0\\.1 ${vm.port}\\n$`))
        await s.upload('payload\n', path.join(vm.dir, 'uploaded.txt'), 0o600)
        expect(readFileSync(path.join(vm.dir, 'uploaded.txt'), 'utf8')).toBe('payload\n')
        await s.close()
        expect(readFileSync(log, 'utf8')).toContain(`through ${jump.user}@[127.0.0.1]:${jump.port}`)
        expect(readFileSync(knownHosts(), 'utf8')).toContain(`[127.0.0.1]:${jump.port} ssh-ed25519 ${jump.hostPublicKey.split(' ')[1]} autolabs:jump-host`)
      } finally {
        await via.close()
      }
    })

    it('a closed port behind the jump host is "connection refused (through the jump host …)"; readiness waits and then names the jump host', async () => {
      const auth = await unlocked()
      const via = jumpHost(auth)
      const closed = await freePort()
      try {
        const err = (await connectSsh(target(auth, closed), {knownHostsFile: knownHosts(), auth, jump: via}).catch((e: unknown) => e)) as SshConnectError
        expect(err).toBeInstanceOf(SshConnectError)
        expect(err.kind).toBe('refused')
        expect(err.reason).toBe(`connection refused (through the jump host ${jump.user}@[127.0.0.1]:${jump.port})`)
        const seen: string[] = []
        const r = (await waitForVmReady(target(auth, closed), {
          knownHostsFile: knownHosts(),
          sshTimeoutMs: 2500,
          backoff: {initialMs: 200, maxMs: 400},
          onStatus: (_vm, st) => seen.push(st),
          auth,
          jump: via,
        }).catch((e: unknown) => e)) as ReadinessError
        expect(r).toBeInstanceOf(ReadinessError)
        expect(r.phase).toBe('tcp')
        expect(r.message).toMatch(/^SSH not up after 2\.5 s at 127\.0\.0\.1:\d+: connection refused \(from /)
        expect(r.suggestion).toContain(`the jump host ${jump.user}@[127.0.0.1]:${jump.port} can reach it`)
        expect(seen.length).toBeGreaterThan(1)
      } finally {
        await via.close()
      }
    })

    it('a jump host whose key is not the pinned fingerprint is refused (no connection to the VM is tried)', async () => {
      const auth = await unlocked()
      const via = new JumpHost({user: jump.user, host: '127.0.0.1', port: jump.port}, {auth, knownHostsFile: path.join(dir, 'fresh_known_hosts'), expectedFingerprint: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'})
      const err = await connectSsh(target(auth), {knownHostsFile: knownHosts(), auth, jump: via}).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(UserError)
      expect((err as Error).message).toContain('is not jump-host')
      await via.close()
    })

    it('a jump host that is down is a JumpHostError naming ssh.jumpHost', async () => {
      const auth = await unlocked()
      const via = new JumpHost({user: 'root', host: '127.0.0.1', port: await freePort()}, {auth, knownHostsFile: knownHosts()})
      const err = (await connectSsh(target(auth), {knownHostsFile: knownHosts(), auth, jump: via}).catch((e: unknown) => e)) as JumpHostError
      expect(err).toBeInstanceOf(JumpHostError)
      expect(err.message).toMatch(/^Cannot connect to the jump host root@\[127\.0\.0\.1\]:\d+: connection refused$/)
      expect(err.suggestion).toContain('ssh.jumpHost')
    })
  })
})
