import {describe, expect, it} from 'vitest'

import {configSchema} from '../../../src/config/schema.js'
import {buildParams, envFileText, rolePorts} from '../../../src/deploy/params.js'
import {generateSecrets} from '../../../src/workspace/secrets.js'

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

describe('buildParams for gitlab-vm: the HTTPS certificate', () => {
  const ips = {gitlab: '10.0.0.10', database: '10.0.0.20', k8s: '10.0.0.30'}
  const secrets = generateSecrets(['autolabs', 'zitadel', 'gitlab'])
  const tls = {certPem: 'CERT\n', keyPem: 'KEY\n', caPem: 'CA\n', notAfter: new Date()}
  it('carries the PEM text in the env file parameters (the key like a password), empty for http', () => {
    const https = configSchema.parse({services: {gitlab: {externalUrl: 'https://gitlab.lab', tls: {certFile: 'a', keyFile: 'b', caFile: 'c'}}}})
    const p = buildParams('gitlab', https, secrets, ips, 'amd64', tls)
    expect(p).toMatchObject({GITLAB_TLS_CERT: 'CERT\n', GITLAB_TLS_KEY: 'KEY\n', GITLAB_TLS_CA: 'CA\n', GITLAB_LETSENCRYPT: 'false'})
    // Quoted so that bash gets the newlines back when it sources the file.
    expect(envFileText(p)).toContain("GITLAB_TLS_KEY='KEY\n'\n")
    const plain = buildParams('gitlab', configSchema.parse({}), secrets, ips)
    expect(plain).toMatchObject({GITLAB_TLS_CERT: '', GITLAB_TLS_KEY: '', GITLAB_TLS_CA: '', GITLAB_LETSENCRYPT: 'false'})
    const le = configSchema.parse({services: {gitlab: {externalUrl: 'https://gitlab.lab', tls: {letsencrypt: true}}}})
    expect(buildParams('gitlab', le, secrets, ips).GITLAB_LETSENCRYPT).toBe('true')
  })
})
