/**
 * Lab machines for tests: real Debian 12 systemd machines (systemd-nspawn --boot) with sshd,
 * each in its own network namespace on a private bridge, as described in shared/LAB.md.
 *
 *   import {labAvailable, startLab} from '../support/lab/lab.js'
 *   const avail = labAvailable()
 *   describe.skipIf(!avail.ok)(`... (lab: ${avail.reason})`, () => {
 *     let lab: Lab
 *     beforeAll(async () => { lab = await startLab({name: 'deploy-db', subnet: 31, machines: [{name: 'database-vm'}]}) })
 *     afterAll(async () => { await lab?.stop() })
 *     it('...', async () => {
 *       const m = lab.machine('database-vm')       // {name, ip, user, keyPath, hostKeyFingerprint, ...}
 *       await m.exec('systemctl is-active ssh')    // as root inside the machine (nsenter, no SSH)
 *       // connectSsh({name: m.name, host: m.ip, user: m.user, privateKeyPath: m.keyPath}, ...)
 *     })
 *   })
 *
 * - `subnet` is X in 10.99.X.0/24 and identifies the lab: use a different X in each test file
 *   (taken: 20 smoke, 21 ssh-readiness, 22 ssh-session, 23 cleanup, 40 deploy-database,
 *   45 scratch, 46 backup-status, 110 cloud-image, 111 cloud-ubuntu-like, 160 deploy-signals). The gateway (the host's bridge
 *   address) is .1; machines get .10, .11, ... unless `ip` is given.
 * - The rootfs is built once (debootstrap, ~1 min) into /var/cache/autolabs-lab/ and reused
 *   across runs; each machine runs on its own overlay over it (or an unpacked copy where overlayfs
 *   is missing), with its own SSH host keys.
 * - The cloud user (default `debian`) has passwordless sudo and the lab's key (or `publicKey`).
 * - apt works through apt-cacher-ng on the host (`lab.aptProxy`, shared by every lab, restricted
 *   to the host's Debian mirror). `aptProxyInMachine: false` leaves the machine without the
 *   proxy setting, as a fresh cloud VM would be (the product's apt-proxy option then sets it).
 * - Machines have no default route and no DNS: nothing leaves the bridge except through the proxy.
 * - `image` picks the root filesystem: 'minbase' (default; debootstrap minbase, boots in ~10 s,
 *   the user and key put in place by the harness) or a cloud image — 'debian-cloud' (Debian 12's
 *   generic cloud image's packages and services: cloud-init, unattended-upgrades running, netplan
 *   + systemd-networkd, systemd-resolved, apt-daily timers) or 'ubuntu-like' (that plus
 *   needrestart and an inactive ufw). Cloud images boot THROUGH cloud-init from the NoCloud seed
 *   `cloudInit` returns per machine (see nocloud.ts): the user, its key, the host keys and the
 *   hostname come from it, its static address and DNS are rendered into netplan (the address is
 *   also set from the host side: networkd does not take up the veth here, see docs/lab.md), and
 *   `hostKeyFingerprint` is read after boot. See build-rootfs-cloud.sh for the sources.
 * - `stop()` powers machines off (SIGTERM, then SIGKILL), removes namespaces, links and files;
 *   a process exit does the same synchronously; a stale lab with the same subnet from a crashed
 *   run is cleaned up at the next start.
 */
