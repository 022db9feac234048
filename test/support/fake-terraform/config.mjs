// The "Terraform core" half of the fake: it evaluates the configuration's expressions the way
// Terraform would, so that the provider half receives the attribute values the .tf files
// really produce (not values the fake derives from the tfvars on its own). Expressions are
// parsed by the real HCL parser (@cdktf/hcl2json's getExpressionAst); the evaluator supports
// the constructs the autolabs configuration uses and refuses anything else loudly, so the fake
// can never silently approximate a construct it does not understand.
import path from 'node:path'
import {readFileSync} from 'node:fs'

export class ConfigError extends Error {}

const FUNCTIONS = {
  lookup: (map, key, dflt) => (map && Object.hasOwn(map, key) ? map[key] : dflt),
  sort: (list) => [...list].map(String).sort(),
  distinct: (list) => [...new Set(list)],
  concat: (...lists) => lists.flat(),
  length: (x) => (Array.isArray(x) ? x.length : typeof x === 'string' ? x.length : Object.keys(x ?? {}).length),
  keys: (m) => Object.keys(m).sort(),
  values: (m) => Object.keys(m).sort().map((k) => m[k]),
  trimspace: (s) => String(s).trim(),
  alltrue: (list) => list.every((x) => x === true),
  anytrue: (list) => list.some((x) => x === true),
  contains: (list, v) => list.some((x) => JSON.stringify(x) === JSON.stringify(v)),
  // Terraform's regex() fails when nothing matches (that is what can() catches). RE2 and
  // JavaScript agree on the patterns the configuration uses.
  regex: (pattern, text) => {
    const m = new RegExp(pattern).exec(String(text))
    if (!m) throw new ConfigError(`pattern did not match any part of the given string`)
    return m.length > 1 ? m.slice(1) : m[0]
  },
  cidrhost: (prefix, n) => {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(String(prefix))
    if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) throw new ConfigError(`invalid CIDR address: ${prefix}`)
    const base = m.slice(1, 5).reduce((a, o) => a * 256 + Number(o), 0)
    const bits = Number(m[5])
    const size = 2 ** (32 - bits)
    if (n >= size) throw new ConfigError(`prefix ${prefix} has no host number ${n}`)
    const addr = (base - (base % size)) + n
    return [24, 16, 8, 0].map((sh) => Math.floor(addr / 2 ** sh) % 256).join('.')
  },
}

