import {describe, expect, it} from 'vitest'

import {configSchema} from '../../../src/config/schema.js'
import {rolePorts} from '../../../src/deploy/params.js'

// gitlab.sh publishes the external URL's port when it is not 80/443 (Omnibus nginx listens on
// it); the firewall must open the same port.
describe('rolePorts for gitlab-vm', () => {
  const ports = (externalUrl?: string) => rolePorts('gitlab', configSchema.parse(externalUrl ? {services: {gitlab: {externalUrl}}} : {}))
  it('opens web, SSH and registry ports by default', () => {
    expect(ports().public).toEqual(['80/tcp', '443/tcp', '2222/tcp', '5050/tcp'])
  })
  it("adds a non-default port of the external URL, to the subnet and the admin networks", () => {
    const p = ports('http://gitlab.example.edu:8929')
    expect(p.public).toEqual(['80/tcp', '443/tcp', '8929/tcp', '2222/tcp', '5050/tcp'])
    expect(p.subnet).toEqual(p.public)
  })
  it('adds nothing for an explicit default port', () => {
    expect(ports('https://gitlab.example.edu:443/').public).toEqual(['80/tcp', '443/tcp', '2222/tcp', '5050/tcp'])
  })
})