import {execFile, execFileSync, spawn, type ChildProcess} from 'node:child_process'
import {createHash} from 'node:crypto'
import {closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const LAB_CACHE_DIR = process.env.AUTOLABS_LAB_CACHE ?? '/var/cache/autolabs-lab'
export const LAB_RUN_DIR = process.env.AUTOLABS_LAB_RUN ?? '/var/tmp/autolabs-lab'
export const ROOTFS_TAR = path.join(LAB_CACHE_DIR, 'rootfs-bookworm.tar')
export const APT_PROXY_PORT = 3149

const HERE = path.dirname(fileURLToPath(import.meta.url))
const BUILD_SCRIPT = path.join(HERE, 'build-rootfs.sh')
const BUILD_CLOUD_SCRIPT = path.join(HERE, 'build-rootfs-cloud.sh')

/** The lab's root filesystems; see the header. */
export type LabImage = 'minbase' | 'debian-cloud' | 'ubuntu-like'
export const LAB_IMAGES: readonly LabImage[] = ['minbase', 'debian-cloud', 'ubuntu-like']

/** What a NoCloud data source reads (the files of Proxmox's cidata drive). */
export interface NoCloudSeed {
  userData: string
  metaData: string
  networkConfig?: string
  vendorData?: string
}

/**
 * The tarball of an image. Cloud images carry the build script's hash in their name, so a
 * changed recipe builds a new tarball instead of reusing a stale one from the shared cache.
 */
export function rootfsTar(image: LabImage): string {
  if (image === 'minbase') return ROOTFS_TAR
  const recipe = createHash('sha256').update(readFileSync(BUILD_CLOUD_SCRIPT)).digest('hex').slice(0, 10)
  return path.join(LAB_CACHE_DIR, `rootfs-bookworm-${image === 'debian-cloud' ? 'cloud' : image}-${recipe}.tar`)
}
const PATH_IN_MACHINE = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export interface ExecResult {
  code: number
  stdout: string
  stderr: string
}

export interface LabMachineSpec {
  name: string
  /** Full address inside the lab's /24; default 10.99.X.(10+index). */
  ip?: string
}

export interface StartLabOptions {
  /** Names the lab in logs and errors (e.g. the test file's topic). */
  name: string
  /** X in 10.99.X.0/24, 2..254; unique per test file. Default: derived from `name`. */
  subnet?: number
  machines: LabMachineSpec[]
  /** The cloud image's default user. Default `debian`. */
  user?: string
  /** An OpenSSH public key line for the user; default: a key generated for this lab. */
  publicKey?: string
  /** Write the apt proxy into the machine (default true). */
  aptProxyInMachine?: boolean
  /** Boot the machines now and wait for sshd (default true). With false, call `lab.boot(name)`. */
  boot?: boolean
  /** Bound on boot-to-sshd per machine. Default 90 s. */
  bootTimeoutMs?: number
  /** Change a machine's filesystem before it boots (e.g. install a fake command). */
  prepare?: (m: {name: string; rootfs: string}) => void | Promise<void>
  /** The root filesystem (default 'minbase'); cloud images need `cloudInit`. */
  image?: LabImage
  /**
   * A cloud image's NoCloud seed for one machine: `mac` is its network card's address (as a
   * Proxmox VM's net0), `publicKey` the lab's key. The seed must give the machine `ip`.
   */
  cloudInit?: (m: {name: string; ip: string; mac: string; publicKey: string}) => NoCloudSeed | Promise<NoCloudSeed>
}

export interface LabMachine {
  name: string
  ip: string
  user: string
  /** Private key accepted for `user` (0600). */
  keyPath: string
  /** Host path of the machine's root filesystem. */
  rootfs: string
  /** SHA256:… of the machine's ed25519 host key, as `ssh-keygen -lf` shows it ('' on a cloud image until it booted: cloud-init makes the keys). */
  hostKeyFingerprint: string
  /** MAC address of its network card. */
  mac: string
  /** Host path of its console output (where cloud-init prints the host keys). */
  consoleLog: string
  /** Milliseconds from starting systemd-nspawn to sshd's banner (undefined until booted). */
  bootMs?: number
  /** pid of systemd-nspawn (undefined until booted). */
  pid?: number
  /** Runs `cmd` with bash as root inside the machine (nsenter; does not need sshd). */
  exec(cmd: string, opts?: {input?: string; timeoutMs?: number}): Promise<ExecResult>
}

export interface Lab {
  name: string
  subnet: string
  gateway: string
  /** http://<gateway>:3149 — apt-cacher-ng on the host. */
  aptProxy: string
  bridge: string
  dir: string
  keyPath: string
  machines: LabMachine[]
  /** ms spent building the rootfs tarball in this process (0 when the cached one was used). */
  rootfsBuildMs: number
  machine(name: string): LabMachine
  /** Boots a machine prepared with `boot: false` (or stopped) and waits for sshd. */
  boot(name: string, opts?: {waitForSsh?: boolean}): Promise<void>
  /** Powers one machine off (SIGTERM to nspawn, bounded), keeping its disk and network. */
  shutdown(name: string): Promise<void>
  /** Kills sshd in a machine: 'sessions' drops every SSH connection; 'all' also the listener (systemd restarts it). */
  killSshd(name: string, mode?: 'sessions' | 'all'): Promise<void>
  /** Pulls (false) or plugs back (true) the machine's network cable: its host-side veth goes down/up. */
  setLink(name: string, up: boolean): Promise<void>
  /** New SSH host keys and an sshd restart: what a re-created VM at the same address looks like. */
  regenerateHostKeys(name: string): Promise<string>
  /** What each running machine's systemd and sshd say: printed when a lab test fails (diagnose.ts). */
  diagnose(): Promise<string>
  stop(): Promise<void>
}

/**
 * Whether lab tests can run here; `reason` says why not (for skipIf titles). In CI a missing
 * piece fails the test file instead (AUTOLABS_SKIP_LAB stays an explicit way to leave them out).
 */
export function labAvailable(): {ok: boolean; reason: string} {
  const avail = labPrerequisites()
  if (!avail.ok && process.env.CI && !process.env.AUTOLABS_SKIP_LAB) throw new Error(`CI: lab tests cannot run: ${avail.reason}`)
  return avail
}

function labPrerequisites(): {ok: boolean; reason: string} {
  if (process.env.AUTOLABS_SKIP_LAB) return {ok: false, reason: 'AUTOLABS_SKIP_LAB is set'}
  if (process.platform !== 'linux') return {ok: false, reason: 'lab machines need Linux'}
  if (process.getuid?.() !== 0) return {ok: false, reason: 'lab machines need root (systemd-nspawn, network namespaces)'}
  const need: Array<[string, string]> = [
    ['/usr/bin/systemd-nspawn', 'systemd-container'],
    ['/usr/sbin/debootstrap', 'debootstrap'],
    ['/usr/sbin/ip', 'iproute2'],
    ['/usr/bin/nsenter', 'util-linux'],
    ['/usr/sbin/apt-cacher-ng', 'apt-cacher-ng'],
    ['/usr/bin/ssh-keygen', 'openssh-client'],
    ['/usr/bin/flock', 'util-linux'],
  ]
  const missing = need.filter(([bin]) => !existsSync(bin)).map(([bin, pkg]) => `${bin} (apt-get install ${pkg})`)
  if (missing.length > 0) return {ok: false, reason: `missing ${missing.join(', ')}`}
  return {ok: true, reason: 'root with systemd-nspawn, debootstrap, iproute2 and apt-cacher-ng'}
}

// ---------------------------------------------------------------------------------------------
// small process helpers

function run(cmd: string, args: string[], opts: {input?: string; timeoutMs?: number; allowFail?: boolean} = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, {timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, killSignal: 'SIGKILL'}, (err, stdout, stderr) => {
      const code = err ? (typeof (err as {code?: unknown}).code === 'number' ? ((err as {code: number}).code) : 1) : 0
      const res = {code, stdout: String(stdout), stderr: String(stderr)}
      if (err && !opts.allowFail) {
        reject(new Error(`${cmd} ${args.join(' ')} failed (${(err as Error).message.split('\n')[0]}): ${res.stderr.trim().slice(-2000)}`))
      } else resolve(res)
    })
    if (opts.input !== undefined) child.stdin?.end(opts.input)
    else child.stdin?.end()
  })
}

