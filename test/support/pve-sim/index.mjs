// A Proxmox VE API simulator for tests: HTTPS with a self-signed certificate, stateful, and
// strict — every request is validated against the real schema of the simulated PVE version
// (test/fixtures/pve-api) and answered with the real server's status codes, error shapes and
// content type. Faults can be injected. See README.md in this folder.
import {execFile} from 'node:child_process'
import {randomBytes, randomUUID, X509Certificate} from 'node:crypto'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import https from 'node:https'
import os from 'node:os'
import path from 'node:path'
import {promisify} from 'node:util'

import {CONTENT_TYPES} from './formats.mjs'
import {loadSchema, matchPath, parsePropertyString, validateParams} from './schema.mjs'
import {defaultState, digestOf, GIB, newVm} from './state.mjs'

const run = promisify(execFile)
const JSON_TYPE = 'application/json;charset=UTF-8'

export class SimError extends Error {
  /** @param {number} status @param {string} message @param {Record<string,string>} [errors] */
  constructor(status, message, errors) {
    super(message)
    this.status = status
    this.errors = errors
  }
}
const fail = (message) => {
  throw new SimError(500, message)
}
const paramFail = (errors) => {
  throw new SimError(400, 'Parameter verification failed.', errors)
}

/** A self-signed certificate for 127.0.0.1/localhost, made with the openssl CLI. */
export async function makeCertificate(cn = 'pve-sim') {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pve-sim-cert-'))
  try {
    const key = path.join(dir, 'key.pem')
    const cert = path.join(dir, 'cert.pem')
    await run('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', `/CN=${cn}/O=PVE Cluster Node`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout', key, '-out', cert,
    ])
    const [k, c] = await Promise.all([readFile(key, 'utf8'), readFile(cert, 'utf8')])
    return {key: k, cert: c, fingerprint: new X509Certificate(c).fingerprint256}
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}

const hex8 = (n) => n.toString(16).toUpperCase().padStart(8, '0')

/**
 * Start a simulator.
 * @param {import('./index.d.mts').PveSimOptions} [opts]
 * @returns {Promise<PveSim>}
 */
export async function startPveSim(opts = {}) {
  const sim = new PveSim(opts)
  await sim.listen()
  return sim
}

export class PveSim {
  constructor(opts = {}) {
    this.release = opts.version ?? '9.1'
    this.schema = loadSchema(this.release)
    // `reportVersion` changes only what /version says (e.g. an older 8.x), not the schema.
    this.pveVersion = opts.reportVersion ?? this.schema.version
    this.authFailureDelayMs = opts.authFailureDelayMs ?? 50
    this.taskDurationMs = opts.taskDurationMs ?? 20
    this.host = opts.host ?? '127.0.0.1'
    this.requestedPort = opts.port ?? 0
    this.state = defaultState({node: opts.node ?? 'pve', release: this.release, cpus: opts.cpus, memoryGiB: opts.memoryGiB})
    this.node = this.state.node
    /** @type {Array<{method:string,path:string,params:Record<string,unknown>,status:number,statusText:string,invalid?:Record<string,string>,auth?:string,delayedMs?:number}>} */
    this.requests = []
    this.faults = {failNext: 0, failMessage: 'simulated failure', failNextTasks: [], pidCounter: 4000, delayMs: 0, exclusiveClones: false}
    this.sockets = new Set()
  }

