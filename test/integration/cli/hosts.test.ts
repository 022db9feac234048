import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {removeDir, runCli, tempDir} from '../../support/cli.js'

const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => removeDir(d))))
const KEY = 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl'

describe('autolabs hosts forget', () => {
  it("removes only that VM's pinned key", async () => {
    const dir = await tempDir()
    dirs.push(dir)
    await runCli(['init', '--dry-run', '--yes', '--dir', dir])
    const kh = path.join(dir, '.autolabs/known_hosts')
    await writeFile(kh, `192.168.100.20 ssh-ed25519 ${KEY} autolabs:database-vm\n192.168.100.30 ssh-ed25519 ${KEY} autolabs:k8s-vm\n`)
    const r = await runCli(['hosts', 'forget', 'database', '--json', '--dir', dir])
    expect(r.exitCode, r.stderr).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual({vm: 'database-vm', host: '192.168.100.20', removed: 1})
    expect(await readFile(kh, 'utf8')).toBe(`192.168.100.30 ssh-ed25519 ${KEY} autolabs:k8s-vm\n`)
  })

  it('rejects an unknown VM with the names it knows (exit 2)', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    await runCli(['init', '--dry-run', '--yes', '--dir', dir])
    const r = await runCli(['hosts', 'forget', 'mail-vm', '--dir', dir])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('gitlab-vm, database-vm, k8s-vm')
  })

  it('says where to start when there is no workspace (exit 2)', async () => {
    const dir = await tempDir()
    dirs.push(dir)
    const r = await runCli(['hosts', 'forget', 'k8s', '--dir', dir])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('autolabs init')
  })
})
