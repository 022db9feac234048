import {mkdtemp, readFile, rm} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, it} from 'vitest'

import {snapshotName} from '../../../src/backup/id.js'
import {listBackups} from '../../../src/backup/list.js'
import {restoreSnapshot} from '../../../src/backup/restore.js'
import {pruneSnapshots, runBackup} from '../../../src/backup/run.js'
import {BACKUP_JOB_ID, desiredBackupJob, scheduleBackupJob} from '../../../src/backup/schedule.js'
import {configSchema} from '../../../src/config/schema.js'
import type {ProxmoxClient} from '../../../src/proxmox/client.js'
import {collectStatus} from '../../../src/status/collect.js'
import {clientFor} from '../../support/pve-sim/connect.js'
import {type PveSim, startPveSim} from '../../support/pve-sim/index.mjs'

const VMS = [
  {role: 'gitlab' as const, name: 'gitlab-vm', vmid: 110, ip: '127.0.0.1'},
  {role: 'database' as const, name: 'database-vm', vmid: 120, ip: '127.0.0.1'},
  {role: 'k8s' as const, name: 'k8s-vm', vmid: 130, ip: '127.0.0.1'},
]

for (const version of ['9.1', '8.4'] as const) {
  describe(`backup and status against the Proxmox VE ${version} simulator (every request schema-valid)`, () => {
    let sim: PveSim
    let client: ProxmoxClient
    let dir: string

    beforeAll(async () => {
      sim = await startPveSim({version, taskDurationMs: 5})
      client = await clientFor(sim)
      for (const vm of VMS) sim.addVm(vm.vmid, {name: vm.name, status: 'running', config: {memory: '4096', cores: '2'}})
      dir = await mkdtemp(path.join(os.tmpdir(), 'autolabs-backup-sim-'))
    })
    afterEach(() => {
      expect(sim.invalidRequests).toEqual([])
    })
    afterAll(async () => {
      await client?.close()
      await sim?.stop()
      await rm(dir, {recursive: true, force: true})
    })

    it('backup now --only snapshots takes autolabs-<id> with a description on every VM and records it in the manifest', async () => {
      const now = new Date('2026-11-25T02:00:00Z')
      const r = await runBackup({backupsDir: dir, node: 'pve', vms: VMS, parts: ['snapshots']}, {connect: () => Promise.reject(new Error('no SSH needed')), proxmox: client, now: () => now})
      expect(r.manifest).toMatchObject({id: '20261125-020000', status: 'complete', requested: ['snapshots']})
      expect(r.manifest.parts[0].details).toEqual({taken: VMS.map((v) => ({vm: v.name, vmid: v.vmid, snapshot: 'autolabs-20261125-020000'}))})
      for (const vm of VMS) {
        const snap = sim.vm(vm.vmid).snapshots.find((s) => s.name === 'autolabs-20261125-020000')
        expect(snap?.description).toBe(`autolabs backup 20261125-020000 of ${vm.name} (autolabs backup now)`)
      }
      const onDisk = JSON.parse(await readFile(path.join(r.dir, 'manifest.json'), 'utf8'))
      expect(onDisk.parts[0].status).toBe('ok')
    })

    it('marks the snapshot part failed (and the backup failed) when a VM is locked, still snapshotting the others', async () => {
      sim.lockVm(130, 'backup')
      try {
        const r = await runBackup({backupsDir: dir, node: 'pve', vms: VMS, parts: ['snapshots']}, {connect: () => Promise.reject(new Error('unused')), proxmox: client, now: () => new Date('2026-11-25T03:00:00Z')})
        expect(r.manifest.status).toBe('failed')
        expect(r.manifest.parts[0].error).toMatch(/k8s-vm/)
        expect(r.manifest.parts[0].details).toEqual({taken: [{vm: 'gitlab-vm', vmid: 110, snapshot: 'autolabs-20261125-030000'}, {vm: 'database-vm', vmid: 120, snapshot: 'autolabs-20261125-030000'}]})
      } finally {
        sim.unlockVm(130)
      }
    })

    it('prunes only autolabs-made snapshots, by keep-daily / keep-weekly, and never anyone else\'s', async () => {
      const vm = VMS[1]
      // Given 20 days of nightly autolabs snapshots and two snapshots someone else made
      for (let d = 1; d <= 20; d++) {
        const id = `202611${String(d).padStart(2, '0')}-020000`
        await client.createSnapshot('pve', vm.vmid, snapshotName(id), {description: 'nightly'})
      }
      await client.createSnapshot('pve', vm.vmid, 'before-upgrade', {description: 'manual'})
      await client.createSnapshot('pve', vm.vmid, 'autolabs-manual', {description: 'looks like ours, is not'})
      // When retention 3 daily + 2 weekly runs
      const r = await pruneSnapshots(client, 'pve', [vm], {keepDaily: 3, keepWeekly: 2})
      expect(r.errors).toEqual([])
      const left = sim.vm(vm.vmid).snapshots.map((s) => s.name)
      expect(left).toContain('before-upgrade')
      expect(left).toContain('autolabs-manual')
      const ours = left.filter((n) => /^autolabs-\d{8}-\d{6}$/.test(n)).sort()
      // 3 daily: 11-25 (its 03:00 one; the 02:00 one is an older backup of that day), 11-20, 11-19;
      // 2 weekly beyond the weeks those cover (W48, W47): W46 → 11-15, W45 → 11-08.
      expect(ours).toEqual(['autolabs-20261108-020000', 'autolabs-20261115-020000', 'autolabs-20261119-020000', 'autolabs-20261120-020000', 'autolabs-20261125-030000'])
      expect(r.removed.length).toBeGreaterThan(0)
      expect(r.removed.every((x) => x.vm === 'database-vm' && /^autolabs-\d{8}-\d{6}$/.test(x.snapshot))).toBe(true)
    })

    it('rolls a VM back to an autolabs snapshot and starts it again; an unknown id lists the ones there are', async () => {
      const vm = VMS[0]
      const r = await restoreSnapshot(client, 'pve', vm, '20261125-020000')
      expect(r).toEqual({vm: 'gitlab-vm', snapshot: 'autolabs-20261125-020000'})
      expect(sim.vm(vm.vmid).parent).toBe('autolabs-20261125-020000')
      expect(sim.vm(vm.vmid).status).toBe('running')
      await expect(restoreSnapshot(client, 'pve', vm, '20200101-000000')).rejects.toThrow(/gitlab-vm has no snapshot autolabs-20200101-000000/)
    })

    it('backup list shows local backups and snapshots, marking which are autolabs\'', async () => {
      const l = await listBackups(dir, {api: client, node: 'pve', vms: VMS})
      expect(l.local.map((b) => [b.id, b.status])).toEqual([['20261125-030000', 'failed'], ['20261125-020000', 'complete']])
      expect(l.snapshots.find((s) => s.name === 'before-upgrade')).toMatchObject({vm: 'database-vm', autolabs: false})
      expect(l.snapshots.find((s) => s.name === 'autolabs-20261125-020000' && s.vm === 'k8s-vm')).toMatchObject({autolabs: true, id: '20261125-020000'})
    })

    it('backup schedule creates the design document\'s job once, then leaves it unchanged, then updates the storage', async () => {
      sim.setStorage('backups', {type: 'dir', path: '/mnt/backups', content: ['backup'], total: 2 ** 40, used: 0, enabled: true, shared: false})
      const config = configSchema.parse({backup: {storage: 'local'}})
      const spec = desiredBackupJob(config, VMS.map((v) => v.vmid))
      const first = await scheduleBackupJob(client, spec)
      expect(first.action).toBe('created')
      expect(sim.state.backupJobs.get(BACKUP_JOB_ID)).toMatchObject({
        id: 'autolabs-daily',
        schedule: '02:00',
        mode: 'snapshot',
        compress: 'zstd',
        storage: 'local',
        vmid: '110,120,130',
        'prune-backups': 'keep-daily=7,keep-weekly=4',
      })
      expect((await scheduleBackupJob(client, spec)).action).toBe('unchanged')
      const moved = desiredBackupJob(configSchema.parse({backup: {storage: 'backups'}}), VMS.map((v) => v.vmid))
      const third = await scheduleBackupJob(client, moved)
      expect(third.action).toBe('updated')
      expect(third.job).toMatchObject({storage: 'backups', compress: 'zstd'})
      expect([...sim.state.backupJobs.keys()]).toEqual(['autolabs-daily'])
    })

    it('status reads VM state, uptime, CPU and memory from the API, and a stopped VM is a failure', async () => {
      await client.stopVm('pve', 130)
      const r = await collectStatus(
        {node: 'pve', vms: VMS, postgresUsers: {}, objectStoragePort: 1, registryPort: 1, gitlabExternalUrl: 'http://10.0.0.10', namespaces: [], connectTimeoutMs: 200, checkTimeoutMs: 500},
        {
          vmStatus: (node, vmid) => client.vmStatus(node, vmid),
          connect: () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), {code: 'ECONNREFUSED'})),
          httpStatus: () => Promise.reject(new Error('refused')),
        },
      )
      expect(r.vms.find((v) => v.role === 'database')).toMatchObject({state: 'running', cpuPct: 5, memPct: 40})
      expect(r.checks.find((c) => c.id === 'database/vm')).toMatchObject({status: 'ok', detail: 'running; CPU 5 %, memory 40 %'})
      expect(r.checks.find((c) => c.id === 'k8s/vm')).toMatchObject({status: 'fail', detail: 'VM is stopped'})
      expect(r.checks.find((c) => c.id === 'database/ssh')).toMatchObject({status: 'unreachable'})
      expect(r.exitCode).toBe(3)
      await client.startVm('pve', 130)
    })
  })
}
