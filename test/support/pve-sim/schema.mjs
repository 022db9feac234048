// Request validation against the real Proxmox VE API schema (test/fixtures/pve-api), following
// pve-common's PVE::JSONSchema: every parameter name must be declared, types are checked on the
// wire form (integers as digits, booleans only 0/1), then format, length, pattern, range, enum.
// Error messages and keys match the Perl implementation closely enough for a client to parse.
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {gunzipSync} from 'node:zlib'

import {lookupFormat, PRIVILEGES_8, PRIVILEGES_9} from './formats.mjs'

const here = path.dirname(fileURLToPath(import.meta.url))
const FIXTURES = path.resolve(here, '../../fixtures/pve-api')

export const SCHEMA_FILES = {
  '8.4': {file: 'pve-api-schema-8.4.2.json.gz', version: '8.4.2'},
  '9.1': {file: 'pve-api-schema-9.1.3.json.gz', version: '9.1.3'},
}

const cache = new Map()

/** Load (once per process) the schema tree of one PVE version and index it by path. */
export function loadSchema(release) {
  if (cache.has(release)) return cache.get(release)
  const meta = SCHEMA_FILES[release]
  if (!meta) throw new Error(`pve-sim: unknown PVE release ${release}; use one of ${Object.keys(SCHEMA_FILES).join(', ')}`)
  const tree = JSON.parse(gunzipSync(readFileSync(path.join(FIXTURES, meta.file))).toString('utf8'))
  const schema = {release, version: meta.version, tree, privileges: release === '8.4' ? PRIVILEGES_8 : PRIVILEGES_9}
  cache.set(release, schema)
  return schema
}

/**
 * Find the schema node for a concrete path such as /nodes/pve/qemu/100/config.
 * Literal segments win over `{param}` segments, as in PVE's router.
 * @returns {{node: object, pathParams: Record<string,string>} | undefined}
 */
export function matchPath(schema, apiPath) {
  const segments = apiPath.split('/').filter(Boolean).map((s) => decodeURIComponent(s))
  let level = schema.tree
  let node
  const pathParams = {}
  for (const seg of segments) {
    let found
    for (const child of level ?? []) {
      const last = child.path.split('/').pop()
      if (last === seg) {
        found = child
        break
      }
    }
    if (!found) {
      for (const child of level ?? []) {
        const last = child.path.split('/').pop()
        const m = /^\{(.+)\}$/.exec(last)
        if (m) {
          found = child
          pathParams[m[1]] = seg
          break
        }
      }
    }
    if (!found) return undefined
    node = found
    level = found.children
  }
  return node ? {node, pathParams} : undefined
}

/** Perl regex → JavaScript. PVE anchors every pattern (`m/^$pattern$/`). */
const regexCache = new Map()
export function perlPattern(pattern) {
  if (regexCache.has(pattern)) return regexCache.get(pattern)
  let src = pattern
  let flags = ''
  // (?^i:...) — node 20 has no inline modifiers; apply `i` to the whole pattern (slightly looser).
  if (src.includes('(?^i:')) flags = 'i'
  src = src.replaceAll('(?^i:', '(?:').replaceAll('(?^:', '(?:')
  src = src.replace(/\{,(\d+)\}/g, '{0,$1}')
  const re = new RegExp(`^(?:${src})$`, flags)
  regexCache.set(pattern, re)
  return re
}

// Highest index of `key[n]` properties whose description does not say "(n is 0 to N)"
// (qemu-server's MAX_NETS, MAX_UNUSED_DISKS, ...).
const MAX_INDEX = {net: 31, ipconfig: 31, unused: 255, hostpci: 15, usb: 13, serial: 3, parallel: 2, numa: 7, virtiofs: 9, mp: 255, dev: 255}

function propSchemaFor(properties, name) {
  if (properties[name]) return properties[name]
  const m = /^([a-z][a-z_-]*?)(\d+)$/.exec(name)
  const prop = m && properties[`${m[1]}[n]`]
  if (!prop) return undefined
  const max = Number(/\(n is 0 to (\d+)\)/.exec(prop.description ?? '')?.[1] ?? MAX_INDEX[m[1]] ?? 255)
  return Number(m[2]) <= max ? prop : undefined
}

const MISSING = 'property is missing and it is not optional'
const NOT_DEFINED = 'property is not defined in schema and the schema does not allow additional properties'

/**
 * Validate raw wire parameters (strings, or arrays of strings for repeated keys).
 * @returns {Record<string,string>} errors by parameter (empty when valid)
 */
export function validateParams(schema, opSchema, params) {
  const errors = {}
  const parameters = opSchema.parameters ?? {}
  const properties = parameters.properties ?? {}
  const ctx = {privileges: schema.privileges}
  for (const [name, prop] of Object.entries(properties)) {
    if (name.endsWith('[n]')) continue
    if (!prop.optional && params[name] === undefined) errors[name] = MISSING
  }
  for (const [name, value] of Object.entries(params)) {
    const prop = propSchemaFor(properties, name)
    if (!prop) {
      if (!parameters.additionalProperties) errors[name] = NOT_DEFINED
      continue
    }
    checkProp(name, prop, value, errors, ctx)
  }
  return errors
}