  // ---- lifecycle -------------------------------------------------------------------------
  async listen() {
    this.certificate = await makeCertificate()
    this.server = https.createServer({key: this.certificate.key, cert: this.certificate.cert}, (req, res) => {
      this.handle(req, res).catch((error) => {
        if (!res.headersSent) {
          res.writeHead(500, safeReason(`simulator bug: ${error.message}`), {'Content-Type': JSON_TYPE})
          res.end(JSON.stringify({data: null}))
        }
      })
    })
    this.server.on('connection', (s) => {
      this.sockets.add(s)
      s.on('close', () => this.sockets.delete(s))
    })
    await new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.requestedPort, this.host, () => resolve(undefined))
    })
    this.port = this.server.address().port
    this.url = `https://${this.host}:${this.port}`
  }

  async stop() {
    for (const t of this.state.tasks.values()) clearTimeout(t.timer)
    for (const s of this.sockets) s.destroy()
    await new Promise((resolve) => this.server?.close(() => resolve(undefined)))
  }

  get fingerprint() {
    return this.certificate.fingerprint
  }
  get adminTokenId() {
    return 'root@pam!autolabs'
  }
  get adminTokenSecret() {
    return this.state.users.get('root@pam').tokens.get('autolabs').secret
  }
  get rootPassword() {
    return this.state.users.get('root@pam').password
  }
  /** Requests that failed schema validation (400 Parameter verification) or hit no endpoint (501). */
  get invalidRequests() {
    return this.requests.filter((r) => r.invalid)
  }
  clearRequests() {
    this.requests.length = 0
  }

  // ---- faults and seeding ----------------------------------------------------------------
  /** The next `count` API requests answer 500 with `message`. */
  failNext(count = 1, message = 'simulated internal error') {
    this.faults.failNext = count
    this.faults.failMessage = message
  }
  /** The next task (of `type`, if given) ends with `exitstatus` = message, after writing `log`. */
  failNextTask({type, message = 'simulated task failure', log = []} = {}) {
    this.faults.failNextTasks.push({type, message, log})
  }
  /**
   * Make a clone hold the source VM's config lock for the whole task, so a second clone of the
   * same template at the same time fails like PVE's flock timeout (what parallel Terraform
   * clones of one template run into).
   */
  exclusiveClones(on = true) {
    this.faults.exclusiveClones = on
  }
  /** How long tasks stay `running`. */
  setTaskDuration(ms) {
    this.taskDurationMs = ms
  }
  /** Delay every response (an overloaded or far-away server). */
  setResponseDelay(ms) {
    this.faults.delayMs = ms
  }
  /** Every ticket becomes invalid and every token expires (401 on the next request). */
  expireCredentials() {
    for (const t of this.state.tickets.values()) t.expired = true
    for (const u of this.state.users.values()) for (const tok of u.tokens.values()) tok.expire = 1
  }
  lockVm(vmid, lock = 'clone') {
    this.vm(vmid).lock = lock
  }
  unlockVm(vmid) {
    this.vm(vmid).lock = undefined
  }
  /** Serve a different certificate from now on (a re-installed host or a man in the middle). */
  async rotateCertificate() {
    this.certificate = await makeCertificate('pve-sim-rotated')
    this.server.setSecureContext({key: this.certificate.key, cert: this.certificate.cert})
    for (const s of this.sockets) s.destroy()
    return this.certificate.fingerprint
  }
  addVm(vmid, spec = {}) {
    const vm = newVm(vmid, {...spec, node: this.node})
    this.state.vms.set(vmid, vm)
    return vm
  }
  vm(vmid) {
    const vm = this.state.vms.get(Number(vmid))
    if (!vm) throw new Error(`pve-sim: no VM ${vmid}`)
    return vm
  }
  setAgentFile(vmid, file, content) {
    this.vm(vmid).agent.files.set(file, content)
  }
  setAgentRunning(vmid, running) {
    this.vm(vmid).agent.running = running
  }
  setStorage(id, patch) {
    const cur = this.state.storages.get(id) ?? {storage: id, type: 'dir', path: `/mnt/${id}`, content: new Set(), total: 100 * GIB, used: 0, enabled: true, shared: false}
    const next = {...cur, ...patch}
    if (patch.content) next.content = new Set(patch.content)
    this.state.storages.set(id, next)
    return next
  }
  addVolume(volid, {content = 'images', size = GIB, format = 'qcow2', vmid} = {}) {
    const storage = volid.split(':')[0]
    this.state.volumes.set(volid, {volid, storage, content, size, format, vmid, ctime: Math.floor(Date.now() / 1000)})
  }
  setNode(patch) {
    Object.assign(this.state.nodeInfo, patch)
  }

  // ---- HTTP ------------------------------------------------------------------------------
  async handle(req, res) {
    const url = new URL(req.url, 'https://sim')
    const method = req.method
    const body = method === 'POST' || method === 'PUT' ? await readBody(req) : ''
    const params = collectParams(url.searchParams)
    if (body) {
      const ct = String(req.headers['content-type'] ?? '')
      if (ct.startsWith('application/json')) {
        for (const [k, v] of Object.entries(JSON.parse(body))) params[k] = typeof v === 'boolean' ? (v ? '1' : '0') : Array.isArray(v) ? v.map(String) : String(v)
      } else Object.assign(params, collectParams(new URLSearchParams(body)))
    }
    const record = {method, path: url.pathname, params: redactParams(params), status: 0, statusText: ''}
    this.requests.push(record)
    const reply = (status, statusText, payload) => {
      record.status = status
      record.statusText = statusText
      const text = JSON.stringify(payload)
      res.writeHead(status, safeReason(statusText), {'Content-Type': JSON_TYPE, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'max-age=0'})
      res.end(text)
    }
    if (this.faults.delayMs) await sleep(this.faults.delayMs)
    try {
      if (!url.pathname.startsWith('/api2/json/')) {
        record.invalid = {path: 'not under /api2/json'}
        throw new SimError(501, `Unsupported format`)
      }
      const apiPath = url.pathname.slice('/api2/json'.length).replace(/\/+$/, '')
      if (this.faults.failNext > 0) {
        this.faults.failNext -= 1
        fail(this.faults.failMessage)
      }
      const matched = matchPath(this.schema, apiPath)
      const op = matched?.node.info?.[method]
      if (!op) {
        record.invalid = {path: `no ${method} ${apiPath} in the PVE ${this.pveVersion} schema`}
        throw new SimError(501, `Method '${method} ${apiPath}' not implemented`)
      }
      const all = {...params, ...matched.pathParams}
      const errors = validateParams(this.schema, op, all)
      if (Object.keys(errors).length > 0) {
        record.invalid = errors
        throw new SimError(400, 'Parameter verification failed.', errors)
      }
      const key = `${method} ${matched.node.path}`
      const auth = key === 'POST /access/ticket' ? undefined : await this.authenticate(req, method)
      record.auth = auth?.tokenid ? `${auth.userid}!${auth.tokenid}` : auth?.userid
      if (auth) this.checkSchemaPermission(op.permissions, auth, all)
      const handler = HANDLERS[key]
      if (!handler) fail(`pve-sim: ${key} exists in the schema but the simulator does not implement it`)
      const data = await handler.call(this, {params: all, auth, req})
      reply(200, 'OK', {data: data ?? null})
    } catch (error) {
      if (!(error instanceof SimError)) throw error
      if (error.status === 401) {
        record.delayedMs = this.authFailureDelayMs
        await sleep(this.authFailureDelayMs)
      }
      const payload = error.status === 400 ? {errors: Object.fromEntries(Object.entries(error.errors ?? {}).map(([k, v]) => [k, `${v}\n`])), data: null} : error.status === 500 ? {data: null, message: `${error.message}\n`} : {data: null}
      reply(error.status, error.message, payload)
    }
  }

  // ---- authentication and permissions ----------------------------------------------------
  async authenticate(req, method) {
    const authz = String(req.headers.authorization ?? '')
    if (authz) {
      const m = /^PVEAPIToken=([^!=\s]+@[^!=\s]+)!([^=\s]+)[=:]([\w-]+)$/.exec(authz)
      if (!m) throw new SimError(401, 'authentication failure')
      const [, userid, tokenid, secret] = m
      const user = this.state.users.get(userid)
      const token = user?.tokens.get(tokenid)
      // Messages of PVE::AccessControl::verify_token.
      if (!user || !user.enable) throw new SimError(401, `user '${userid}' is disabled or does not exist`)
      if (!token) throw new SimError(401, `no such token '${tokenid}' for user '${userid}'`)
      if (token.expire && token.expire * 1000 < Date.now()) throw new SimError(401, `token '${tokenid}' access expired`)
      if (token.secret !== secret) throw new SimError(401, 'invalid token value!')
      return {userid, tokenid, privsep: Boolean(token.privsep)}
    }
    const cookie = /(?:^|;\s*)PVEAuthCookie=([^;]+)/.exec(String(req.headers.cookie ?? ''))
    if (!cookie) throw new SimError(401, 'No ticket')
    const ticket = this.state.tickets.get(decodeURIComponent(cookie[1]))
    if (!ticket || ticket.expired) throw new SimError(401, 'permission denied - invalid PVE ticket')
    if (method !== 'GET' && req.headers.csrfpreventiontoken !== ticket.csrf) throw new SimError(401, 'Permission denied - invalid csrf token')
    return {userid: ticket.userid}
  }

  /** Privileges of a user or token on an ACL path (propagation, deeper entries override). */
  privileges(auth, aclPath) {
    const all = new Set(this.schema.privileges)
    const isRoot = auth.userid === 'root@pam'
    const forSubject = (type, ugid) => {
      if (type === 'user' && isRoot) return all
      let current = new Set()
      const parts = aclPath.split('/').filter(Boolean)
      for (let i = 0; i <= parts.length; i++) {
        const p = '/' + parts.slice(0, i).join('/')
        const entries = this.state.acl.filter((e) => e.path === p && e.type === type && e.ugid === ugid && (i === parts.length || e.propagate))
        if (entries.length > 0) {
          current = new Set()
          for (const e of entries) for (const priv of this.state.roles.get(e.roleid)?.privs ?? []) (priv === '*' ? all : [priv]).forEach((x) => current.add(x))
        }
      }
      return current
    }
    const userPrivs = forSubject('user', auth.userid)
    if (!auth.tokenid || !auth.privsep) return userPrivs
    const tokenPrivs = forSubject('token', `${auth.userid}!${auth.tokenid}`)
    return new Set([...tokenPrivs].filter((p) => userPrivs.has(p)))
  }

  /** Throw PVE's 403 unless `auth` has the privileges (all of them, or any with `any`). */
  requirePriv(auth, aclPath, privs, any = false) {
    const have = this.privileges(auth, aclPath)
    const ok = any ? privs.some((p) => have.has(p)) : privs.every((p) => have.has(p))
    if (!ok) throw new SimError(403, `Permission check failed (${aclPath}, ${any ? privs.join('|') : privs.find((p) => !have.has(p))})`)
  }

  checkSchemaPermission(permissions, auth, params) {
    const check = permissions?.check
    if (!check) return
    const err = this.evalCheck(check, auth, params)
    if (err) throw err
  }

  /** Evaluate a schema `check` expression; returns the SimError to throw, or undefined. */
  evalCheck(check, auth, params) {
    const subst = (p) => p.replace(/\{(\w+)\}/g, (_, k) => params[k] ?? '')
    const [op, ...args] = check
    const attempt = (fn) => {
      try {
        fn()
        return undefined
      } catch (error) {
        if (error instanceof SimError) return error
        throw error
      }
    }
    switch (op) {
      case 'perm': {
        const [p, privs, ...rest] = args
        const any = rest[0] === 'any' && rest[1]
        const req = rest.indexOf('require_param')
        if (req >= 0 && params[rest[req + 1]] === undefined) return new SimError(403, `Permission check failed (${subst(p)}, ${privs[0]})`)
        return attempt(() => this.requirePriv(auth, subst(p), privs, Boolean(any)))
      }
      case 'and':
        for (const c of args) {
          const e = this.evalCheck(c, auth, params)
          if (e) return e
        }
        return undefined
      case 'or': {
        let last
        for (const c of args) {
          last = this.evalCheck(c, auth, params)
          if (!last) return undefined
        }
        return last
      }
      case 'userid-param': {
        const target = params.userid
        if (args[0] === 'self') return target === auth.userid ? undefined : new SimError(403, 'Permission check failed (user != self)')
        const realm = String(target ?? '').split('@')[1] ?? ''
        return attempt(() => this.requirePriv(auth, `/access/realm/${realm}`, [args[0]]))
      }
      case 'userid-group':
        return attempt(() => this.requirePriv(auth, '/access/groups', args[0], true))
      case 'perm-modify':
        return attempt(() => this.requirePriv(auth, subst(args[0]), ['Permissions.Modify']))
      default:
        return auth.userid === 'root@pam' ? undefined : new SimError(403, `Permission check failed (${op})`)
    }
  }

  // ---- tasks -----------------------------------------------------------------------------
  /**
   * Start a worker task like PVE's RPCEnvironment::fork_worker: returns the UPID at once; the
   * work runs after taskDurationMs; an exception in it becomes the task's exitstatus.
   */
  startTask(type, id, auth, work, {initialLog = []} = {}) {
    const now = Math.floor(Date.now() / 1000)
    const pid = this.faults.pidCounter++
    const user = auth.tokenid ? `${auth.userid}!${auth.tokenid}` : auth.userid
    const upid = `UPID:${this.node}:${hex8(pid)}:${hex8(pid * 7919)}:${hex8(now)}:${type}:${id}:${user}:`
    const task = {upid, node: this.node, pid, pstart: pid * 7919, starttime: now, type, id: String(id), user, status: 'running', log: [...initialLog]}
    this.state.tasks.set(upid, task)
    const injected = this.faults.failNextTasks.findIndex((f) => !f.type || f.type === type)
    const fault = injected >= 0 ? this.faults.failNextTasks.splice(injected, 1)[0] : undefined
    task.timer = setTimeout(() => {
      try {
        if (fault) {
          task.log.push(...fault.log)
          throw new SimError(500, fault.message)
        }
        work?.(task)
        task.log.push('TASK OK')
        task.exitstatus = 'OK'
      } catch (error) {
        const msg = error instanceof SimError ? error.message : String(error)
        task.log.push(`TASK ERROR: ${msg}`)
        task.exitstatus = msg
      } finally {
        task.status = 'stopped'
        task.endtime = Math.floor(Date.now() / 1000)
      }
    }, this.taskDurationMs)
    return upid
  }

  // ---- VM helpers ------------------------------------------------------------------------
  getVm(vmid) {
    const vm = this.state.vms.get(Number(vmid))
    if (!vm) fail(`Configuration file 'nodes/${this.node}/qemu-server/${vmid}.conf' does not exist`)
    return vm
  }
  checkLock(vm, params) {
    if (vm.lock && params.skiplock !== '1') fail(`VM is locked (${vm.lock})`)
  }

  /** PVE's check_vm_modify_config_perm, roughly: which privilege a config key needs. */
  checkConfigPrivs(auth, vmid, keys, params) {
    const p = `/vms/${vmid}`
    for (const key of keys) {
      if (/^(scsi|virtio|sata|ide|efidisk|tpmstate|unused)\d+$/.test(key)) {
        const isCdrom = /media=cdrom/.test(params[key] ?? '') || /:cloudinit/.test(params[key] ?? '')
        this.requirePriv(auth, p, [isCdrom ? 'VM.Config.CDROM' : 'VM.Config.Disk'])
      } else if (/^(cores|sockets|cpu|vcpus|cpulimit|cpuunits|numa\d*|affinity)$/.test(key)) this.requirePriv(auth, p, ['VM.Config.CPU'])
      else if (/^(memory|balloon|shares)$/.test(key)) this.requirePriv(auth, p, ['VM.Config.Memory'])
      else if (/^net\d+$/.test(key)) this.requirePriv(auth, p, ['VM.Config.Network'])
      else if (/^(ciuser|cipassword|sshkeys|ipconfig\d+|nameserver|searchdomain|citype|cicustom|ciupgrade)$/.test(key)) this.requirePriv(auth, p, ['VM.Config.Cloudinit'])
      else if (/^(scsihw|bios|machine|vga|serial\d+|usb\d+|hostpci\d+|rng0|tpmstate0|audio0|keyboard)$/.test(key)) this.requirePriv(auth, p, ['VM.Config.HWType'])
      else if (!['node', 'vmid', 'digest', 'delete', 'revert', 'skiplock', 'start', 'storage', 'pool', 'unique', 'force', 'background_delay'].includes(key)) this.requirePriv(auth, p, ['VM.Config.Options'])
    }
  }

  /** Bridges used by net[n] need SDN.Use on /sdn/zones/localnetwork/<bridge> (PVE >= 8). */
  checkBridges(auth, params) {
    for (const [k, v] of Object.entries(params)) {
      if (!/^net\d+$/.test(k)) continue
      const bridge = /(?:^|,)bridge=([^,]+)/.exec(v)?.[1]
      if (!bridge) continue
      if (!this.state.network.some((n) => n.iface === bridge && /bridge/i.test(n.type))) fail(`bridge '${bridge}' does not exist`)
      this.requirePriv(auth, `/sdn/zones/localnetwork/${bridge}`, ['SDN.Use'])
    }
  }

  storageOf(id) {
    const s = this.state.storages.get(id)
    if (!s) fail(`storage '${id}' does not exist`)
    return s
  }

  /** Turn the drive values of a create/config request into allocated volumes. */
  allocateDrives(auth, vm, params) {
    let n = Math.max(-1, ...[...this.state.volumes.values()].filter((v) => v.vmid === vm.vmid).map((v) => Number(/disk-(\d+)/.exec(v.volid)?.[1] ?? -1)))
    const out = {}
    for (const [key, value] of Object.entries(params)) {
      if (!/^(scsi|virtio|sata|ide)\d+$/.test(key)) continue
      const parts = value.split(',')
      const file = parts[0].includes('=') ? /(?:^|,)file=([^,]+)/.exec(value)?.[1] : parts[0]
      const opts = parts.filter((p, i) => !(i === 0 && !p.includes('=')) && !p.startsWith('file=') && !p.startsWith('import-from='))
      const importFrom = /(?:^|,)import-from=([^,]+)/.exec(value)?.[1]
      const m = /^([^:]+):(\d+(?:\.\d+)?|cloudinit)$/.exec(file ?? '')
      if (!m) {
        out[key] = value
        continue
      }
      const [, sid, what] = m
      const storage = this.storageOf(sid)
      if (!storage.content.has('images')) fail(`storage '${sid}' does not support vm images`)
      this.requirePriv(auth, `/storage/${sid}`, ['Datastore.AllocateSpace'])
      if (what === 'cloudinit') {
        const volid = `${sid}:vm-${vm.vmid}-cloudinit`
        this.addVolume(volid, {vmid: vm.vmid, size: 4 * 1024 * 1024, format: 'raw'})
        out[key] = `${volid},media=cdrom`
        continue
      }
      let size = Number(what) * GIB
      if (importFrom) {
        if (importFrom.startsWith('/')) {
          if (auth.userid !== 'root@pam' || auth.tokenid) fail(`${key}: only root can pass arbitrary filesystem paths.`)
        } else {
          const src = this.state.volumes.get(importFrom)
          if (!src) fail(`volume '${importFrom}' does not exist`)
          if (src.content !== 'import' && src.content !== 'images') fail(`${key}: '${importFrom}' has wrong type '${src.content}' - needs to be 'images' or 'import'`)
          // pve-storage check_volume_access: iso/vztmpl/import volumes need read access.
          this.requirePriv(auth, `/storage/${src.storage}`, ['Datastore.AllocateSpace', 'Datastore.Audit'], true)
          size = Math.max(size, src.size)
        }
      }
      if (size <= 0) fail(`${key}: size must be greater than 0 (or use import-from)`)
      if (storage.total - storage.used < size) fail(`no space left on storage '${sid}' (${Math.round((storage.total - storage.used) / GIB)} GiB free, ${Math.round(size / GIB)} GiB needed)`)
      n += 1
      const volid = `${sid}:vm-${vm.vmid}-disk-${n}`
      this.addVolume(volid, {vmid: vm.vmid, size, format: storage.type === 'dir' ? 'qcow2' : 'raw'})
      storage.used += size
      out[key] = [volid, ...opts.filter((o) => !o.startsWith('size=')), `size=${Math.round(size / GIB)}G`].join(',')
    }
    return out
  }

  applyConfig(auth, vm, params) {
    const skip = new Set(['node', 'vmid', 'digest', 'delete', 'revert', 'skiplock', 'start', 'background_delay', 'force', 'pool', 'storage', 'unique', 'archive'])
    const drives = this.allocateDrives(auth, vm, params)
    for (const [k, v] of Object.entries(params)) {
      if (skip.has(k)) continue
      vm.config[k] = drives[k] ?? (/^net\d+$/.test(k) ? withMac(v) : Array.isArray(v) ? v.join(',') : v)
    }
    for (const k of String(params.delete ?? '').split(/[,;\s]+/).filter(Boolean)) delete vm.config[k]
  }

  vmSummary(vm) {
    const disk = Object.entries(vm.config)
      .filter(([k, v]) => /^(scsi|virtio|sata|ide)\d+$/.test(k) && !/media=cdrom/.test(v))
      .reduce((sum, [, v]) => sum + (this.state.volumes.get(v.split(',')[0])?.size ?? 0), 0)
    const running = vm.status === 'running'
    const maxmem = Number(vm.config.memory ?? 512) * 1024 * 1024
    return {
      vmid: vm.vmid,
      name: vm.config.name,
      status: vm.status,
      cpus: Number(vm.config.cores ?? 1) * Number(vm.config.sockets ?? 1),
      cpu: running ? 0.05 : 0,
      maxmem,
      mem: running ? Math.round(maxmem * 0.4) : 0,
      maxdisk: disk,
      disk: 0,
      uptime: running ? Math.floor((Date.now() - vm.startedAt) / 1000) : 0,
      netin: 0,
      netout: 0,
      diskread: 0,
      diskwrite: 0,
      ...(vm.config.template === '1' ? {template: 1} : {}),
      ...(vm.lock ? {lock: vm.lock} : {}),
      ...(vm.config.tags ? {tags: vm.config.tags} : {}),
    }
  }

  storageSummary(s) {
    return {
      storage: s.storage,
      type: s.type,
      content: [...s.content].sort().join(','),
      active: 1,
      enabled: s.enabled ? 1 : 0,
      shared: s.shared ? 1 : 0,
      total: s.total,
      used: s.used,
      avail: s.total - s.used,
      used_fraction: s.used / s.total,
    }
  }

  agentFor(vm) {
    const agent = vm.config.agent
    const enabled = agent !== undefined && (() => {
      try {
        const parsed = parsePropertyString({enabled: {type: 'boolean', default_key: 1}, 'freeze-fs': {type: 'boolean'}, 'freeze-fs-on-backup': {alias: 'freeze-fs'}, fstrim_cloned_disks: {type: 'boolean'}, type: {type: 'string'}}, agent)
        return /^(1|true|yes|on)$/i.test(parsed.enabled ?? '0')
      } catch {
        return false
      }
    })()
    if (!enabled) fail('No QEMU guest agent configured')
    if (vm.status !== 'running') fail(`VM ${vm.vmid} is not running`)
    if (!vm.agent.running) fail('QEMU guest agent is not running')
    return vm.agent
  }
}

