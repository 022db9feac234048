import {UserError} from '../errors.js'
import type {ProxmoxClient} from './client.js'

/**
 * Not in the list, on purpose: Datastore.Audit — every storage read the provider makes
 * (status, content, the import-from source) accepts Datastore.AllocateSpace instead.
 *
 * Least privilege for Terraform (bpg/proxmox): one user, one role, one API token with
 * privilege separation, ACLs on `/` for both the user and the token (a privsep token's rights
 * are the intersection of its own ACLs and its user's). Every privilege is listed with why.
 */
export const TERRAFORM_PRIVILEGES: ReadonlyArray<{priv: string; why: string; only?: 8 | 9}> = [
  {priv: 'Datastore.AllocateSpace', why: 'allocate the VM disks and cloud-init drives, and import the cloud image into a new disk (import-from)'},
  {priv: 'Datastore.AllocateTemplate', why: 'download the cloud image to the image storage (download-url, content=import)'},
  {priv: 'Sys.AccessNetwork', why: 'let the node fetch a URL (download-url); the narrow alternative to Sys.Modify on /'},
  {priv: 'Sys.Audit', why: 'read node status and the status/log of tasks the provider waits for'},
  {priv: 'SDN.Use', why: 'attach network devices to the bridge, and see it in the node network list (PVE 8+ checks /sdn/zones/localnetwork/<bridge>)'},
  {priv: 'VM.Allocate', why: 'create the template VM and the three VMs, convert to template, destroy'},
  {priv: 'VM.Audit', why: 'read VM configuration and status'},
  {priv: 'VM.Clone', why: 'clone the template'},
  {priv: 'VM.Config.CDROM', why: 'the cloud-init drive is a CD-ROM device'},
  {priv: 'VM.Config.Cloudinit', why: 'set user, SSH keys, IP configuration and DNS for cloud-init'},
  {priv: 'VM.Config.CPU', why: 'set cores and CPU type'},
  {priv: 'VM.Config.Disk', why: 'attach and resize the system disk'},
  {priv: 'VM.Config.HWType', why: 'set the SCSI controller, serial console and display'},
  {priv: 'VM.Config.Memory', why: 'set memory'},
  {priv: 'VM.Config.Network', why: 'add the network device'},
  {priv: 'VM.Config.Options', why: 'set name, tags, description, boot order, on-boot and the guest-agent option'},
  {priv: 'VM.PowerMgmt', why: 'start the VMs after creation and stop them before destroy'},
  {priv: 'VM.Monitor', why: 'ask the guest agent for the VM IP addresses (PVE 8)', only: 8},
  {priv: 'VM.GuestAgent.Audit', why: 'ask the guest agent for the VM IP addresses (PVE 9 replaced VM.Monitor)', only: 9},
]

/**
 * Granted only on the storages Terraform writes files to (`/storage/<id>`), never on `/`:
 * `Datastore.Allocate` on `/` or `/storage` would let the token change or delete any storage's
 * configuration (PUT/DELETE /storage/{storage} check `/storage`).
 */
export const STORAGE_PRIVILEGES: ReadonlyArray<{priv: string; why: string}> = [
  {priv: 'Datastore.Allocate', why: 'delete a file Terraform replaces or destroys (the old cloud image, a snippet), and read the snippet storage (GET /storage/{storage}: its path for the upload)'},
]

/**
 * The storages Terraform writes files to: the image storage (the downloaded cloud image, which
 * `image update` and `destroy` delete again), and in snippet mode the snippet storage.
 */
export function terraformStorages(config: {proxmox: {imageStorage: string}; cloudInit: {mode: string; snippetStorage: string}}): string[] {
  return [...new Set([config.proxmox.imageStorage, ...(config.cloudInit.mode === 'snippet' ? [config.cloudInit.snippetStorage] : [])])].sort()
}

/**
 * The storage role: the Terraform privileges plus STORAGE_PRIVILEGES. In PVE an ACL entry on a
 * deeper path REPLACES what the same user or token inherits from above (it does not add to it),
 * so the entry on `/storage/<id>` must repeat everything the provider needs there.
 */
export function storageRolePrivileges(pveMajor: number): string[] {
  return [...terraformPrivileges(pveMajor), ...STORAGE_PRIVILEGES.map((p) => p.priv)].sort()
}

/** Every ACL grant the Terraform token gets: path → privileges (most specific path wins). */
export function terraformGrants(pveMajor: number, storages: string[]): Array<{path: string; privileges: string[]}> {
  return [{path: '/', privileges: terraformPrivileges(pveMajor)}, ...storages.map((s) => ({path: `/storage/${s}`, privileges: storageRolePrivileges(pveMajor)}))]
}

/** The privileges the grants give on an ACL path, by PVE's rule (the most specific granted path applies). */
export function privilegesOn(grants: Array<{path: string; privileges: string[]}>, aclPath: string): string[] {
  const within = (g: string) => g === '/' || aclPath === g || aclPath.startsWith(`${g}/`)
  const best = grants.filter((g) => within(g.path)).sort((a, b) => b.path.length - a.path.length)[0]
  return best?.privileges ?? []
}