function checkProp(name, prop, value, errors, ctx) {
  if (prop.type === 'array') {
    const items = Array.isArray(value) ? value : [value]
    for (const item of items) if (prop.items?.type) checkProp(name, prop.items, item, errors, ctx)
    return
  }
  if (Array.isArray(value)) {
    errors[name] = `type check ('${prop.type}') failed - got ARRAY`
    return
  }
  const v = String(value)
  switch (prop.type) {
    case 'integer':
      if (!/^[+-]?\d+$/.test(v)) return void (errors[name] = `type check ('integer') failed - got '${v}'`)
      break
    case 'number':
      if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(v)) return void (errors[name] = `type check ('number') failed - got '${v}'`)
      break
    case 'boolean':
      if (v !== '0' && v !== '1') return void (errors[name] = `type check ('boolean') failed - got '${v}'`)
      break
    default:
      break
  }
  if (prop.format) {
    const sub = checkFormat(name, prop.format, v, ctx)
    if (sub) {
      Object.assign(errors, sub)
      return
    }
  }
  if (prop.type === 'string' || prop.type === undefined) {
    if (prop.maxLength !== undefined && v.length > Number(prop.maxLength)) return void (errors[name] = `value may only be ${prop.maxLength} characters long`)
    if (prop.minLength !== undefined && v.length < Number(prop.minLength)) return void (errors[name] = `value must be at least ${prop.minLength} characters long`)
    if (prop.pattern && !perlPattern(prop.pattern).test(v)) return void (errors[name] = 'value does not match the regex pattern')
  }
  if (prop.type === 'integer' || prop.type === 'number') {
    if (prop.minimum !== undefined && Number(v) < Number(prop.minimum)) return void (errors[name] = `value must have a minimum value of ${prop.minimum}`)
    if (prop.maximum !== undefined && Number(v) > Number(prop.maximum)) return void (errors[name] = `value must have a maximum value of ${prop.maximum}`)
  }
  if (Array.isArray(prop.enum) && !prop.enum.map(String).includes(v)) {
    errors[name] = `value '${v}' does not have a value in the enumeration '${prop.enum.join(', ')}'`
  }
}

/** @returns {Record<string,string> | undefined} errors keyed like PVE (`net0` or `net0.bridge`) */
function checkFormat(name, format, v, ctx) {
  if (typeof format === 'object') return checkComposite(name, format, v, ctx)
  const checker = lookupFormat(format)
  if (!checker) return undefined
  const res = checker(v, ctx)
  if (!res) return undefined
  if (typeof res === 'object') return checkComposite(name, res.composite, v, ctx)
  return {[name]: `invalid format - ${res}`}
}

/** parse_property_string + check_object of PVE::JSONSchema for `key=value,...` values. */
export function parsePropertyString(format, data) {
  const res = {}
  let defaultKey
  for (const part of data.split(',')) {
    if (/^\s*$/.test(part)) continue
    const kv = /^([^=]+)=(.+)$/.exec(part)
    if (kv) {
      let [, k, val] = kv
      if (res[k] !== undefined) throw new Error(`duplicate key in comma-separated list property: ${k}`)
      let s = format[k]
      if (s?.alias) {
        if (s.keyAlias) {
          if (res[s.keyAlias] !== undefined) throw new Error(`key alias '${s.keyAlias}' is already defined`)
          res[s.keyAlias] = k
        }
        k = s.alias
        s = format[k]
      }
      if (!s) throw new Error(`invalid key in comma-separated list property: ${k}`)
      if (s.type === 'boolean') {
        if (/^(1|true|yes|on)$/i.test(val)) val = '1'
        else if (/^(0|false|no|off)$/i.test(val)) val = '0'
      }
      res[k] = val
    } else if (!part.includes('=')) {
      if (defaultKey) throw new Error(`duplicate key in comma-separated list property: ${defaultKey}`)
      defaultKey = Object.keys(format).find((key) => format[key].default_key)
      if (!defaultKey) throw new Error('value without key, but schema does not define a default key')
      if (res[defaultKey] !== undefined) throw new Error(`duplicate key in comma-separated list property: ${defaultKey}`)
      res[defaultKey] = part
    } else {
      throw new Error('missing key in comma-separated list property')
    }
  }
  return res
}

function checkComposite(name, format, v, ctx) {
  let parsed
  try {
    parsed = parsePropertyString(format, v)
  } catch (error) {
    return {[name]: `invalid format - ${error.message}`}
  }
  const errors = {}
  for (const [key, s] of Object.entries(format)) {
    if (s.alias) continue
    if (!s.optional && parsed[key] === undefined) errors[`${name}.${key}`] = MISSING
  }
  for (const [key, val] of Object.entries(parsed)) {
    const s = format[key]
    if (s && !s.alias) checkProp(`${name}.${key}`, s, val, errors, ctx)
  }
  return Object.keys(errors).length > 0 ? errors : undefined
}