function runSyncQuiet(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, {stdio: 'ignore', timeout: 10_000})
  } catch {
    // best effort: cleanup of something that may not exist
  }
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms))
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return ''
  }
}

/** The container's PID 1: nspawn's child running systemd. */
function leaderOf(nspawnPid: number): number | undefined {
  try {
    for (const task of readdirSync(`/proc/${nspawnPid}/task`)) {
      const kids = readFileSync(`/proc/${nspawnPid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)
      for (const k of kids) {
        const comm = readFileSync(`/proc/${k}/comm`, 'utf8').trim()
        if (comm === 'systemd' || comm === 'init') return Number(k)
      }
    }
  } catch {
    // gone
  }
  return undefined
}

export function fingerprintOfPublicKeyLine(line: string): string {
  const b64 = line.trim().split(/\s+/)[1]
  if (!b64) throw new Error(`not an OpenSSH public key line: ${line}`)
  return `SHA256:${createHash('sha256').update(Buffer.from(b64, 'base64')).digest('base64').replace(/=+$/, '')}`
}

/** TCP connect and read the SSH banner: sshd is really serving. */
function sshBanner(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({host, port})
    let buf = ''
    const done = (ok: boolean) => {
      sock.destroy()
      clearTimeout(t)
      resolve(ok)
    }
    const t = setTimeout(() => done(false), timeoutMs)
    sock.on('data', (d) => {
      buf += d.toString('latin1')
      if (buf.includes('SSH-')) done(true)
    })
    sock.on('error', () => done(false))
    sock.on('close', () => done(false))
  })
}

// ---------------------------------------------------------------------------------------------
// host side: rootfs and apt proxy (shared by every lab, built/started under a file lock)

function hostMirror(): string {
  try {
    const src = readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8')
    const m = /^URIs:\s*(\S+)/m.exec(src)
    if (m) return m[1].replace(/\/$/, '')
  } catch {
    // fall through
  }
  try {
    const src = readFileSync('/etc/apt/sources.list', 'utf8')
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(src)
    if (m) return m[1].replace(/\/$/, '')
  } catch {
    // fall through
  }
  return 'http://deb.debian.org/debian'
}

const rootfsPromises = new Map<LabImage, Promise<number>>()

/** Ensures the image's rootfs tarball exists; returns the ms spent building (0 if cached). */
export function ensureRootfs(image: LabImage = 'minbase'): Promise<number> {
  let p = rootfsPromises.get(image)
  if (p) return p
  p = (async () => {
    const tar = rootfsTar(image)
    if (existsSync(tar)) return 0
    mkdirSync(LAB_CACHE_DIR, {recursive: true})
    let before = 0
    let args: string[]
    if (image === 'minbase') {
      args = [BUILD_SCRIPT, tar, hostMirror()]
    } else {
      // A cloud image is the minbase (or the Debian cloud image) plus packages from the archive.
      const from: LabImage = image === 'debian-cloud' ? 'minbase' : 'debian-cloud'
      before = (await Promise.all([ensureRootfs(from), ensureAptProxy()]))[0]
      args = [BUILD_CLOUD_SCRIPT, image, tar, rootfsTar(from), `http://127.0.0.1:${APT_PROXY_PORT}`]
    }
    const started = Date.now()
    // flock: several test processes (and helpers) may ask at once; the script re-checks.
    const script = `out=$1; shift; [ -e "$out" ] || bash "$@"`
    await run('flock', ['-w', '900', path.join(LAB_CACHE_DIR, '.build.lock'), 'bash', '-c', script, 'build', tar, ...args], {timeoutMs: 1_200_000})
    if (!existsSync(tar)) throw new Error(`rootfs build did not produce ${tar}`)
    return before + Date.now() - started
  })()
  rootfsPromises.set(image, p)
  p.catch(() => rootfsPromises.delete(image))
  return p
}

let aptProxyPromise: Promise<void> | undefined