// ---- endpoint handlers, keyed by "METHOD schema-path" ----------------------------------------
/** @type {Record<string, (this: PveSim, ctx: {params: Record<string, any>, auth: any}) => unknown>} */
const HANDLERS = {
  'GET /version'() {
    return {version: this.pveVersion, release: this.release, repoid: this.release === '8.4' ? 'b1855a0c1e8a0ab4' : 'b9282e4b4e7ff14a'}
  },
  'POST /access/ticket'({params}) {
    const userid = params.realm && !params.username.includes('@') ? `${params.username}@${params.realm}` : params.username
    const user = this.state.users.get(userid)
    if (!user || !user.password || user.password !== params.password || !user.enable) throw new SimError(401, 'authentication failure')
    const ticket = `PVE:${userid}:${hex8(Math.floor(Date.now() / 1000))}::${randomBytes(32).toString('base64')}`
    const csrf = `${hex8(Math.floor(Date.now() / 1000))}:${randomBytes(16).toString('base64url')}`
    this.state.tickets.set(ticket, {userid, csrf, expired: false})
    return {username: userid, ticket, CSRFPreventionToken: csrf, cap: {}}
  },
  'GET /nodes'({auth}) {
    const n = this.state.nodeInfo
    const audit = this.privileges(auth, `/nodes/${this.node}`).has('Sys.Audit')
    return [
      {
        node: this.node,
        status: 'online',
        type: 'node',
        id: `node/${this.node}`,
        ssl_fingerprint: this.fingerprint,
        ...(audit ? {cpu: n.cpu, maxcpu: n.cpus, mem: n.mem, maxmem: n.maxmem, uptime: n.uptime, level: ''} : {}),
      },
    ]
  },
  'GET /nodes/{node}/status'({params}) {
    this.nodeMustExist(params.node)
    const n = this.state.nodeInfo
    return {
      cpu: n.cpu,
      cpuinfo: {cpus: n.cpus, cores: n.cpus / 2, sockets: 1, model: 'Simulated CPU', mhz: '3000.000', hvm: '1', flags: ''},
      memory: {total: n.maxmem, used: n.mem, free: n.maxmem - n.mem},
      swap: {total: 0, used: 0, free: 0},
      rootfs: {total: 100 * GIB, used: 10 * GIB, avail: 90 * GIB, free: 90 * GIB},
      uptime: n.uptime,
      loadavg: ['0.10', '0.20', '0.30'],
      kversion: 'Linux 6.14.8-2-pve #1 SMP PREEMPT_DYNAMIC',
      pveversion: `pve-manager/${this.pveVersion}/0123456789abcdef`,
      idle: 0,
      wait: 0,
    }
  },
  'GET /nodes/{node}/storage'({params, auth}) {
    this.nodeMustExist(params.node)
    const want = params.content ? params.content.split(/[,;\s]+/) : []
    return [...this.state.storages.values()]
      .filter((s) => (params.storage ? s.storage === params.storage : true))
      .filter((s) => want.every((c) => s.content.has(c)))
      .filter((s) => (params.enabled === '1' ? s.enabled : true))
      .filter((s) => {
        const have = this.privileges(auth, `/storage/${s.storage}`)
        return have.has('Datastore.Audit') || have.has('Datastore.AllocateSpace')
      })
      .map((s) => this.storageSummary(s))
  },
  'GET /nodes/{node}/storage/{storage}/status'({params}) {
    this.nodeMustExist(params.node)
    return this.storageSummary(this.storageOf(params.storage))
  },
  'GET /nodes/{node}/storage/{storage}/content'({params}) {
    this.storageOf(params.storage)
    return [...this.state.volumes.values()]
      .filter((v) => v.storage === params.storage)
      .filter((v) => (params.content ? v.content === params.content : true))
      .filter((v) => (params.vmid ? v.vmid === Number(params.vmid) : true))
      .map((v) => ({volid: v.volid, content: v.content, format: v.format, size: v.size, ctime: v.ctime, ...(v.vmid ? {vmid: v.vmid} : {})}))
  },
  'POST /nodes/{node}/storage/{storage}/download-url'({params, auth}) {
    this.nodeMustExist(params.node)
    const storage = this.storageOf(params.storage)
    if (!storage.content.has(params.content)) fail(`storage '${storage.storage}' is not configured for content-type '${params.content}'`)
    if (params.content === 'import' && !/\.(qcow2|raw|vmdk|ova)$/.test(params.filename))
      paramFail({filename: `invalid filename or wrong extension for 'import' content type`})
    if (params.content === 'iso' && !/\.(iso|img)$/i.test(params.filename)) paramFail({filename: 'wrong file extension'})
    const dir = params.content === 'import' ? 'import' : params.content === 'iso' ? 'iso' : 'vztmpl'
    const volid = `${storage.storage}:${dir}/${params.filename}`
    return this.startTask('download', storage.storage, auth, (task) => {
      const known = this.state.downloads.get(params.url)
      task.log.push(`downloading ${params.url} to /var/lib/vz/${dir}/${params.filename}`)
      if (this.state.volumes.has(volid)) throw new SimError(500, `refusing to override existing file '${params.filename}'`)
      if (params.checksum) {
        task.log.push(`calculating checksum of '${params.filename}'...`)
        if (known?.sha256 && params['checksum-algorithm'] === 'sha256' && known.sha256 !== params.checksum.toLowerCase())
          throw new SimError(500, `checksum mismatch: got '${known.sha256}' != expect '${params.checksum.toLowerCase()}'`)
        task.log.push('checksum verified')
      }
      const size = known?.size ?? 600 * 1024 * 1024
      this.addVolume(volid, {content: params.content, size, format: params.content === 'import' ? params.filename.split('.').pop() : params.content})
      storage.used += size
      task.log.push(`download of '${params.url}' to '${volid}' finished`)
    })
  },
  'GET /storage/{storage}'({params}) {
    const s = this.storageOf(params.storage)
    return {storage: s.storage, type: s.type, content: [...s.content].sort().join(','), ...(s.path ? {path: s.path} : {}), digest: digestOf([...s.content])}
  },
  'PUT /storage/{storage}'({params}) {
    const s = this.storageOf(params.storage)
    if (params.content !== undefined) {
      const wanted = params.content.split(/[,;\s]+/).filter(Boolean)
      const allowed = s.type === 'dir' ? CONTENT_TYPES : s.type === 'lvmthin' ? ['images', 'rootdir'] : CONTENT_TYPES
      for (const c of wanted) if (!allowed.includes(c)) fail(`update storage failed: storage '${s.storage}' does not support content type '${c}'`)
      s.content = new Set(wanted)
    }
    return {storage: s.storage, type: s.type}
  },
  'GET /nodes/{node}/network'({params, auth}) {
    this.nodeMustExist(params.node)
    const t = params.type
    // Since PVE 8.0 bridges the caller may not use (SDN.Audit/SDN.Use on
    // /sdn/zones/localnetwork/<bridge>) are silently left out — no 403, a shorter list.
    const visible = (n) =>
      /bridge/i.test(n.type)
        ? ['SDN.Audit', 'SDN.Use'].some((p) => this.privileges(auth, `/sdn/zones/localnetwork/${n.iface}`).has(p))
        : this.privileges(auth, `/nodes/${this.node}`).has('Sys.Audit')
    return this.state.network.filter((n) => !t || n.type === t || ((t === 'any_bridge' || t === 'any_local_bridge') && /bridge/i.test(n.type))).filter(visible)
  },
  'GET /nodes/{node}/qemu'({params, auth}) {
    this.nodeMustExist(params.node)
    return [...this.state.vms.values()].filter((vm) => this.privileges(auth, `/vms/${vm.vmid}`).has('VM.Audit')).map((vm) => this.vmSummary(vm))
  },
  'POST /nodes/{node}/qemu'({params, auth}) {
    this.nodeMustExist(params.node)
    const vmid = Number(params.vmid)
    this.requirePriv(auth, `/vms/${vmid}`, ['VM.Allocate'])
    if (params.archive) fail('restore is not implemented by the simulator')
    this.checkConfigPrivs(auth, vmid, Object.keys(params), params)
    this.checkBridges(auth, params)
    if (this.state.vms.has(vmid)) fail(`unable to create VM ${vmid} - VM ${vmid} already exists on node '${this.node}'`)
    const vm = newVm(vmid, {node: this.node, config: {}})
    vm.config = {}
    vm.lock = 'create'
    this.state.vms.set(vmid, vm)
    try {
      this.applyConfig(auth, vm, params)
    } catch (error) {
      this.state.vms.delete(vmid)
      throw error
    }
    if (!vm.config.memory) vm.config.memory = '512'
    vm.config.meta = `creation-qemu=9.2.0,ctime=${Math.floor(Date.now() / 1000)}`
    vm.config.vmgenid = randomUUID()
    return this.startTask('qmcreate', vmid, auth, () => {
      vm.lock = undefined
      if (params.start === '1') this.startVm(vm)
    })
  },
  'GET /nodes/{node}/qemu/{vmid}/config'({params}) {
    const vm = this.getVm(params.vmid)
    return {...vm.config, digest: digestOf(vm.config), ...(vm.lock ? {lock: vm.lock} : {})}
  },
  'POST /nodes/{node}/qemu/{vmid}/config'({params, auth}) {
    return this.updateConfig(params, auth, true)
  },
  'PUT /nodes/{node}/qemu/{vmid}/config'({params, auth}) {
    return this.updateConfig(params, auth, false)
  },
  'GET /nodes/{node}/qemu/{vmid}/status/current'({params}) {
    const vm = this.getVm(params.vmid)
    const s = this.vmSummary(vm)
    return {...s, qmpstatus: vm.status, ha: {managed: 0}, ...(vm.config.agent ? {agent: 1} : {})}
  },
  'POST /nodes/{node}/qemu/{vmid}/status/start'({params, auth}) {
    const vm = this.getVm(params.vmid)
    this.checkLock(vm, params)
    if (vm.config.template === '1') fail("you can't start a vm if it's a template")
    return this.startTask('qmstart', vm.vmid, auth, () => {
      if (vm.status === 'running') throw new SimError(500, `VM ${vm.vmid} already running`)
      this.startVm(vm)
    })
  },
  'POST /nodes/{node}/qemu/{vmid}/status/stop'({params, auth}) {
    const vm = this.getVm(params.vmid)
    this.checkLock(vm, params)
    return this.startTask('qmstop', vm.vmid, auth, () => {
      vm.status = 'stopped'
      vm.startedAt = undefined
    })
  },
  'POST /nodes/{node}/qemu/{vmid}/status/shutdown'({params, auth}) {
    const vm = this.getVm(params.vmid)
    this.checkLock(vm, params)
    return this.startTask('qmshutdown', vm.vmid, auth, () => {
      if (vm.status !== 'running') throw new SimError(500, `VM ${vm.vmid} not running`)
      vm.status = 'stopped'
      vm.startedAt = undefined
    })
  },
  'POST /nodes/{node}/qemu/{vmid}/clone'({params, auth}) {
    const src = this.getVm(params.vmid)
    const newid = Number(params.newid)
    this.checkLock(src, {})
    if (this.state.vms.has(newid)) fail(`unable to create VM ${newid}: config file already exists`)
    const full = params.full === '1' || src.config.template !== '1'
    if (params.storage) {
      if (!full) fail('storage migration is only possible with full clones')
      this.requirePriv(auth, `/storage/${params.storage}`, ['Datastore.AllocateSpace'])
    }
    const vm = newVm(newid, {node: this.node})
    vm.config = {}
    for (const [k, v] of Object.entries(src.config)) if (k !== 'template' && k !== 'vmgenid') vm.config[k] = v
    vm.config.name = params.name ?? `Copy-of-VM-${src.config.name}`
    if (params.description) vm.config.description = params.description
    vm.lock = 'clone'
    this.state.vms.set(newid, vm)
    let n = 0
    for (const [k, v] of Object.entries(src.config)) {
      if (!/^(scsi|virtio|sata|ide|efidisk)\d+$/.test(k)) continue
      const [volid, ...opts] = v.split(',')
      const vol = this.state.volumes.get(volid)
      if (!vol) continue
      const sid = params.storage ?? vol.storage
      const target = opts.includes('media=cdrom') ? `${sid}:vm-${newid}-cloudinit` : full ? `${sid}:vm-${newid}-disk-${n++}` : `${sid}:${volid.split(':')[1]}/vm-${newid}-disk-${n++}`
      this.addVolume(target, {vmid: newid, size: vol.size, format: vol.format})
      vm.config[k] = [target, ...opts].join(',')
    }
    const busy = this.faults.exclusiveClones && src.cloning > 0
    src.cloning = (src.cloning ?? 0) + 1
    return this.startTask('qmclone', src.vmid, auth, (task) => {
      src.cloning -= 1
      if (busy) {
        this.state.vms.delete(newid)
        for (const v of [...this.state.volumes.values()]) if (v.vmid === newid) this.state.volumes.delete(v.volid)
        throw new SimError(500, `clone failed: can't lock file '/var/lock/qemu-server/lock-${src.vmid}.conf' - got timeout`)
      }
      task.log.push(`create ${full ? 'full' : 'linked'} clone of drive scsi0`)
      vm.lock = undefined
    })
  },
  'POST /nodes/{node}/qemu/{vmid}/template'({params, auth}) {
    const vm = this.getVm(params.vmid)
    this.checkLock(vm, {})
    if (vm.status === 'running') fail("you can't convert a VM to template if VM is running")
    return this.startTask('qmtemplate', vm.vmid, auth, () => {
      for (const [k, v] of Object.entries(vm.config)) {
        if (!/^(scsi|virtio|sata|ide)\d+$/.test(k) || /media=cdrom/.test(v)) continue
        const [volid, ...opts] = v.split(',')
        const base = volid.replace(/:vm-(\d+)-disk/, ':base-$1-disk')
        const vol = this.state.volumes.get(volid)
        if (vol) {
          this.state.volumes.delete(volid)
          this.state.volumes.set(base, {...vol, volid: base})
        }
        vm.config[k] = [base, ...opts].join(',')
      }
      vm.config.template = '1'
    })
  },
  'DELETE /nodes/{node}/qemu/{vmid}'({params, auth}) {
    const vm = this.getVm(params.vmid)
    this.checkLock(vm, params)
    if (vm.status === 'running') fail(`VM ${vm.vmid} is running - destroy failed`)
    return this.startTask('qmdestroy', vm.vmid, auth, () => {
      for (const v of [...this.state.volumes.values()]) {
        if (v.vmid !== vm.vmid) continue
        this.state.volumes.delete(v.volid)
        const s = this.state.storages.get(v.storage)
        if (s && !v.volid.includes('cloudinit')) s.used = Math.max(0, s.used - v.size)
      }
      this.state.vms.delete(vm.vmid)
    })
  },
  // Added by the Terraform helper (H3) for the fake terraform: the provider resizes cloned disks
  // and deletes the downloaded image on destroy.
  'PUT /nodes/{node}/qemu/{vmid}/resize'({params, auth}) {
    const vm = this.getVm(params.vmid)
    this.checkLock(vm, params)
    const value = vm.config[params.disk]
    if (!value || /media=cdrom/.test(value)) fail(`disk '${params.disk}' does not exist`)
    const [volid, ...opts] = value.split(',')
    const vol = this.state.volumes.get(volid)
    const m = /^(\+)?(\d+(?:\.\d+)?)([KMGT])?$/.exec(params.size)
    if (!m) paramFail({size: 'value does not match the regex pattern'})
    const unit = {K: 1024, M: 1024 ** 2, G: GIB, T: 1024 * GIB}[m[3] ?? 'G'] ?? 1
    const current = vol?.size ?? 0
    const wanted = m[1] ? current + Number(m[2]) * unit : Number(m[2]) * unit
    if (wanted < current) fail('shrinking disks is not supported')
    return this.startTask('resize', vm.vmid, auth, () => {
      if (vol) {
        const s = this.state.storages.get(vol.storage)
        if (s) s.used += wanted - vol.size
        vol.size = wanted
      }
      vm.config[params.disk] = [volid, ...opts.filter((o) => !o.startsWith('size=')), `size=${Math.round(wanted / GIB)}G`].join(',')
    })
  },
  'DELETE /nodes/{node}/storage/{storage}/content/{volume}'({params, auth}) {
    const storage = this.storageOf(params.storage)
    const name = decodeURIComponent(params.volume)
    const volid = name.includes(':') ? name : `${storage.storage}:${name}`
    const vol = this.state.volumes.get(volid)
    if (!vol) fail(`volume '${volid}' does not exist`)
    if (vol.vmid) fail(`volume '${volid}' belongs to VM ${vol.vmid}: remove it through the VM`)
    this.requirePriv(auth, `/storage/${storage.storage}`, ['Datastore.Allocate'])
    return this.startTask('imgdel', volid, auth, () => {
      this.state.volumes.delete(volid)
      storage.used = Math.max(0, storage.used - vol.size)
    })
  },
  'GET /nodes/{node}/qemu/{vmid}/snapshot'({params}) {
    const vm = this.getVm(params.vmid)
    return [
      ...vm.snapshots.map((s) => ({name: s.name, description: s.description, snaptime: s.snaptime, vmstate: s.vmstate ? 1 : 0, ...(s.parent ? {parent: s.parent} : {})})),
      {name: 'current', description: 'You are here!', digest: digestOf(vm.config), running: vm.status === 'running' ? 1 : 0, ...(vm.parent ? {parent: vm.parent} : {})},
    ]
  },
  'POST /nodes/{node}/qemu/{vmid}/snapshot'({params, auth}) {
    const vm = this.getVm(params.vmid)
    this.checkLock(vm, {})
    if (params.snapname === 'current') paramFail({snapname: "invalid snapshot name 'current'"})
    if (vm.snapshots.some((s) => s.name === params.snapname)) fail(`snapshot name '${params.snapname}' already used`)
    vm.lock = 'snapshot'
    return this.startTask('qmsnapshot', vm.vmid, auth, () => {
      vm.snapshots.push({name: params.snapname, description: params.description ?? '', snaptime: Math.floor(Date.now() / 1000), vmstate: params.vmstate === '1', parent: vm.parent, config: {...vm.config}})
      vm.parent = params.snapname
      vm.lock = undefined
    })
  },
  'DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}'({params, auth}) {
    const vm = this.getVm(params.vmid)
    const snap = vm.snapshots.find((s) => s.name === params.snapname)
    if (!snap) fail(`snapshot '${params.snapname}' does not exist`)
    this.checkLock(vm, {})
    return this.startTask('qmdelsnapshot', vm.vmid, auth, () => {
      for (const s of vm.snapshots) if (s.parent === snap.name) s.parent = snap.parent
      if (vm.parent === snap.name) vm.parent = snap.parent
      vm.snapshots = vm.snapshots.filter((s) => s !== snap)
    })
  },
  'POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback'({params, auth}) {
    const vm = this.getVm(params.vmid)
    const snap = vm.snapshots.find((s) => s.name === params.snapname)
    if (!snap) fail(`snapshot '${params.snapname}' does not exist`)
    this.checkLock(vm, {})
    return this.startTask('qmrollback', vm.vmid, auth, () => {
      vm.config = {...snap.config}
      vm.parent = snap.name
      if (!snap.vmstate) {
        vm.status = params.start === '1' ? 'running' : 'stopped'
        vm.startedAt = vm.status === 'running' ? Date.now() : undefined
      }
    })
  },
  'GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces'({params}) {
    const vm = this.getVm(params.vmid)
    const agent = this.agentFor(vm)
    if (agent.interfaces) return {result: agent.interfaces}
    const ip = /ip=([\d.]+)\//.exec(vm.config.ipconfig0 ?? '')?.[1]
    return {
      result: [
        {name: 'lo', 'hardware-address': '00:00:00:00:00:00', 'ip-addresses': [{'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', prefix: 8}]},
        {name: 'eth0', 'hardware-address': 'bc:24:11:00:00:01', 'ip-addresses': ip ? [{'ip-address': ip, 'ip-address-type': 'ipv4', prefix: 24}] : []},
      ],
    }
  },
  'GET /nodes/{node}/qemu/{vmid}/agent/file-read'({params}) {
    const vm = this.getVm(params.vmid)
    const agent = this.agentFor(vm)
    const content = agent.files.get(params.file)
    if (content === undefined) fail(`Agent error: Failed to open file '${params.file}': No such file or directory`)
    return {content, 'bytes-read': Buffer.byteLength(content)}
  },
  'POST /nodes/{node}/qemu/{vmid}/agent/exec'({params}) {
    const vm = this.getVm(params.vmid)
    const agent = this.agentFor(vm)
    const command = Array.isArray(params.command) ? params.command : [params.command]
    const pid = 1000 + Math.floor(Math.random() * 30000)
    agent.lastExec = {pid, result: agent.exec ? agent.exec(command, params['input-data']) : {exitcode: 0, out: ''}}
    return {pid}
  },
  'GET /nodes/{node}/qemu/{vmid}/agent/exec-status'({params}) {
    const vm = this.getVm(params.vmid)
    const agent = this.agentFor(vm)
    if (agent.lastExec?.pid !== Number(params.pid)) fail(`Agent error: PID ${params.pid} does not exist`)
    const r = agent.lastExec.result
    return {exited: 1, exitcode: r.exitcode, ...(r.out ? {'out-data': r.out} : {}), ...(r.err ? {'err-data': r.err} : {})}
  },
  'GET /cluster/resources'({params, auth}) {
    const out = []
    const t = params.type
    if (!t || t === 'node') {
      const n = this.state.nodeInfo
      out.push({id: `node/${this.node}`, type: 'node', node: this.node, status: 'online', maxcpu: n.cpus, cpu: n.cpu, maxmem: n.maxmem, mem: n.mem, uptime: n.uptime})
    }
    if (!t || t === 'vm') {
      for (const vm of this.state.vms.values()) {
        if (!this.privileges(auth, `/vms/${vm.vmid}`).has('VM.Audit')) continue
        const s = this.vmSummary(vm)
        out.push({id: `qemu/${vm.vmid}`, type: 'qemu', node: this.node, vmid: vm.vmid, name: s.name, status: s.status, maxcpu: s.cpus, maxmem: s.maxmem, maxdisk: s.maxdisk, template: s.template ?? 0, ...(s.tags ? {tags: s.tags} : {})})
      }
    }
    if (!t || t === 'storage') {
      for (const s of this.state.storages.values()) {
        out.push({id: `storage/${this.node}/${s.storage}`, type: 'storage', node: this.node, storage: s.storage, plugintype: s.type, content: [...s.content].join(','), disk: s.used, maxdisk: s.total, status: 'available', shared: s.shared ? 1 : 0})
      }
    }
    return out
  },
  'GET /cluster/nextid'({params}) {
    if (params.vmid) {
      if (this.state.vms.has(Number(params.vmid))) paramFail({vmid: `VM ${params.vmid} already exists`})
      return String(params.vmid)
    }
    let id = 100
    while (this.state.vms.has(id)) id++
    return String(id)
  },
  'GET /cluster/backup'() {
    return [...this.state.backupJobs.values()].map((j) => ({...j, 'next-run': Math.floor(Date.now() / 1000) + 3600}))
  },
  'POST /cluster/backup'({params}) {
    if (!params.schedule && !params.starttime) paramFail({schedule: 'need schedule or starttime'})
    if (!params.vmid && params.all !== '1' && !params.pool) fail("you need to specify an option 'vmid', 'all' or 'pool'")
    const id = params.id ?? `backup-${randomBytes(4).toString('hex')}-${randomBytes(2).toString('hex')}`
    if (this.state.backupJobs.has(id)) fail(`Job '${id}' already exists`)
    const job = {id, type: 'vzdump', enabled: 1, ...withoutKeys(params, ['id'])}
    if (!job.schedule) job.schedule = `${(params.dow ?? 'mon..sun').replaceAll(',', ',')} ${params.starttime}`
    delete job.starttime
    delete job.dow
    this.state.backupJobs.set(id, normalizeJob(job))
    return null
  },
  'GET /cluster/backup/{id}'({params}) {
    const job = this.state.backupJobs.get(params.id)
    if (!job) fail(`Job '${params.id}' does not exist`)
    return job
  },
  'PUT /cluster/backup/{id}'({params}) {
    const job = this.state.backupJobs.get(params.id)
    if (!job) fail(`Job '${params.id}' does not exist`)
    const next = {...job, ...withoutKeys(params, ['id', 'delete'])}
    for (const k of String(params.delete ?? '').split(/[,;\s]+/).filter(Boolean)) delete next[k]
    this.state.backupJobs.set(params.id, normalizeJob(next))
    return null
  },
  'DELETE /cluster/backup/{id}'({params}) {
    if (!this.state.backupJobs.delete(params.id)) fail(`Job '${params.id}' does not exist`)
    return null
  },
  'GET /nodes/{node}/tasks/{upid}/status'({params, auth}) {
    const task = this.taskOf(params)
    if (task.user.split('!')[0] !== auth.userid) this.requirePriv(auth, `/nodes/${this.node}`, ['Sys.Audit'])
    const {upid, node, pid, pstart, starttime, type, id, user, status, exitstatus} = task
    return {upid, node, pid, pstart, starttime, type, id, user, status, ...(status === 'stopped' ? {exitstatus} : {}), ...(user.includes('!') ? {tokenid: user.split('!')[1]} : {})}
  },
  'GET /nodes/{node}/tasks/{upid}/log'({params, auth}) {
    const task = this.taskOf(params)
    if (task.user.split('!')[0] !== auth.userid) this.requirePriv(auth, `/nodes/${this.node}`, ['Sys.Audit'])
    const start = Number(params.start ?? 0)
    const limit = Number(params.limit ?? 50)
    return task.log.slice(start, start + limit).map((t, i) => ({n: start + i + 1, t}))
  },
  'GET /access/users'({auth}) {
    const canSee = this.privileges(auth, '/access/groups')
    return [...this.state.users.values()]
      .filter((u) => u.userid === auth.userid || canSee.has('User.Modify') || canSee.has('Sys.Audit'))
      .map((u) => ({userid: u.userid, enable: u.enable, expire: u.expire, ...(u.comment ? {comment: u.comment} : {}), realm_type: u.userid.split('@')[1]}))
  },
  'POST /access/users'({params}) {
    if (this.state.users.has(params.userid)) fail(`create user failed: user '${params.userid}' already exists`)
    if (params.password && !params.userid.endsWith('@pve')) fail('create user failed: password can only be set for users in the pve realm')
    this.state.users.set(params.userid, {userid: params.userid, enable: params.enable === '0' ? 0 : 1, expire: Number(params.expire ?? 0), comment: params.comment, password: params.password, tokens: new Map()})
    return null
  },
  'GET /access/users/{userid}'({params}) {
    const u = this.userOf(params.userid)
    return {enable: u.enable, expire: u.expire, ...(u.comment ? {comment: u.comment} : {}), tokens: Object.fromEntries([...u.tokens].map(([id, t]) => [id, {privsep: t.privsep, expire: t.expire}]))}
  },
  'PUT /access/users/{userid}'({params}) {
    const u = this.userOf(params.userid)
    if (params.comment !== undefined) u.comment = params.comment
    if (params.enable !== undefined) u.enable = Number(params.enable)
    if (params.expire !== undefined) u.expire = Number(params.expire)
    return null
  },
  'DELETE /access/users/{userid}'({params}) {
    this.userOf(params.userid)
    this.state.users.delete(params.userid)
    this.state.acl = this.state.acl.filter((e) => !(e.ugid === params.userid || e.ugid.startsWith(`${params.userid}!`)))
    return null
  },
  'GET /access/users/{userid}/token'({params}) {
    const u = this.userOf(params.userid)
    return [...u.tokens].map(([tokenid, t]) => ({tokenid, privsep: t.privsep, expire: t.expire, ...(t.comment ? {comment: t.comment} : {})}))
  },
  'GET /access/users/{userid}/token/{tokenid}'({params}) {
    const t = this.tokenOf(params)
    return {privsep: t.privsep, expire: t.expire, ...(t.comment ? {comment: t.comment} : {})}
  },
  'POST /access/users/{userid}/token/{tokenid}'({params}) {
    const u = this.userOf(params.userid)
    if (u.tokens.has(params.tokenid)) fail('Token already exists.')
    const t = {privsep: params.privsep === '0' ? 0 : 1, expire: Number(params.expire ?? u.expire ?? 0), comment: params.comment, secret: randomUUID()}
    u.tokens.set(params.tokenid, t)
    return {'full-tokenid': `${params.userid}!${params.tokenid}`, info: {privsep: t.privsep, expire: t.expire, ...(t.comment ? {comment: t.comment} : {})}, value: t.secret}
  },
  'PUT /access/users/{userid}/token/{tokenid}'({params}) {
    const t = this.tokenOf(params)
    if (params.privsep !== undefined) t.privsep = Number(params.privsep)
    if (params.comment !== undefined) t.comment = params.comment
    if (params.expire !== undefined) t.expire = Number(params.expire)
    return {privsep: t.privsep, expire: t.expire}
  },
  'DELETE /access/users/{userid}/token/{tokenid}'({params}) {
    this.tokenOf(params)
    this.userOf(params.userid).tokens.delete(params.tokenid)
    const full = `${params.userid}!${params.tokenid}`
    this.state.acl = this.state.acl.filter((e) => !(e.type === 'token' && e.ugid === full))
    return null
  },
  'GET /access/roles'() {
    return [...this.state.roles].map(([roleid, r]) => ({roleid, privs: expandPrivs(r.privs, this.schema.privileges).join(','), special: r.special ?? 0}))
  },
  'POST /access/roles'({params}) {
    if (this.state.roles.has(params.roleid)) fail(`role '${params.roleid}' already exists`)
    this.state.roles.set(params.roleid, {privs: new Set(splitList(params.privs)), special: 0})
    return null
  },
  'GET /access/roles/{roleid}'({params}) {
    const r = this.state.roles.get(params.roleid)
    if (!r) fail(`role '${params.roleid}' does not exist`)
    return Object.fromEntries(expandPrivs(r.privs, this.schema.privileges).map((p) => [p, 1]))
  },
  'PUT /access/roles/{roleid}'({params}) {
    const r = this.state.roles.get(params.roleid)
    if (!r) fail(`role '${params.roleid}' does not exist`)
    if (r.special) fail(`cannot modify special role '${params.roleid}'`)
    const privs = splitList(params.privs)
    r.privs = params.append === '1' ? new Set([...r.privs, ...privs]) : new Set(privs)
    return null
  },
  'DELETE /access/roles/{roleid}'({params}) {
    const r = this.state.roles.get(params.roleid)
    if (!r) fail(`role '${params.roleid}' does not exist`)
    if (r.special) fail(`cannot delete special role '${params.roleid}'`)
    this.state.roles.delete(params.roleid)
    return null
  },
  'GET /access/acl'({auth}) {
    return this.state.acl.filter((e) => this.privileges(auth, e.path).has('Permissions.Modify')).map((e) => ({...e, propagate: e.propagate ? 1 : 0}))
  },
  'PUT /access/acl'({params}) {
    const aclPath = params.path
    if (!/^\/(vms(\/\d+)?|storage(\/[\w.-]+)?|nodes(\/[\w.-]+)?|pool(\/[\w./-]+)?|access(\/(groups|realm)(\/[\w.-]+)?)?|sdn(\/zones(\/[\w.-]+(\/[\w.-]+(\/\d+)?)?)?|\/vnets(\/[\w.-]+)?)?|mapping(\/\w+(\/[\w.-]+)?)?)?$/.test(aclPath)) paramFail({path: `invalid ACL path '${aclPath}'`})
    const roles = splitList(params.roles)
    for (const r of roles) if (!this.state.roles.has(r)) fail(`role '${r}' does not exist`)
    const subjects = [
      ...splitList(params.users ?? '').map((u) => {
        if (!this.state.users.has(u)) fail(`user '${u}' does not exist`)
        return ['user', u]
      }),
      ...splitList(params.tokens ?? '').map((t) => {
        const [u, id] = t.split('!')
        if (!this.state.users.get(u)?.tokens.has(id)) fail(`no such token '${id}' for user '${u}'`)
        return ['token', t]
      }),
      ...splitList(params.groups ?? '').map((g) => ['group', g]),
    ]
    for (const [type, ugid] of subjects) {
      for (const roleid of roles) {
        this.state.acl = this.state.acl.filter((e) => !(e.path === aclPath && e.type === type && e.ugid === ugid && e.roleid === roleid))
        if (params.delete !== '1') this.state.acl.push({path: aclPath, type, ugid, roleid, propagate: params.propagate === '0' ? 0 : 1})
      }
    }
    return null
  },
  'GET /access/permissions'({params, auth}) {
    let subject = auth
    if (params.userid) {
      const [userid, tokenid] = params.userid.split('!')
      const own = userid === auth.userid
      if (!own) this.requirePriv(auth, '/access', ['Sys.Audit'])
      const token = tokenid ? this.state.users.get(userid)?.tokens.get(tokenid) : undefined
      subject = {userid, tokenid, privsep: Boolean(token?.privsep)}
    }
    const paths = params.path ? [params.path] : ['/', ...new Set(this.state.acl.map((e) => e.path))]
    return Object.fromEntries(paths.map((p) => [p, Object.fromEntries([...this.privileges(subject, p)].sort().map((x) => [x, 1]))]))
  },
}

