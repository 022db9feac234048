import {execFileSync} from 'node:child_process'
import {existsSync} from 'node:fs'
import {describe, expect, it} from 'vitest'

import * as pitrRemote from '../../../src/backup/pitr-remote.js'
import * as remote from '../../../src/backup/remote.js'
import {missing} from '../../support/tools.js'

// The bash that backups run on the VMs lives in TypeScript strings; hold it to the same bar
// as the stage scripts.
const scripts = Object.entries({...remote, ...pitrRemote}).filter(([, v]) => typeof v === 'string' && v.startsWith('set -euo pipefail')) as Array<[string, string]>

describe.skipIf(missing('shellcheck', existsSync('/usr/bin/shellcheck')))('remote backup scripts', () => {
  it('are all strict bash', () => {
    expect(scripts.map(([k]) => k).sort()).toEqual([...new Set(['CAT_AND_REMOVE', 'ETCD_RESTORE', 'ETCD_SNAPSHOT', 'GITLAB_BACKUP', 'PG_DUMPALL', 'PG_DUMPALL_ZSTD', 'PG_BACKUP_HISTORY', 'PG_BASEBACKUP', 'PG_BASEBACKUP_ZSTD', 'PG_BASE_INSTALL', 'PG_INFO', 'PG_PITR_RESTORE', 'PG_PITR_VERIFY', 'PG_RESTORE', 'PG_SWITCH_WAL', 'PG_VERIFY_SCRATCH', 'WAL_CAT', 'WAL_LIST', 'WAL_PUT', 'WORKSPACE_COPY'])].sort())
  })
  for (const [name, body] of scripts) {
    it(`${name} is shellcheck-clean`, () => {
      const out = (() => {
        try {
          return execFileSync('shellcheck', ['-s', 'bash', '-S', 'warning', '-'], {input: body, encoding: 'utf8'})
        } catch (error) {
          return String((error as {stdout?: string}).stdout ?? error)
        }
      })()
      expect(out).toBe('')
    })
  }
})
