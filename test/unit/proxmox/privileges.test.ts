import {describe, expect, it} from 'vitest'

import {privilegesOn, terraformGrants, terraformPrivileges, terraformStorages} from '../../../src/proxmox/access.js'
import {loadSchema, matchPath} from '../../support/pve-sim/schema.mjs'
import {PRIVILEGES_8, PRIVILEGES_9} from '../../support/pve-sim/formats.mjs'

describe('the Terraform role', () => {
  it('names only privileges that exist on the version it is made for', () => {
    for (const p of terraformPrivileges(8)) expect(PRIVILEGES_8).toContain(p)
    for (const p of terraformPrivileges(9)) expect(PRIVILEGES_9).toContain(p)
  })

  it('holds no administrative privilege', () => {
    for (const major of [8, 9]) {
      const privs = terraformPrivileges(major)
      for (const admin of ['Sys.Modify', 'Permissions.Modify', 'User.Modify', 'Realm.Allocate', 'Datastore.Allocate', 'Sys.PowerMgmt', 'Sys.Console', 'VM.GuestAgent.Unrestricted'])
        expect(privs).not.toContain(admin)
    }
  })
})

/**
 * The calls bpg/proxmox makes for autolabs (read at the pinned tag: fwprovider/nodes/
 * resource_download_file.go, proxmoxtf/resource/file.go fileCreate/fileDelete, proxmoxtf/resource/vm/
 * vm.go and proxmox/nodes/vms/vms.go), with the storage each touches. Each privilege check is
 * read from the API schema's `permissions` entry for that call, never written here by hand.
 */
const PROVIDER_CALLS: Array<[string, string, Record<string, string>]> = [
  ['POST', '/nodes/{node}/storage/{storage}/download-url', {storage: 'local'}],
  ['GET', '/nodes/{node}/storage/{storage}/content', {storage: 'local'}],
  ['GET', '/storage/{storage}', {storage: 'local'}],
  ['DELETE', '/nodes/{node}/storage/{storage}/content/{volume}', {storage: 'local'}],
  ['POST', '/nodes/{node}/qemu', {vmid: '9000'}],
  ['POST', '/nodes/{node}/qemu/{vmid}/template', {vmid: '9000'}],
  ['POST', '/nodes/{node}/qemu/{vmid}/clone', {vmid: '9000', newid: '110'}],
  ['POST', '/nodes/{node}/qemu/{vmid}/status/start', {vmid: '110'}],
  ['POST', '/nodes/{node}/qemu/{vmid}/status/stop', {vmid: '110'}],
  ['DELETE', '/nodes/{node}/qemu/{vmid}', {vmid: '110'}],
]

type Check = unknown[]
/**
 * Whether grants meet a schema permission entry: its `check` expression (perm / and / or, as
 * PVE's RPCEnvironment evaluates it), or, for calls checked in code, the privilege its
 * description names ("You need 'Datastore.Allocate' privilege on the storage").
 */
function meets(info: {check?: Check; description?: string}, params: Record<string, string>, have: (path: string) => string[]): boolean | undefined {
  const subst = (p: string) => p.replace(/\{(\w+)\}/g, (_, k: string) => params[k] ?? `{${k}}`)
  const evaluate = (c: Check): boolean => {
    if (c[0] === 'perm') {
      const [, path, privs, ...rest] = c as [string, string, string[], ...string[]]
      const req = rest.indexOf('require_param')
      if (req >= 0 && params[rest[req + 1]] === undefined) return false
      const got = have(subst(path))
      return rest[0] === 'any' ? privs.some((p) => got.includes(p)) : privs.every((p) => got.includes(p))
    }
    if (c[0] === 'and') return (c.slice(1) as Check[]).every(evaluate)
    if (c[0] === 'or') return (c.slice(1) as Check[]).some(evaluate)
    throw new Error(`unmodelled check ${JSON.stringify(c)}`)
  }
  if (info.check) return evaluate(info.check)
  const m = /You need '([\w.]+)' privilege on the storage/.exec(info.description ?? '')
  return m ? have(subst('/storage/{storage}')).includes(m[1]) : undefined
}

describe('the grants, against the API schema', () => {
  it.each(['8.4', '9.1'] as const)('PVE %s: every check of every provider call is met on the path it names', (release) => {
    const schema = loadSchema(release)
    const major = Number.parseInt(release, 10)
    const grants = terraformGrants(major, ['local'])
    const checked: string[] = []
    for (const [method, path, params] of PROVIDER_CALLS) {
      const m = matchPath(schema, path.replace('{node}', 'pve'))
      expect(m, path).toBeDefined()
      const ok = meets(m!.node.info[method]?.permissions ?? {}, {node: 'pve', ...params}, (p) => privilegesOn(grants, p))
      if (ok === undefined) continue // "user: all", checked per parameter in code (the simulator tests those)
      expect(ok, `${method} ${path}`).toBe(true)
      checked.push(`${method} ${path}`)
    }
    // The schema entries were really found (a renamed path would silently check nothing).
    expect(checked).toEqual(expect.arrayContaining(['GET /storage/{storage}', 'DELETE /nodes/{node}/storage/{storage}/content/{volume}', 'POST /nodes/{node}/storage/{storage}/download-url']))
  })

  it('Datastore.Allocate only on the storages Terraform writes to, never on / or /storage (storage configuration)', () => {
    const grants = terraformGrants(9, ['local'])
    expect(privilegesOn(grants, '/storage/local')).toContain('Datastore.Allocate')
    for (const p of ['/', '/storage', '/storage/local-lvm', '/vms/110']) expect(privilegesOn(grants, p)).not.toContain('Datastore.Allocate')
    // PUT /storage/{storage} (changing a storage's configuration) checks /storage, not /storage/<id>.
    const storage = matchPath(loadSchema('9.1'), '/storage/local')!.node.info
    expect(meets(storage.PUT.permissions, {storage: 'local'}, (p) => privilegesOn(grants, p))).toBe(false)
    expect(meets(storage.GET.permissions, {storage: 'local'}, (p) => privilegesOn(grants, p))).toBe(true)
    // Without the storage grant, reading the snippet storage fails: the snippet-mode defect.
    expect(meets(storage.GET.permissions, {storage: 'local'}, (p) => privilegesOn(terraformGrants(9, []), p))).toBe(false)
  })

  it('snippet mode adds the snippet storage to the image storage', () => {
    const base = {proxmox: {imageStorage: 'local'}, cloudInit: {mode: 'builtin', snippetStorage: 'snip'}}
    expect(terraformStorages(base)).toEqual(['local'])
    expect(terraformStorages({...base, cloudInit: {mode: 'snippet', snippetStorage: 'snip'}})).toEqual(['local', 'snip'])
  })
})
