/**
 * Changes to a workspace's files that a newer autolabs makes once, so that what is deployed
 * keeps working.
 *
 * Database users: autolabs used to name each database's owner like the database (`gitlab`);
 * since the design document's names became the default (`gitlab_user`, see postgresUser), a
 * workspace whose databases were created the old way gets its existing names pinned in
 * autolabs.yaml (services.postgres.users). Otherwise the next deploy would create new roles and
 * hand them the databases, while the tables stay owned by the old ones — GitLab's included.
 * Which workspaces: state.json has database/postgres_databases finished, but no
 * `databaseUsers` (what a deploy records since, naming the users it made).
 */
import {readFile} from 'node:fs/promises'

import {parseDocument} from 'yaml'

import {writeFileAtomic} from '../workspace/fs.js'
import {loadState, updateState} from '../workspace/state.js'
import type {Workspace} from '../workspace/workspace.js'

export const DATABASES_STEP = 'database/postgres_databases'
const LEGACY_DEFAULT_DATABASES = ['autolabs', 'zitadel', 'gitlab']

/** Pins the old user names of a workspace deployed before `<database>_user`; returns what it did (or nothing). */
export async function migrateDatabaseUsers(ws: Workspace): Promise<string | undefined> {
  const state = await loadState(ws)
  const deployed = Object.values(state.steps ?? {}).some((steps) => DATABASES_STEP in steps)
  if (!deployed || state.databaseUsers !== undefined) return undefined
  let text: string
  try {
    text = await readFile(ws.configFile, 'utf8')
  } catch {
    return undefined
  }
  const doc = parseDocument(text)
  if (doc.errors.length > 0) return undefined // reported by the config loader, untouched here
  const postgres = (doc.toJS() as {services?: {postgres?: {databases?: unknown; users?: unknown}}} | null)?.services?.postgres
  if (postgres?.users !== undefined) {
    // Already explicit: only remember that the question is settled.
    await updateState(ws, (s) => void (s.databaseUsers = postgres.users as Record<string, string>))
    return undefined
  }
  const databases = Array.isArray(postgres?.databases) ? postgres.databases.map(String) : LEGACY_DEFAULT_DATABASES
  const users = Object.fromEntries(databases.map((db) => [db, db]))
  doc.setIn(['services', 'postgres', 'users'], users)
  await writeFileAtomic(ws.configFile, doc.toString({lineWidth: 0}))
  await updateState(ws, (s) => void (s.databaseUsers = users))
  return `set to the names this workspace's databases were created with (${databases.map((db) => `${db}: ${db}`).join(', ')}); new workspaces name them <database>_user`
}