/** Starts the shared apt-cacher-ng (idempotent; it outlives the test process on purpose). */
export function ensureAptProxy(): Promise<void> {
  aptProxyPromise ??= (async () => {
    const base = path.join(LAB_CACHE_DIR, 'acng')
    if (await portOpen('127.0.0.1', APT_PROXY_PORT)) return
    const conf = path.join(base, 'etc')
    for (const d of [conf, path.join(base, 'cache'), path.join(base, 'log')]) mkdirSync(d, {recursive: true})
    writeFileSync(path.join(conf, 'backends_debian'), `${hostMirror()}/\n`)
    writeFileSync(
      path.join(conf, 'acng.conf'),
      [
        `CacheDir: ${base}/cache`,
        `LogDir: ${base}/log`,
        'SupportDir: /usr/lib/apt-cacher-ng',
        `Port: ${APT_PROXY_PORT}`,
        'BindAddress: 0.0.0.0',
        `PidFile: ${base}/acng.pid`,
        'Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian',
        // Only the remapped Debian archive: a request for any other host is refused at once
        // (the lab must never send traffic to other addresses).
        'ForceManaged: 1',
        'ExThreshold: 4',
        '',
      ].join('\n'),
    )
    const script = `
      if ! (exec 3<>/dev/tcp/127.0.0.1/${APT_PROXY_PORT}) 2>/dev/null; then
        apt-cacher-ng -c "$1" ForeGround=0
      fi`
    await run('flock', ['-w', '60', path.join(base, '.start.lock'), 'bash', '-c', script, 'acng', conf], {timeoutMs: 90_000})
    const deadline = Date.now() + 15_000
    while (!(await portOpen('127.0.0.1', APT_PROXY_PORT))) {
      if (Date.now() > deadline) throw new Error(`apt-cacher-ng did not listen on :${APT_PROXY_PORT} (log: ${base}/log)`)
      await sleep(200)
    }
  })()
  aptProxyPromise.catch(() => {
    aptProxyPromise = undefined
  })
  return aptProxyPromise
}

function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({host, port})
    const t = setTimeout(() => {
      sock.destroy()
      resolve(false)
    }, timeoutMs)
    sock.on('connect', () => {
      clearTimeout(t)
      sock.destroy()
      resolve(true)
    })
    sock.on('error', () => {
      clearTimeout(t)
      resolve(false)
    })
  })
}

// ---------------------------------------------------------------------------------------------
// the lab

interface Record_ {
  owner: number
  name: string
  bridge: string
  netns: string[]
  veths: string[]
  pids: number[]
}

const active = new Set<LabImpl>()
let exitHookInstalled = false

function installExitHook() {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on('exit', () => {
    for (const lab of active) lab.stopSync()
  })
  // A test runner ending a worker with a signal skips 'exit': clean up, then let the signal act.
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(sig, () => {
      for (const lab of active) lab.stopSync()
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig)
    })
  }
}

function subnetFromName(name: string): number {
  const h = createHash('sha256').update(name).digest()
  return 100 + (h[0] % 150)
}

class LabImpl implements Lab {
  name: string
  subnet: string
  gateway: string
  aptProxy: string
  bridge: string
  dir: string
  keyPath: string
  machines: LabMachine[] = []
  rootfsBuildMs = 0
  private x: number
  private procs = new Map<string, ChildProcess>()
  private netns = new Map<string, string>()
  private veths: string[] = []
  private bootTimeoutMs: number
  private stopped = false
  private image: LabImage

  constructor(opts: StartLabOptions, x: number) {
    this.name = opts.name
    this.x = x
    this.subnet = `10.99.${x}.0/24`
    this.gateway = `10.99.${x}.1`
    this.aptProxy = `http://${this.gateway}:${APT_PROXY_PORT}`
    this.bridge = `alb${x}`
    this.dir = path.join(LAB_RUN_DIR, String(x))
    this.keyPath = path.join(this.dir, 'id_ed25519')
    this.image = opts.image ?? 'minbase'
    // A cloud image's first boot runs cloud-init's stages before sshd has host keys.
    this.bootTimeoutMs = opts.bootTimeoutMs ?? (this.image === 'minbase' ? 90_000 : 180_000)
  }

  machine(name: string): LabMachine {
    const m = this.machines.find((x) => x.name === name)
    if (!m) throw new Error(`no lab machine ${name} (have: ${this.machines.map((x) => x.name).join(', ')})`)
    return m
  }

  private recordFile() {
    return path.join(this.dir, 'lab.json')
  }

  private saveRecord() {
    const rec: Record_ = {
      owner: process.pid,
      name: this.name,
      bridge: this.bridge,
      netns: [...this.netns.values()],
      veths: this.veths,
      pids: [...this.procs.values()].map((p) => p.pid).filter((p): p is number => typeof p === 'number'),
    }
    writeFileSync(this.recordFile(), JSON.stringify(rec, null, 2))
  }

  /** Removes what a crashed earlier run with this subnet left behind. */
  async cleanStale() {
    const file = this.recordFile()
    if (existsSync(file)) {
      let rec: Partial<Record_> = {}
      try {
        rec = JSON.parse(readFileSync(file, 'utf8')) as Record_
      } catch {
        // unreadable: clean by name below
      }
      if (rec.owner && rec.owner !== process.pid && pidAlive(rec.owner) && cmdlineOf(rec.owner).includes('node')) {
        throw new Error(
          `lab subnet 10.99.${this.x}.0/24 is in use by another test process (pid ${rec.owner}, lab "${rec.name}"); give this test file its own subnet`,
        )
      }
      for (const pid of rec.pids ?? []) killNspawnSync(pid, this.dir)
    }
    // By name too: the record may be missing after a crash before it was written.
    const nsList = await run('ip', ['netns', 'list'], {allowFail: true})
    for (const line of nsList.stdout.split('\n')) {
      const ns = line.split(/\s+/)[0]
      if (ns && ns.startsWith(`al${this.x}-`)) runSyncQuiet('ip', ['netns', 'del', ns])
    }
    const links = await run('ip', ['-o', 'link', 'show'], {allowFail: true})
    for (const line of links.stdout.split('\n')) {
      const m = /^\d+:\s+([^:@]+)/.exec(line)
      if (m && (m[1] === this.bridge || m[1].startsWith(`alv${this.x}m`))) runSyncQuiet('ip', ['link', 'del', m[1]])
    }
    removeLabDir(this.dir)
  }

