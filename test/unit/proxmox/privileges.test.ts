import {describe, expect, it} from 'vitest'

import {terraformPrivileges} from '../../../src/proxmox/access.js'
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
