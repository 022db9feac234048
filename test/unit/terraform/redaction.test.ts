import {describe, expect, it} from 'vitest'

import {BugError} from '../../../src/errors.js'
import {assertNoSecretsInArgs, describeCommand} from '../../../src/terraform/terraform.js'
import {registerSecret} from '../../../src/util/redact.js'

const SECRET = 'b1946ac9-2a6e-4d2f-8c1a-0e7f5d3c9a21'
registerSecret(SECRET)

describe('describeCommand and assertNoSecretsInArgs (what reaches logs and argv)', () => {
  it('masks secret-looking environment values and registered secrets', () => {
    const text = describeCommand('/usr/bin/terraform', ['apply', '-json', 'autolabs.tfplan'], {
      TF_VAR_proxmox_api_token: `root@pam!x=${SECRET}`,
      PROXMOX_VE_PASSWORD: 'hunter2hunter2',
      SSL_CERT_FILE: '/ws/.autolabs/terraform-ca.pem',
      SOMETHING: `contains ${SECRET}`,
    })
    expect(text).toBe('terraform apply -json autolabs.tfplan (env: TF_VAR_proxmox_api_token=******** PROXMOX_VE_PASSWORD=******** SSL_CERT_FILE=/ws/.autolabs/terraform-ca.pem SOMETHING=contains ********)')
    expect(text).not.toContain(SECRET)
  })

  it('refuses, as a bug, to put a secret on the command line', () => {
    expect(() => assertNoSecretsInArgs(['plan', `-var=proxmox_api_token=root@pam!x=${SECRET}`])).toThrow(BugError)
    expect(() => assertNoSecretsInArgs(['plan', '-out=autolabs.tfplan'])).not.toThrow()
  })
})