  async setup(opts: StartLabOptions) {
    mkdirSync(this.dir, {recursive: true})
    this.saveRecord()
    if (!LAB_IMAGES.includes(this.image)) throw new Error(`lab image "${this.image}": use ${LAB_IMAGES.join(', ')}`)
    if (this.image !== 'minbase' && !opts.cloudInit) throw new Error(`lab image ${this.image} boots through cloud-init: give cloudInit (a NoCloud seed per machine)`)
    const [buildMs] = await Promise.all([ensureRootfs(this.image), ensureAptProxy()])
    this.rootfsBuildMs = buildMs

    let publicKey = opts.publicKey
    if (!publicKey) {
      await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `autolabs-lab-${this.x}`, '-f', this.keyPath])
      publicKey = readFileSync(`${this.keyPath}.pub`, 'utf8').trim()
    }

    await run('ip', ['link', 'add', this.bridge, 'type', 'bridge'])
    await run('ip', ['addr', 'add', `${this.gateway}/24`, 'dev', this.bridge])
    await run('ip', ['link', 'set', this.bridge, 'up'])

    const user = opts.user ?? 'debian'
    const used = new Set<string>([this.gateway])
    await Promise.all(
      opts.machines.map(async (spec, i) => {
        if (!/^[a-z][a-z0-9-]{0,30}$/.test(spec.name)) throw new Error(`lab machine name "${spec.name}": use a-z, 0-9 and -`)
        const ip = spec.ip ?? `10.99.${this.x}.${10 + i}`
        if (!ip.startsWith(`10.99.${this.x}.`)) throw new Error(`lab machine ${spec.name}: ip ${ip} is outside ${this.subnet}`)
        if (used.has(ip)) throw new Error(`lab machine ${spec.name}: ip ${ip} is taken`)
        used.add(ip)
        const ns = `al${this.x}-${spec.name}`
        const veth = `alv${this.x}m${i}`
        this.netns.set(spec.name, ns)
        this.veths.push(veth)
        this.saveRecord()
        await run('ip', ['netns', 'add', ns])
        await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
        await run('ip', ['link', 'set', veth, 'master', this.bridge])
        await run('ip', ['link', 'set', veth, 'up'])
        const mac = (JSON.parse((await run('ip', ['-n', ns, '-j', 'link', 'show', 'eth0'])).stdout) as Array<{address: string}>)[0].address
        const rootfs = await machineRootfs(path.join(this.dir, spec.name), this.image)
        let hostKeyFingerprint = ''
        // The address is set from the host side for cloud images too: cloud-init renders the
        // seed's static address and DNS into netplan (checked by the tests), but systemd-networkd
        // does not take up a veth inside this sandbox (it enumerates only lo), so it would not
        // apply them. See the cloud image notes in docs/lab.md.
        await run('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
        await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
        if (this.image === 'minbase') {
          await this.personalize(rootfs, spec.name, user, publicKey, opts.aptProxyInMachine ?? true)
        } else {
          await this.seed(rootfs, await opts.cloudInit!({name: spec.name, ip, mac, publicKey}), opts.aptProxyInMachine ?? true)
        }
        await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
        if (opts.prepare) await opts.prepare({name: spec.name, rootfs})
        if (this.image === 'minbase') hostKeyFingerprint = fingerprintOfPublicKeyLine(readFileSync(path.join(rootfs, 'etc/ssh/ssh_host_ed25519_key.pub'), 'utf8'))
        const machine: LabMachine = {
          name: spec.name,
          ip,
          user,
          keyPath: this.keyPath,
          rootfs,
          hostKeyFingerprint,
          mac,
          consoleLog: path.join(this.dir, spec.name, 'console.log'),
          exec: (cmd, o) => this.execIn(spec.name, cmd, o),
        }
        this.machines[i] = machine
      }),
    )
  }

  private async personalize(rootfs: string, name: string, user: string, publicKey: string, proxy: boolean) {
    await run('ssh-keygen', ['-A', '-f', rootfs])
    writeFileSync(path.join(rootfs, 'etc/hostname'), `${name}\n`)
    writeFileSync(path.join(rootfs, 'etc/hosts'), `127.0.0.1 localhost\n127.0.1.1 ${name}\n::1 localhost ip6-localhost ip6-loopback\n`)
    await run('chroot', [rootfs, 'useradd', '-m', '-s', '/bin/bash', '-G', 'sudo', user])
    writeFileSync(path.join(rootfs, 'etc/sudoers.d/90-cloud-init-users'), `${user} ALL=(ALL) NOPASSWD:ALL\n`, {mode: 0o440})
    const sshDir = `/home/${user}/.ssh`
    mkdirSync(path.join(rootfs, sshDir), {recursive: true, mode: 0o700})
    writeFileSync(path.join(rootfs, sshDir, 'authorized_keys'), `${publicKey}\n`, {mode: 0o600})
    await run('chroot', [rootfs, 'chown', '-R', `${user}:${user}`, sshDir])
    if (proxy) writeFileSync(path.join(rootfs, 'etc/apt/apt.conf.d/01autolabs-lab-proxy'), `Acquire::http::Proxy "${this.aptProxy}";\n`)
  }

  /** A cloud image's NoCloud seed directory (what a Proxmox VM reads from its cidata drive). */
  private async seed(rootfs: string, seed: NoCloudSeed, proxy: boolean) {
    const dir = path.join(rootfs, 'var/lib/cloud/seed/nocloud')
    mkdirSync(dir, {recursive: true, mode: 0o700})
    writeFileSync(path.join(dir, 'user-data'), seed.userData, {mode: 0o600})
    writeFileSync(path.join(dir, 'meta-data'), seed.metaData, {mode: 0o600})
    if (seed.networkConfig !== undefined) writeFileSync(path.join(dir, 'network-config'), seed.networkConfig, {mode: 0o600})
    if (seed.vendorData !== undefined) writeFileSync(path.join(dir, 'vendor-data'), seed.vendorData, {mode: 0o600})
    if (proxy) writeFileSync(path.join(rootfs, 'etc/apt/apt.conf.d/01autolabs-lab-proxy'), `Acquire::http::Proxy "${this.aptProxy}";\n`)
    // Lab plumbing, not part of the image: under this kernel the container's /sys shows the
    // host's network devices, so cloud-init would not find net0's MAC (it reads
    // /sys/class/net) and fail "Not all expected physical devices present". A sysfs mounted
    // from inside the machine's own network namespace shows its eth0; bind its net entries over
    // /sys's before cloud-init and networkd look (the rest of /sys, cgroups included, stays).
    // /sys read-only, as the container interface wants it: systemd then knows udev does not run
    // here, and networkd configures links without waiting for udev to announce them.
    const unit = 'autolabs-lab-netns-sysfs.service'
    writeFileSync(
      path.join(rootfs, 'etc/systemd/system', unit),
      [
        '[Unit]',
        'Description=autolabs lab: /sys/class/net of this machine\'s network namespace',
        'DefaultDependencies=no',
        'Before=cloud-init-local.service systemd-networkd.service systemd-udevd.service sysinit.target',
        '',
        '[Service]',
        'Type=oneshot',
        'RemainAfterExit=yes',
        'ExecStart=/bin/sh -ec "mkdir -p /run/autolabs-lab-sysfs; mount -t sysfs sysfs /run/autolabs-lab-sysfs; mount --bind /run/autolabs-lab-sysfs/class/net /sys/class/net; mount --bind /run/autolabs-lab-sysfs/devices/virtual/net /sys/devices/virtual/net; mount -o remount,bind,ro /sys"',
        '',
        '[Install]',
        'WantedBy=sysinit.target',
        '',
      ].join('\n'),
    )
    mkdirSync(path.join(rootfs, 'etc/systemd/system/sysinit.target.wants'), {recursive: true})
    symlinkSync(`/etc/systemd/system/${unit}`, path.join(rootfs, 'etc/systemd/system/sysinit.target.wants', unit))
    // networkd leaves eth0 alone here (see setup): waiting for it to come online would only
    // cost its 2-minute timeout on every boot.
    symlinkSync('/dev/null', path.join(rootfs, 'etc/systemd/system/systemd-networkd-wait-online.service'))
  }

  async boot(name: string, opts: {waitForSsh?: boolean} = {}) {
    const m = this.machine(name)
    if (this.procs.has(name)) throw new Error(`lab machine ${name} is already running`)
    const ns = this.netns.get(name)!
    const logFd = openSync(path.join(this.dir, name, 'console.log'), 'a')
    const started = Date.now()
    const child = spawn(
      'systemd-nspawn',
      [
        '-D', m.rootfs, '-M', name, '--boot', '--register=no', '--keep-unit',
        `--network-namespace-path=/run/netns/${ns}`,
        // The machine has its own network namespace, as a VM has its own kernel: let it manage
        // its firewall (ufw/nftables) there. nspawn keeps CAP_NET_ADMIN only for --private-network.
        '--capability=CAP_NET_ADMIN',
        '--resolv-conf=off', '--timezone=off', '--link-journal=no',
        // A cloud image writes to its console (cloud-init prints the host keys there): a passive
        // console is a pty nobody reads, whose writer blocks once it is full, so cloud-init's
        // final stage hung. Piped, the output lands in console.log.
        this.image === 'minbase' ? '--console=passive' : '--console=pipe',
      ],
      {stdio: ['ignore', logFd, logFd]},
    )
    closeSync(logFd)
    this.procs.set(name, child)
    m.pid = child.pid
    this.saveRecord()
    let exited: string | undefined
    child.on('exit', (code, sig) => {
      exited = `systemd-nspawn exited (${sig ?? code})`
      if (this.procs.get(name) === child) this.procs.delete(name)
    })
    if (opts.waitForSsh === false) return
    const deadline = started + this.bootTimeoutMs
    while (!(await sshBanner(m.ip, 22, 2000))) {
      if (exited) throw new Error(`lab machine ${name} did not boot: ${exited}; see ${path.join(this.dir, name, 'console.log')}`)
      if (Date.now() > deadline) {
        throw new Error(`lab machine ${name}: sshd not up after ${this.bootTimeoutMs / 1000} s; see ${path.join(this.dir, name, 'console.log')}\n${await this.machineReport(name)}`)
      }
      await sleep(200)
    }
    m.bootMs = Date.now() - started
    await this.awaitBootDone(name)
    if (!m.hostKeyFingerprint) {
      const key = await this.execIn(name, 'cat /etc/ssh/ssh_host_ed25519_key.pub')
      if (key.code !== 0) throw new Error(`lab machine ${name}: no ed25519 host key after boot: ${key.stderr}`)
      m.hostKeyFingerprint = fingerprintOfPublicKeyLine(key.stdout)
    }
  }

  /**
   * sshd answers before the boot has finished, and until systemd-user-sessions has run,
   * /run/nologin makes PAM refuse every non-root login (sshd accepts, then closes the
   * connection). Tests start right after boot (apt, psql as the cloud user), so wait for the
   * boot to complete — as autolabs waits for cloud-init on a VM. If systemd-user-sessions
   * failed (seen once under CI load), print why and start it again.
   */
  private async awaitBootDone(name: string) {
    const probe = 'timeout 60 systemctl is-system-running --wait >/dev/null 2>&1; if [ -e /run/nologin ]; then echo nologin; fi'
    const r = await this.execIn(name, probe, {timeoutMs: 70_000})
    if (!r.stdout.includes('nologin')) return
    console.warn(`lab machine ${name}: /run/nologin still exists after boot; starting systemd-user-sessions again.\n${await this.machineReport(name)}`)
    const again = await this.execIn(name, 'systemctl restart systemd-user-sessions; if [ -e /run/nologin ]; then echo nologin; fi')
    if (again.stdout.includes('nologin')) throw new Error(`lab machine ${name}: non-root logins stay refused (/run/nologin): ${again.stderr}`)
  }

  async execIn(name: string, cmd: string, opts: {input?: string; timeoutMs?: number} = {}): Promise<ExecResult> {
    const child = this.procs.get(name)
    const leader = child?.pid ? leaderOf(child.pid) : undefined
    if (!leader) throw new Error(`lab machine ${name} is not running`)
    return run(
      'nsenter',
      ['-t', String(leader), '-m', '-u', '-i', '-n', '-p', '-r', '-w', '--', '/usr/bin/env', '-i', `PATH=${PATH_IN_MACHINE}`, 'HOME=/root', 'LANG=C.UTF-8', '/bin/bash', '-c', cmd],
      {input: opts.input, timeoutMs: opts.timeoutMs ?? 120_000, allowFail: true},
    )
  }

  async killSshd(name: string, mode: 'sessions' | 'all' = 'all') {
    // Session processes are titled "sshd: user [priv]" / "sshd: user@notty"; the listener is not.
    const cmd = mode === 'all' ? 'pkill -KILL -x sshd || true' : `pkill -KILL -f '^sshd: [^/]' || true`
    const r = await this.execIn(name, cmd)
    if (r.code !== 0) throw new Error(`killSshd ${name}: ${r.stderr}`)
  }

  async setLink(name: string, up: boolean) {
    const i = this.machines.findIndex((m) => m.name === name)
    if (i < 0) throw new Error(`no lab machine ${name}`)
    await run('ip', ['link', 'set', `alv${this.x}m${i}`, up ? 'up' : 'down'])
  }

  async regenerateHostKeys(name: string): Promise<string> {
    const r = await this.execIn(name, 'rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh && cat /etc/ssh/ssh_host_ed25519_key.pub')
    if (r.code !== 0) throw new Error(`regenerateHostKeys ${name}: ${r.stderr}`)
    const fp = fingerprintOfPublicKeyLine(r.stdout)
    this.machine(name).hostKeyFingerprint = fp
    return fp
  }

  async diagnose(): Promise<string> {
    return (await Promise.all([...this.procs.keys()].map((name) => this.machineReport(name)))).join('\n')
  }

  /** One machine's systemd state, /run/nologin, each failed unit's journal, then sshd's journal. */
  private async machineReport(name: string): Promise<string> {
    const script = [
      'echo "system: $(systemctl is-system-running 2>&1)"',
      '[ -e /run/nologin ] && echo "/run/nologin exists: non-root logins are refused"',
      'if command -v cloud-init >/dev/null; then cloud-init status --long 2>&1 | head -n 8; ip -4 -o addr show 2>&1; fi',
      'systemctl --failed --no-legend --plain --no-pager',
      'for u in $(systemctl --failed --no-legend --plain --no-pager | cut -d" " -f1); do journalctl --no-pager -o short-monotonic -n 15 -u "$u" 2>&1; done',
      'journalctl --no-pager -o short-monotonic -n 40 -u ssh 2>&1',
    ].join('; ')
    const r = await this.execIn(name, script, {timeoutMs: 15_000}).catch((e: unknown) => ({stdout: '', stderr: String(e)}))
    return `--- lab ${this.name}: ${name} (${this.machine(name).ip})\n${r.stdout}${r.stderr}`
  }

  async shutdown(name: string) {
    const child = this.procs.get(name)
    if (!child?.pid) return
    const pid = child.pid
    const leader = leaderOf(pid)
    const gone = new Promise<void>((r) => child.once('exit', () => r()))
    child.kill('SIGTERM')
    const clean = await Promise.race([gone.then(() => true), sleep(15_000).then(() => false)])
    if (!clean) {
      if (leader) runSyncQuiet('kill', ['-KILL', String(leader)])
      child.kill('SIGKILL')
      await Promise.race([gone, sleep(5000)])
    }
    this.procs.delete(name)
    this.machine(name).pid = undefined
  }

  async stop() {
    if (this.stopped) return
    this.stopped = true
    await Promise.all([...this.procs.keys()].map((n) => this.shutdown(n).catch(() => undefined)))
    this.stopSync()
  }

  /** Synchronous teardown (also used from process.on('exit')). */
  stopSync() {
    for (const child of this.procs.values()) if (child.pid) killNspawnSync(child.pid, this.dir)
    this.procs.clear()
    for (const ns of this.netns.values()) runSyncQuiet('ip', ['netns', 'del', ns])
    for (const v of this.veths) runSyncQuiet('ip', ['link', 'del', v])
    runSyncQuiet('ip', ['link', 'del', this.bridge])
    removeLabDir(this.dir)
    active.delete(this)
  }
}