function unescapeHcl(text) {
  return text
    .replace(/\$\$\{/g, '${')
    .replace(/%%\{/g, '%{')
    .replace(/\\(["\\nrt]|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})/g, (_, e) =>
      e === 'n' ? '\n' : e === 'r' ? '\r' : e === 't' ? '\t' : e.length > 1 ? String.fromCodePoint(Number.parseInt(e.slice(1), 16)) : e,
    )
}

/** True when `text` is exactly one `${...}` interpolation (then its value keeps its type). */
function singleInterpolation(text) {
  if (!text.startsWith('${') || !text.endsWith('}')) return false
  let depth = 0
  let quoted = false
  for (let i = 2; i < text.length; i++) {
    const c = text[i]
    if (quoted) {
      if (c === '\\') i++
      else if (c === '"') quoted = false
    } else if (c === '"') quoted = true
    else if (c === '{') depth++
    else if (c === '}') {
      if (depth === 0) return i === text.length - 1
      depth--
    }
  }
  return false
}

/** The HCL expression text behind one of hcl2json's string values (undefined for a plain string). */
export function expressionSource(raw) {
  if (!raw.includes('${')) return undefined
  return singleInterpolation(raw) ? raw.slice(2, -1) : `"${raw}"`
}

/** Every expression in a JSON tree (resource bodies, locals, outputs): to parse them all once. */
export function expressionsIn(tree, out = []) {
  if (typeof tree === 'string') {
    const src = expressionSource(tree)
    if (src !== undefined) out.push(src)
  } else if (Array.isArray(tree)) for (const x of tree) expressionsIn(x, out)
  else if (tree && typeof tree === 'object') for (const x of Object.values(tree)) expressionsIn(x, out)
  return out
}

export class Evaluator {
  /**
   * @param {object} o
   * @param {(file: string, expr: string) => Promise<object>} o.ast  the HCL expression parser
   * @param {Record<string, unknown>} o.vars  variable values (defaults applied)
   * @param {Record<string, string>} o.locals  local name → raw expression string (from hcl2json)
   * @param {(type: string, name: string) => Promise<unknown>} o.resource  value of a resource reference
   * @param {string} o.moduleDir
   */
  constructor(o) {
    Object.assign(this, o)
    this.localValues = new Map()
    /** Resource addresses referenced while evaluating (Terraform's implicit dependencies). */
    this.references = new Set()
  }

  /** A value from hcl2json's JSON: literals stay, strings with ${...} are evaluated. */
  async value(raw, scope = {}) {
    if (typeof raw === 'string') {
      const src = expressionSource(raw)
      if (src === undefined) return raw
      let node
      try {
        node = await this.ast('main.tf', src)
      } catch (error) {
        throw new ConfigError(`cannot parse expression ${raw}: ${error.message.split('\n')[0]}`)
      }
      return this.node(node, scope)
    }
    if (Array.isArray(raw)) return Promise.all(raw.map((x) => this.value(x, scope)))
    if (raw && typeof raw === 'object') {
      const out = {}
      for (const [k, v] of Object.entries(raw)) out[k] = await this.value(v, scope)
      return out
    }
    return raw
  }

  async node(n, scope) {
    const kids = n.children ?? []
    switch (n.type) {
      case 'literalValue': {
        const {type, value} = n.meta
        // The parser reports string literals as written: decode HCL's escapes here.
        if (type === 'string') return unescapeHcl(value)
        if (type === 'number') return Number(value)
        if (type === 'bool') return value === 'true'
        if (type === 'dynamic' && value === 'null') return null
        throw new ConfigError(`unsupported literal ${value}`)
      }
      case 'template': {
        const parts = await Promise.all(kids.map((k) => this.node(k, scope)))
        if (parts.length === 1 && kids[0].type !== 'literalValue') return parts[0]
        return parts.map((p) => (p === null || p === undefined ? '' : String(p))).join('')
      }
      case 'tuple':
        return Promise.all(kids.map((k) => this.node(k, scope)))
      case 'object': {
        // children alternate: key (empty node for bare names), value
        const keys = Object.keys(n.meta.items ?? {})
        const out = {}
        for (const [i, key] of keys.entries()) out[key] = await this.node(kids[i * 2 + 1], scope)
        return out
      }
      case 'binaryOp': {
        const [l, r] = await Promise.all(kids.map((k) => this.node(k, scope)))
        switch (n.meta.operator) {
          case 'equal':
            return JSON.stringify(l) === JSON.stringify(r)
          case 'notEqual':
            return JSON.stringify(l) !== JSON.stringify(r)
          case 'logicalAnd':
            return Boolean(l && r)
          case 'logicalOr':
            return Boolean(l || r)
          case 'greaterThan':
            return l > r
          case 'greaterThanOrEqual':
            return l >= r
          case 'lessThan':
            return l < r
          case 'lessThanOrEqual':
            return l <= r
          case 'add':
            return l + r
          case 'subtract':
            return l - r
          case 'multiply':
            return l * r
          case 'divide':
            return l / r
          case 'modulo':
            return l % r
          default:
            throw new ConfigError(`unsupported operator ${n.meta.operator}`)
        }
      }
      case 'unaryOp': {
        const v = await this.node(kids[0], scope)
        if (n.meta.operator === 'logicalNot') return !v
        if (n.meta.operator === 'negate') return -v
        throw new ConfigError(`unsupported operator ${n.meta.operator}`)
      }
      case 'conditional': {
        const cond = await this.node(kids[0], scope)
        return this.node(cond ? kids[1] : kids[2], scope)
      }
      case 'function': {
        const name = n.meta.name
        if (name === 'can') {
          try {
            await this.node(kids[0], scope)
            return true
          } catch (error) {
            if (error instanceof ConfigError || error instanceof TypeError) return false
            throw error
          }
        }
        if (name === 'file') {
          const file = await this.node(kids[0], scope)
          try {
            return readFileSync(path.resolve(this.moduleDir, file), 'utf8')
          } catch {
            throw new ConfigError(`Invalid value for "path" parameter: no file exists at ${file}`)
          }
        }
        const fn = FUNCTIONS[name]
        if (!fn) throw new ConfigError(`the fake terraform does not implement the function ${name}()`)
        return fn(...(await Promise.all(kids.map((k) => this.node(k, scope)))))
      }
      case 'for': {
        const {keyVar, valVar, keyExpression} = n.meta
        const collection = await this.node(kids[0], scope)
        const entries = Array.isArray(collection) ? collection.map((v, i) => [i, v]) : Object.entries(collection ?? {}).sort(([a], [b]) => a.localeCompare(b))
        const isObject = keyExpression !== undefined && keyExpression !== ''
        const out = isObject ? {} : []
        for (const [k, v] of entries) {
          const inner = {...scope, ...(keyVar ? {[keyVar]: k} : {}), [valVar]: v}
          if (isObject) out[await this.node(kids[1], inner)] = await this.node(kids[2], inner)
          else out.push(await this.node(kids[1], inner))
        }
        return out
      }
      case 'scopeTraversal':
        return this.traverse(n.meta.traversal, scope)
      case 'index': {
        // collection[key]: Terraform fails on a missing key (no silent null).
        const [collection, key] = await Promise.all(kids.map((k) => this.node(k, scope)))
        if (collection === null || collection === undefined) throw new ConfigError('Attempt to index a null value')
        if (!Object.hasOwn(collection, key)) throw new ConfigError(`Invalid index: the given key ${JSON.stringify(key)} does not identify an element in this collection value`)
        return collection[key]
      }
      default:
        throw new ConfigError(`the fake terraform does not evaluate ${n.type} expressions (${n.meta?.value ?? ''})`)
    }
  }

  async traverse(traversal, scope) {
    const [root, ...rest] = traversal
    const name = root.segment
    let value
    let i = 0
    if (name in scope) value = scope[name]
    else if (name === 'var') {
      const v = rest[i++].segment
      if (!(v in this.vars)) throw new ConfigError(`Reference to undeclared input variable "${v}"`)
      value = this.vars[v]
    } else if (name === 'local') value = await this.local(rest[i++].segment)
    else if (name === 'path') {
      i++
      value = '.'
    } else if (name.includes('_') && rest[i]?.type === 'nameTraversal') {
      const rname = rest[i++].segment
      this.references.add(`${name}.${rname}`)
      value = await this.resource(name, rname)
    } else throw new ConfigError(`Reference to undeclared name "${name}"`)
    for (; i < rest.length; i++) {
      const seg = rest[i]
      const key = seg.type === 'indexTraversal' ? JSON.parse(seg.segment) : seg.segment
      if (value === null || value === undefined) throw new ConfigError(`Attempt to get attribute "${key}" from a null value`)
      value = value[key]
    }
    return value
  }

  /** Run fn, collecting the resource references it makes (they also count for the caller). */
  async capture(fn) {
    const outer = this.references
    this.references = new Set()
    try {
      const value = await fn()
      return {value, refs: [...this.references]}
    } finally {
      for (const r of this.references) outer.add(r)
      this.references = outer
    }
  }

  async local(name) {
    if (!this.localValues.has(name)) {
      if (!(name in this.locals)) throw new ConfigError(`Reference to undeclared local value "${name}"`)
      this.localValues.set(name, await this.capture(() => this.value(this.locals[name])))
    }
    const {value, refs} = this.localValues.get(name)
    for (const r of refs) this.references.add(r)
    return value
  }

  /** A block body from hcl2json (attributes, nested blocks as arrays, dynamic blocks) → values. */
  async block(body, scope = {}) {
    const out = {}
    for (const [k, raw] of Object.entries(body)) {
      if (['depends_on', 'lifecycle', 'for_each', 'count', 'provider'].includes(k)) continue
      if (k === 'dynamic') {
        for (const [blockName, defs] of Object.entries(raw)) {
          const items = []
          for (const def of defs) {
            const iter = await this.value(def.for_each, scope)
            const entries = Array.isArray(iter) ? iter.map((v, i) => [i, v]) : Object.entries(iter ?? {})
            for (const [key, value] of entries) items.push(await this.block(def.content[0], {...scope, [blockName]: {key, value}}))
          }
          out[blockName] = items
        }
        continue
      }
      if (Array.isArray(raw) && raw.length > 0 && raw.every((x) => x && typeof x === 'object' && !Array.isArray(x))) {
        out[k] = []
        for (const b of raw) out[k].push(await this.block(b, scope))
      } else out[k] = await this.value(raw, scope)
    }
    return out
  }
}
