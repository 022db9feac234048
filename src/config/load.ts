import os from 'node:os'
import path from 'node:path'
import {isMap, isScalar, isSeq, parseDocument, YAMLMap, Document} from 'yaml'

import {ConfigError, type FieldIssue, UserError} from '../errors.js'
import {READ_LIMITS, readTextFile} from '../workspace/fs.js'
import type {Workspace} from '../workspace/workspace.js'
import {IMAGES} from './catalog.js'
import {type Config, configSchema, type ConfigInput} from './schema.js'
import {crossFieldIssues, zodIssuesToFieldIssues} from './validate.js'
import {FIELD_DOCS} from './docs.js'
import {migrateDatabaseUsers} from './migrate.js'

export interface ValidatedConfig {
  config: Config
  warnings: FieldIssue[]
}

/**
 * Validate a raw object (from YAML, flags, or both). Throws ConfigError naming every bad field.
 * `given`/`flags`: the paths the user gave and the flags that set them (see crossFieldIssues
 * and ConfigError), so the error blames what the user gave and names the flag to fix it.
 */
export function validateConfig(raw: unknown, source = 'autolabs.yaml', opts: {given?: ReadonlySet<string>; flags?: Record<string, string>} = {}): ValidatedConfig {
  const parsed = configSchema.safeParse(raw ?? {})
  if (!parsed.success) throw new ConfigError(source, zodIssuesToFieldIssues(configSchema, parsed.error.issues), opts)
  const issues = crossFieldIssues(parsed.data, opts.given)
  const errors = issues.filter((i) => i.severity !== 'warning')
  if (errors.length > 0) throw new ConfigError(source, errors, opts)
  return {config: parsed.data, warnings: issues.filter((i) => i.severity === 'warning')}
}

/** Parse YAML text; syntax errors name the line. */
export function parseConfigText(text: string, source: string): unknown {
  const doc = parseDocument(text, {prettyErrors: true, uniqueKeys: true})
  if (doc.errors.length > 0) {
    const e = doc.errors[0]
    const where = e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : 'unknown position'
    throw new ConfigError(source, [{path: '(yaml)', message: `YAML syntax error at ${where}: ${e.message.split('\n')[0]}`, fix: 'fix the YAML syntax'}])
  }
  try {
    // maxAliasCount bounds what aliases can expand to (a "billion laughs" file).
    return doc.toJS({maxAliasCount: 100}) ?? {}
  } catch (error) {
    throw new ConfigError(source, [{path: '(yaml)', message: `cannot be read: ${(error as Error).message}`, fix: 'remove the YAML aliases (*name) that repeat large parts of the file'}])
  }
}

/** True when a YAML text holds no settings at all (empty, only comments, or an empty document). */
export function isEmptyConfig(raw: unknown): boolean {
  return raw === null || raw === undefined || (typeof raw === 'object' && !Array.isArray(raw) && Object.keys(raw).length === 0)
}

export async function readRawConfig(ws: Workspace): Promise<{raw: unknown; text: string} | undefined> {
  const text = await readTextFile(ws.configFile, {what: 'The configuration', maxBytes: READ_LIMITS.config, optional: true})
  if (text === undefined) return undefined
  return {raw: parseConfigText(text, ws.configFile), text}
}

/** Load and validate the workspace's autolabs.yaml (migrated first where an older autolabs left it: migrate.ts). */
export async function loadConfig(ws: Workspace): Promise<ValidatedConfig> {
  const migrated = await migrateDatabaseUsers(ws)
  const found = await readRawConfig(ws)
  if (!found)
    throw new UserError(`No autolabs.yaml in ${ws.root}`, {
      suggestion: 'Run `autolabs init` to create a workspace, or pass --dir / set AUTOLABS_DIR to an existing one.',
      exitCode: 2,
    })
  // An empty file would silently mean "every default": a truncated or wrongly saved file must not pass.
  if (isEmptyConfig(found.raw))
    throw new ConfigError(ws.configFile, [{path: '(top level)', message: 'is empty: it holds no settings', fix: 'restore it from Git, or run `autolabs init` to write every setting'}])
  const validated = validateConfig(found.raw, ws.configFile)
  if (migrated) validated.warnings.unshift({path: 'services.postgres.users', message: migrated, severity: 'warning'})
  return validated
}

export function expandHome(p: string): string {
  return p === '~' ? os.homedir() : p.startsWith('~/') ? path.join(os.homedir(), p.slice(2)) : p
}

/** Values that default from other values (the image's user, the private key path, GitLab URL). */
export function derived(config: Config) {
  const pub = expandHome(config.ssh.publicKeyFile)
  return {
    sshUser: config.ssh.user ?? IMAGES[config.image.os].defaultUser,
    sshPublicKeyFile: pub,
    sshPrivateKeyFile: expandHome(config.ssh.privateKeyFile ?? pub.replace(/\.pub$/, '')),
    gitlabExternalUrl: config.services.gitlab.externalUrl ?? `http://${config.network.vms.gitlab.ip}`,
    imageUrl: config.image.url ?? IMAGES[config.image.os].url,
    imageFileName: imageFileName(config.image.os, config.image.url),
    image: IMAGES[config.image.os],
  }
}

/** The image's name in the storage: the build's serial in it, so two builds never share a file. */
export function imageFileName(os: Config['image']['os'], url: string | null): string {
  const img = IMAGES[os]
  const dir = url ? path.posix.basename(path.posix.dirname(new URL(url).pathname)) : ''
  const serial = img.serialDir.exec(dir)?.[1]
  return serial ? img.fileName.replace(/\.qcow2$/, `-${serial}.qcow2`) : img.fileName
}

/**
 * Render autolabs.yaml. A new file gets every setting with a comment; an existing file is
 * updated in place (its comments and order kept), only the values that changed are set.
 */
export function renderConfigYaml(config: ConfigInput, existingText?: string): string {
  if (existingText !== undefined) {
    const doc = parseDocument(existingText)
    setChanged(doc, [], config)
    return doc.toString({lineWidth: 0})
  }
  const doc = new Document(config)
  annotate(doc.contents as YAMLMap, [])
  doc.commentBefore =
    ' autolabs.yaml: every non-secret setting of this AutoLabs environment. Safe to commit.\n' +
    ' Secrets are in .autolabs/secrets.yaml (never commit it). Reference: README "Configuration".'
  return doc.toString({lineWidth: 0})
}

function annotate(node: YAMLMap, pathSoFar: string[]): void {
  for (const pair of node.items) {
    const key = String((pair.key as {value?: unknown}).value ?? pair.key)
    const p = [...pathSoFar, key].join('.')
    const docText = FIELD_DOCS[p]
    if (docText && isScalar(pair.key)) pair.key.commentBefore = ` ${docText}`
    if (pathSoFar.length === 0 && isScalar(pair.key) && isMap(pair.value)) pair.key.spaceBefore = true
    if (isMap(pair.value)) annotate(pair.value, [...pathSoFar, key])
  }
}

function setChanged(doc: Document, at: string[], value: unknown): void {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) setChanged(doc, [...at, k], v)
    return
  }
  const current = doc.getIn(at, true)
  const currentJs = isScalar(current) ? current.value : isSeq(current) ? (current.toJSON() as unknown) : current
  if (JSON.stringify(currentJs) === JSON.stringify(value)) return
  if (value === undefined) return
  doc.setIn(at, value)
}