/** The exact privilege list for a PVE major version (8 or 9+). */
export function terraformPrivileges(pveMajor: number): string[] {
  const major = pveMajor >= 9 ? 9 : 8
  return TERRAFORM_PRIVILEGES.filter((p) => !p.only || p.only === major)
    .map((p) => p.priv)
    .sort()
}

export interface TerraformAccessOptions {
  user?: string
  role?: string
  tokenName?: string
  pveMajor: number
  /**
   * Called with a new token's secret as soon as Proxmox answers, before anything else is asked:
   * Proxmox shows it only once, so it is saved even when a stop signal ends the run right after.
   */
  onSecret?: (secret: string) => Promise<void>
  /** The token exists but its secret is lost: delete and re-create it (a new secret). */
  rotateToken?: boolean
  /** Storages Terraform writes files to (terraformStorages): they get the storage role. */
  storages?: string[]
}

export interface TerraformAccess {
  userId: string
  role: string
  tokenId: string
  /** Only when the token was created (or rotated) by this call; shown once by Proxmox. */
  secret?: string
  privileges: string[]
  /** What this call changed, in words; empty when everything was already in place. */
  changes: string[]
  warnings: string[]
}

/** Idempotent: a second run changes nothing and returns no secret. */
export async function ensureTerraformAccess(client: ProxmoxClient, opts: TerraformAccessOptions): Promise<TerraformAccess> {
  const userId = opts.user ?? 'autolabs@pve'
  const role = opts.role ?? 'AutolabsTerraform'
  const tokenName = opts.tokenName ?? 'terraform'
  const tokenId = `${userId}!${tokenName}`
  const privileges = terraformPrivileges(opts.pveMajor)
  const changes: string[] = []
  const warnings: string[] = []

  if (!(await client.users()).some((u) => u.userid === userId)) {
    await client.createUser(userId, {comment: 'autolabs: Terraform (bpg/proxmox), least privilege'})
    changes.push(`created user ${userId}`)
  }

  await ensureRole(client, role, privileges, changes)

  let secret: string | undefined
  const token = (await client.tokens(userId)).find((t) => t.tokenid === tokenName)
  if (token && opts.rotateToken) {
    await client.deleteToken(userId, tokenName)
    changes.push(`deleted token ${tokenId} (rotation)`)
  }
  if (!token || opts.rotateToken) {
    secret = (await client.createToken(userId, tokenName, {privsep: true, comment: 'autolabs: Terraform'})).secret
    changes.push(`created token ${tokenId} (privilege separation on)`)
    await opts.onSecret?.(secret)
  } else if (!token.privsep) {
    warnings.push(`Token ${tokenId} has privilege separation off: it carries all rights of ${userId}. Rotate it (re-create) to turn separation on.`)
  }

  const storages = opts.storages ?? []
  const storageRole = `${role}Storage`
  if (storages.length > 0) await ensureRole(client, storageRole, storageRolePrivileges(opts.pveMajor), changes)

  const acl = await client.acl()
  // Read after a rotation: deleting a token deletes its ACL entries too.
  for (const {path, roleid} of [{path: '/', roleid: role}, ...storages.map((s) => ({path: `/storage/${s}`, roleid: storageRole}))]) {
    const has = (type: string, ugid: string) => acl.some((e) => e.path === path && e.type === type && e.ugid === ugid && e.roleid === roleid && e.propagate)
    if (!has('user', userId)) {
      await client.setAcl({path, roles: [roleid], users: [userId], propagate: true})
      changes.push(`granted ${roleid} on ${path} to ${userId}`)
    }
    if (!has('token', tokenId)) {
      await client.setAcl({path, roles: [roleid], tokens: [tokenId], propagate: true})
      changes.push(`granted ${roleid} on ${path} to ${tokenId}`)
    }
  }

  return {userId, role, tokenId, secret, privileges, changes, warnings}
}

/** Create the role, or set its privileges back to exactly `privileges`. */
async function ensureRole(client: ProxmoxClient, role: string, privileges: string[], changes: string[]): Promise<void> {
  const existingRole = (await client.roles()).find((r) => r.roleid === role)
  if (!existingRole) {
    await client.createRole(role, privileges)
    changes.push(`created role ${role} (${privileges.length} privileges)`)
  } else if (existingRole.special) {
    throw new UserError(`Role ${role} is a built-in Proxmox role and cannot hold autolabs' privilege list.`, {suggestion: 'Set proxmox.terraformRole in autolabs.yaml to another name.'})
  } else if (!sameSet(existingRole.privs, privileges)) {
    await client.setRolePrivileges(role, privileges)
    const added = privileges.filter((p) => !existingRole.privs.includes(p))
    const removed = existingRole.privs.filter((p) => !privileges.includes(p))
    changes.push(`updated role ${role}${added.length ? ` +${added.join(' +')}` : ''}${removed.length ? ` -${removed.join(' -')}` : ''}`)
  }
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x))
}
