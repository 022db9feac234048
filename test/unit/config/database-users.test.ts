import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

import {afterEach, beforeEach, describe, expect, it} from 'vitest'
import {parse} from 'yaml'

import {loadConfig, validateConfig} from '../../../src/config/load.js'
import {migrateDatabaseUsers} from '../../../src/config/migrate.js'
import {configSchema, postgresUser} from '../../../src/config/schema.js'
import {buildParams} from '../../../src/deploy/params.js'
import {ConfigError} from '../../../src/errors.js'
import {generateSecrets} from '../../../src/workspace/secrets.js'
import {loadState} from '../../../src/workspace/state.js'
import {Workspace} from '../../../src/workspace/workspace.js'

const ips = {gitlab: '192.168.100.10', database: '192.168.100.20', k8s: '192.168.100.30'}
const secrets = generateSecrets(['autolabs', 'zitadel', 'gitlab'])
const issuesOf = (raw: unknown) => {
  try {
    validateConfig(raw)
    return []
  } catch (error) {
    return (error as ConfigError).issues.map((i) => `${i.path}: ${i.message}`)
  }
}

describe('database users: <database>_user by default (design document, "Конфигурация PostgreSQL"), configurable', () => {
  it('names each owner <database>_user and hands the names to the database and gitlab stages', () => {
    const config = configSchema.parse({})
    expect(config.services.postgres.databases.map((db) => postgresUser(config, db))).toEqual(['autolabs_user', 'zitadel_user', 'gitlab_user'])
    const db = buildParams('database', config, secrets, ips)
    expect([db.PG_USER__autolabs, db.PG_USER__zitadel, db.PG_USER__gitlab]).toEqual(['autolabs_user', 'zitadel_user', 'gitlab_user'])
    expect(buildParams('gitlab', config, secrets, ips).GITLAB_DB_USER).toBe('gitlab_user')
  })

  it('takes a name per database from services.postgres.users', () => {
    const config = configSchema.parse({services: {postgres: {users: {gitlab: 'gitlab'}}}})
    expect(buildParams('database', config, secrets, ips).PG_USER__gitlab).toBe('gitlab')
    expect(buildParams('database', config, secrets, ips).PG_USER__autolabs).toBe('autolabs_user')
    expect(buildParams('gitlab', config, secrets, ips).GITLAB_DB_USER).toBe('gitlab')
  })

  it('refuses a user for no database, the superuser, one user for two databases, and a name PostgreSQL would fold', () => {
    expect(issuesOf({services: {postgres: {users: {wiki: 'wiki_user'}}}})).toEqual([
      'services.postgres.users.wiki: names no database in services.postgres.databases (autolabs, zitadel, gitlab)',
    ])
    expect(issuesOf({services: {postgres: {users: {gitlab: 'postgres'}}}})).toEqual(['services.postgres.users.gitlab: is the superuser postgres'])
    expect(issuesOf({services: {postgres: {users: {gitlab: 'autolabs_user'}}}})).toEqual(['services.postgres.users.gitlab: autolabs_user already owns the database autolabs'])
    expect(issuesOf({services: {postgres: {users: {gitlab: 'GitLab'}}}})[0]).toMatch(/^services\.postgres\.users\.gitlab: must be a PostgreSQL role name/)
  })
})

describe('migration: a workspace deployed before <database>_user keeps its users', () => {
  let dir: string
  let ws: Workspace
  const yaml = '# my lab\nname: lab\nservices:\n  postgres:\n    # the platform only\n    databases: [autolabs, gitlab]\n'
  const deployedState = (extra: Record<string, unknown> = {}) =>
    JSON.stringify({version: 1, steps: {'database-vm': {'database/postgres_databases': {inputHash: 'sha256:x', finishedAt: '2026-01-01T00:00:00Z'}}}, ...extra})

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'al-migrate-'))
    ws = new Workspace(dir)
    await writeFile(ws.configFile, yaml)
    await mkdir(ws.stateDir, {recursive: true})
  })
  afterEach(async () => rm(dir, {recursive: true, force: true}))

  it('pins the old names in autolabs.yaml (comments kept), records them, says so once, and the stages get them', async () => {
    await writeFile(ws.stateFile, deployedState())
    const loaded = await loadConfig(ws)
    expect(loaded.warnings[0]).toMatchObject({path: 'services.postgres.users', severity: 'warning'})
    expect(loaded.warnings[0].message).toMatch(/autolabs: autolabs, gitlab: gitlab/)
    const text = await readFile(ws.configFile, 'utf8')
    expect(text).toContain('# my lab')
    expect(text).toContain('# the platform only')
    expect(parse(text).services.postgres.users).toEqual({autolabs: 'autolabs', gitlab: 'gitlab'})
    expect((await loadState(ws)).databaseUsers).toEqual({autolabs: 'autolabs', gitlab: 'gitlab'})
    expect(buildParams('database', loaded.config, generateSecrets(['autolabs', 'gitlab']), ips).PG_USER__gitlab).toBe('gitlab')
    const again = await loadConfig(ws)
    expect(again.warnings).toEqual([])
    expect(await readFile(ws.configFile, 'utf8')).toBe(text)
  })

  it('leaves alone a workspace never deployed, and one whose deploy recorded its users', async () => {
    expect(await migrateDatabaseUsers(ws)).toBeUndefined()
    await writeFile(ws.stateFile, deployedState({databaseUsers: {autolabs: 'autolabs_user', gitlab: 'gitlab_user'}}))
    expect(await migrateDatabaseUsers(ws)).toBeUndefined()
    expect(await readFile(ws.configFile, 'utf8')).toBe(yaml)
    expect((await loadConfig(ws)).config.services.postgres.users).toEqual({})
  })

  it('keeps users already written by hand', async () => {
    await writeFile(ws.configFile, `${yaml}    users: {gitlab: gl}\n`)
    await writeFile(ws.stateFile, deployedState())
    expect(await migrateDatabaseUsers(ws)).toBeUndefined()
    expect(parse(await readFile(ws.configFile, 'utf8')).services.postgres.users).toEqual({gitlab: 'gl'})
    expect((await loadState(ws)).databaseUsers).toEqual({gitlab: 'gl'})
  })
})