Object.assign(PveSim.prototype, {
  nodeMustExist(node) {
    if (node !== this.node) fail(`hostname lookup '${node}' failed - failed to get address info for: ${node}: Name or service not known`)
  },
  startVm(vm) {
    vm.status = 'running'
    vm.startedAt = Date.now()
  },
  updateConfig(params, auth, async) {
    const vm = this.getVm(params.vmid)
    this.checkLock(vm, params)
    if (params.digest && params.digest !== digestOf(vm.config)) fail('detected modified configuration - file changed by other user? Try again.')
    const keys = [...Object.keys(params), ...String(params.delete ?? '').split(/[,;\s]+/).filter(Boolean)]
    this.checkConfigPrivs(auth, vm.vmid, keys, params)
    this.checkBridges(auth, params)
    this.applyConfig(auth, vm, params)
    return async ? this.startTask('qmconfig', vm.vmid, auth, () => {}) : null
  },
  taskOf(params) {
    const task = this.state.tasks.get(params.upid)
    if (!task) fail(`unable to parse worker upid '${params.upid}'`)
    return task
  },
  userOf(userid) {
    const u = this.state.users.get(userid)
    if (!u) fail(`no such user ('${userid}')`)
    return u
  },
  tokenOf(params) {
    const t = this.userOf(params.userid).tokens.get(params.tokenid)
    if (!t) fail(`no such token '${params.tokenid}' for user '${params.userid}'`)
    return t
  },
})