/**
 * A machine's root filesystem: an overlay (own upper layer) on the unpacked cached rootfs, which
 * takes milliseconds; where overlayfs is not available, a full unpacked copy (seconds).
 */
async function machineRootfs(machineDir: string, image: LabImage): Promise<string> {
  const lower = await ensureUnpackedRootfs(image)
  const rootfs = path.join(machineDir, 'rootfs')
  const upper = path.join(machineDir, 'upper')
  const work = path.join(machineDir, 'work')
  for (const d of [rootfs, upper, work]) mkdirSync(d, {recursive: true})
  const ov = await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, rootfs], {allowFail: true})
  if (ov.code !== 0) await run('tar', ['-C', rootfs, '--numeric-owner', '-xpf', rootfsTar(image)], {timeoutMs: 300_000})
  return rootfs
}

const unpackPromises = new Map<LabImage, Promise<string>>()

/** The rootfs tarball unpacked once into the cache (the overlays' shared lower layer). */
function ensureUnpackedRootfs(image: LabImage): Promise<string> {
  let unpackPromise = unpackPromises.get(image)
  if (unpackPromise) return unpackPromise
  const tar = rootfsTar(image)
  unpackPromise = (async () => {
    const dir = tar.replace(/\.tar$/, '.d')
    const st = statSync(tar)
    const stamp = `${st.size}:${Math.round(st.mtimeMs)}`
    const marker = path.join(dir, '.autolabs-from-tar')
    if (existsSync(marker) && readFileSync(marker, 'utf8') === stamp) return dir
    const script = `
      set -euo pipefail
      if [ -e "$1/.autolabs-from-tar" ] && [ "$(cat "$1/.autolabs-from-tar")" = "$3" ]; then exit 0; fi
      tmp=$(mktemp -d "$1.XXXXXX")
      tar -C "$tmp" --numeric-owner -xpf "$2"
      printf %s "$3" > "$tmp/.autolabs-from-tar"
      if [ -e "$1" ]; then mv "$1" "$1.old.$$"; rm -rf --one-file-system "$1.old.$$"; fi
      mv "$tmp" "$1"`
    await run('flock', ['-w', '600', path.join(LAB_CACHE_DIR, '.build.lock'), 'bash', '-c', script, 'unpack', dir, tar, stamp], {timeoutMs: 900_000})
    return dir
  })()
  unpackPromises.set(image, unpackPromise)
  unpackPromise.catch(() => unpackPromises.delete(image))
  return unpackPromise
}

