import {existsSync} from 'node:fs'
import {readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {assertVmsCreated} from '../../../src/steps/vms-created.js'
import {Workspace} from '../../../src/workspace/workspace.js'
import {removeDir, runCli, tempDir} from '../../support/cli.js'

/** After a dry run the VMs do not exist: day-two commands say so in one line, naming init. */
let dir: string
beforeAll(async () => {
  dir = await tempDir()
  const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir])
  expect(r.exitCode, r.stderr).toBe(0)
})
afterAll(async () => removeDir(dir))

describe('day-two commands on a workspace whose VMs were never created', () => {
  it.each([[['status']], [['deploy']], [['backup', 'now']], [['backup', 'schedule']]])('%j says so in one line and names `autolabs init`', async (args) => {
    const r = await runCli([...args, '--dir', dir])
    expect(r.exitCode).toBe(1)
    expect(r.stderr.trim().split('\n')).toEqual([`Error: The workspace ${dir} has no VMs yet (planned only, or destroyed): run \`autolabs init\` there to create them.`])
    expect(r.stdout).toBe('')
  })

  it('leaves no failed backup behind, and answers --json with the error shape', async () => {
    const r = await runCli(['backup', 'now', '--json', '--dir', dir])
    expect(JSON.parse(r.stdout).error.message).toContain('autolabs init')
    expect(existsSync(path.join(dir, 'backups'))).toBe(false)
    const list = await runCli(['backup', 'list', '--json', '--dir', dir])
    expect(list.stdout).not.toContain('failed')
  })

  it('goes on as before once provisioning has recorded the VMs', async () => {
    const state = path.join(dir, '.autolabs/state.json')
    const before = await readFile(state, 'utf8')
    await writeFile(state, JSON.stringify({version: 1, provisionedAt: '2026-11-30T00:00:00Z', vms: {gitlab: {name: 'gitlab-vm', vmid: 110, ip: '192.0.2.10'}}}))
    try {
      await expect(assertVmsCreated(new Workspace(dir))).resolves.toBeUndefined()
    } finally {
      await writeFile(state, before)
    }
  })
})