/** PVE stores a NIC as `<model>=<MAC>,...`, generating a MAC (prefix BC:24:11) when none is given. */
function withMac(value) {
  const parts = value.split(',')
  const first = parts[0]
  if (/^[\w-]+=[0-9A-Fa-f:]{17}$/.test(first)) return value
  const rest = parts.filter((p) => p !== first && !p.startsWith('macaddr=') && !p.startsWith('model='))
  const model = first.includes('=') ? (/(?:^|,)model=([^,]+)/.exec(value)?.[1] ?? 'virtio') : first
  const mac = /(?:^|,)macaddr=([^,]+)/.exec(value)?.[1] ?? `BC:24:11:${[0, 0, 0].map(() => randomBytes(1).toString('hex').toUpperCase()).join(':')}`
  return [`${model}=${mac}`, ...(first.includes('=') && !first.startsWith('model=') && !first.startsWith('macaddr=') ? [first] : []), ...rest].join(',')
}

function expandPrivs(privs, all) {
  return privs.has('*') ? [...all] : [...privs].sort()
}
function splitList(v) {
  return String(v ?? '')
    .split(/[\0\s,;]+/)
    .filter(Boolean)
}
function withoutKeys(obj, keys) {
  return Object.fromEntries(Object.entries(obj).filter(([k]) => !keys.includes(k)))
}
function normalizeJob(job) {
  const out = {...job}
  for (const k of ['enabled', 'all', 'protected', 'remove', 'quiet', 'stop', 'repeat-missed']) if (out[k] !== undefined) out[k] = Number(out[k])
  return out
}
function collectParams(sp) {
  const out = {}
  for (const [k, v] of sp) {
    if (out[k] === undefined) out[k] = v
    else out[k] = Array.isArray(out[k]) ? [...out[k], v] : [out[k], v]
  }
  return out
}
function redactParams(params) {
  const out = {...params}
  for (const k of ['password', 'cipassword', 'value']) if (out[k] !== undefined) out[k] = '********'
  return out
}
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}
function safeReason(text) {
  // PVE puts the (first line of the) error message in the status line.
  return String(text).split('\n')[0].replace(/[^\t\x20-\x7e]/g, '?').slice(0, 512)
}
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