/** Unmounts whatever is mounted below the lab's dir (overlays), then deletes it. */
function removeLabDir(dir: string) {
  if (!existsSync(dir)) return
  let mounts: string[] = []
  try {
    mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((m): m is string => Boolean(m) && (m === dir || m.startsWith(`${dir}/`)))
  } catch {
    // no mountinfo: nothing we mounted can be found either
  }
  for (const m of mounts.sort((a, b) => b.length - a.length)) {
    runSyncQuiet('umount', [m])
    runSyncQuiet('umount', ['-l', m])
  }
  // Never delete through a mount that is still there (rm would reach the shared lower layer's view).
  let still = false
  try {
    still = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => {
      const m = l.split(' ')[4]
      return m === dir || m?.startsWith(`${dir}/`)
    })
  } catch {
    // see above
  }
  if (still) return
  rmSync(dir, {recursive: true, force: true})
}

/** Kills an nspawn we started (checked by its command line) and its container's PID 1. */
function killNspawnSync(pid: number, dirPrefix: string) {
  if (!pidAlive(pid) || !cmdlineOf(pid).includes('systemd-nspawn') || !cmdlineOf(pid).includes(dirPrefix)) return
  const leader = leaderOf(pid)
  // Killing a PID namespace's init kills every process in it.
  if (leader) runSyncQuiet('kill', ['-KILL', String(leader)])
  runSyncQuiet('kill', ['-KILL', String(pid)])
  const until = Date.now() + 5000
  while (pidAlive(pid) && Date.now() < until) runSyncQuiet('sleep', ['0.1'])
}

/** `diagnose()` of every lab this process is running. */
export async function diagnoseActiveLabs(): Promise<string> {
  return (await Promise.all([...active].map((lab) => lab.diagnose()))).join('\n')
}

/** Creates the lab's network and machines and (unless `boot: false`) boots them and waits for sshd. */
export async function startLab(opts: StartLabOptions): Promise<Lab> {
  const avail = labAvailable()
  if (!avail.ok) throw new Error(`lab not available: ${avail.reason}`)
  const x = opts.subnet ?? subnetFromName(opts.name)
  if (!Number.isInteger(x) || x < 2 || x > 254) throw new Error(`lab subnet ${x}: use 2..254 (10.99.X.0/24)`)
  if (opts.machines.length === 0 || opts.machines.length > 8) throw new Error('a lab has 1..8 machines')
  installExitHook()
  const lab = new LabImpl(opts, x)
  await lab.cleanStale()
  active.add(lab)
  try {
    await lab.setup(opts)
    if (opts.boot !== false) await Promise.all(lab.machines.map((m) => lab.boot(m.name)))
  } catch (err) {
    await lab.stop()
    throw err
  }
  return lab
}
