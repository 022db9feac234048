import net from 'node:net'
import {mkdir, writeFile} from 'node:fs/promises'

import {afterAll, describe, expect, it} from 'vitest'
import {stringify} from 'yaml'

import {generateSecrets, saveSecrets} from '../../../src/workspace/secrets.js'
import {Workspace} from '../../../src/workspace/workspace.js'
import {removeDir, runCli, tempDir} from '../../support/cli.js'

const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => removeDir(d))))

describe('autolabs backup list when Proxmox cannot be reached', () => {
  it('does not pass an empty snapshot list off as the truth: exit 3, saying what could not be read', async () => {
    // A loopback port nobody listens on.
    const srv = net.createServer()
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
    const port = (srv.address() as net.AddressInfo).port
    await new Promise((resolve) => srv.close(resolve))
    const dir = await tempDir()
    dirs.push(dir)
    const ws = new Workspace(dir)
    await writeFile(
      ws.configFile,
      stringify({
        proxmox: {url: `https://127.0.0.1:${port}`, fingerprint: 'AB:'.repeat(31) + 'AB', tokenId: 'root@pam!autolabs'},
        network: {subnet: '127.0.0.0/24', gateway: '127.0.0.1', vms: {gitlab: {ip: '127.0.0.2'}, database: {ip: '127.0.0.3'}, k8s: {ip: '127.0.0.4'}}},
      }),
    )
    await mkdir(ws.stateDir, {recursive: true})
    await saveSecrets(ws, generateSecrets(['autolabs', 'zitadel', 'gitlab']))
    await writeFile(ws.stateFile, JSON.stringify({version: 1, vms: {gitlab: {name: 'gitlab-vm', vmid: 110, ip: '127.0.0.2'}, database: {name: 'database-vm', vmid: 120, ip: '127.0.0.3'}, k8s: {name: 'k8s-vm', vmid: 130, ip: '127.0.0.4'}}}))
    const r = await runCli(['backup', 'list', '--json', '--dir', dir], {env: {AUTOLABS_PROXMOX_TOKEN_SECRET: '00000000-0000-4000-8000-000000000000'}})
    expect(r.exitCode, r.stderr).toBe(3)
    expect(r.stderr).toMatch(/Cannot reach Proxmox|could not read|incomplete/)
  })
})
