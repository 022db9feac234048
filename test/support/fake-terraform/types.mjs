// Input variable types, checked and converted the way Terraform does before any validation rule
// runs: the type constraint grammar (string, number, bool, any, list/set/map(T), tuple([...]),
// object({...}) with optional(T[, default])) and cty's conversion of a JSON tfvars value to it.
//
// Rules and messages copied from github.com/zclconf/go-cty v1.16.4 (what Terraform 1.11 vendors):
// cty/convert/conversion_primitive.go (number and bool → string; string → number, else "a number
// is required"; string → bool accepts "true"/"1"/"false"/"0", `; to convert from string, use
// lowercase "true"` for other casings, else "a bool is required") and cty/convert/mismatch_msg.go
// ("<friendly type name> required" for a value of the wrong kind; `attribute "x" is required`,
// `attributes "x" and "y" are required`, `attributes "x", "y", and "z" are required`; extra
// attributes are dropped). Path prefixes (`element 0: `, `element "k": `, `attribute "a": `) as
// Terraform prints them; a nested string→number/bool failure is printed without its path.
// test/integration/terraform/fake-types.test.ts checks the fake against the real terraform.

export class TypeProblem extends Error {}

// ---- the type constraint grammar --------------------------------------------------------------
function tokens(text) {
  const out = []
  const re = /\s*(?:([A-Za-z_][A-Za-z0-9_-]*)|("(?:[^"\\]|\\.)*")|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|([(){}[\]=,:]))/y
  let i = 0
  while (i < text.length) {
    if (/^\s*$/.test(text.slice(i))) break
    re.lastIndex = i
    const m = re.exec(text)
    if (!m) throw new TypeProblem(`cannot read the type constraint at "${text.slice(i, i + 20)}"`)
    out.push(m[1] !== undefined ? {ident: m[1]} : m[2] !== undefined ? {str: JSON.parse(m[2])} : m[3] !== undefined ? {num: Number(m[3])} : {punct: m[4]})
    i = re.lastIndex
  }
  return out
}

/** "${object({...})}" (hcl2json's rendering of a variable's `type`) → a type tree. */
export function parseType(source) {
  const text = source.startsWith('${') && source.endsWith('}') ? source.slice(2, -1) : source
  const t = tokens(text)
  let p = 0
  const peek = () => t[p]
  const expect = (punct) => {
    if (t[p]?.punct !== punct) throw new TypeProblem(`expected "${punct}" in the type constraint ${text}`)
    p++
  }
  const literal = () => {
    const tok = t[p++]
    if (tok?.str !== undefined) return tok.str
    if (tok?.num !== undefined) return tok.num
    if (tok?.ident === 'true' || tok?.ident === 'false') return tok.ident === 'true'
    if (tok?.ident === 'null') return null
    if (tok?.punct === '[') {
      const list = []
      while (peek()?.punct !== ']') {
        list.push(literal())
        if (peek()?.punct === ',') p++
      }
      p++
      return list
    }
    if (tok?.punct === '{') {
      const obj = {}
      while (peek()?.punct !== '}') {
        const k = t[p++]
        const key = k.ident ?? k.str
        if (peek()?.punct !== '=' && peek()?.punct !== ':') throw new TypeProblem(`expected "=" in a default of ${text}`)
        p++
        obj[key] = literal()
        if (peek()?.punct === ',') p++
      }
      p++
      return obj
    }
    throw new TypeProblem(`the fake reads only literal defaults in optional(); got ${JSON.stringify(tok)} in ${text}`)
  }
  const type = () => {
    const tok = t[p++]
    const name = tok?.ident
    if (['string', 'number', 'bool', 'any'].includes(name)) return {kind: name}
    if (['list', 'set', 'map'].includes(name)) {
      expect('(')
      const element = type()
      expect(')')
      return {kind: name, element}
    }
    if (name === 'tuple') {
      expect('(')
      expect('[')
      const elements = []
      while (peek()?.punct !== ']') {
        elements.push(type())
        if (peek()?.punct === ',') p++
      }
      p++
      expect(')')
      return {kind: 'tuple', elements}
    }
    if (name === 'object') {
      expect('(')
      expect('{')
      const attributes = {}
      while (peek()?.punct !== '}') {
        const key = t[p++].ident
        expect('=')
        if (peek()?.ident === 'optional') {
          p++
          expect('(')
          const attrType = type()
          let dflt = null
          if (peek()?.punct === ',') {
            p++
            dflt = literal()
          }
          expect(')')
          attributes[key] = {type: attrType, optional: true, default: dflt}
        } else attributes[key] = {type: type(), optional: false}
        if (peek()?.punct === ',') p++
      }
      p++
      expect(')')
      return {kind: 'object', attributes}
    }
    throw new TypeProblem(`unknown type "${name ?? JSON.stringify(tok)}" in ${text}`)
  }
  const result = type()
  if (p !== t.length) throw new TypeProblem(`unexpected text after the type constraint ${text}`)
  return result
}

/** cty's FriendlyName: "string", "list of string", "map of object", "object", "tuple". */
function friendly(type) {
  if (['list', 'set', 'map'].includes(type.kind)) return `${type.kind} of ${friendly(type.element)}`
  return type.kind
}

const kindOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'tuple' : typeof v === 'object' ? 'object' : typeof v)
const at = (path, message) => new TypeProblem(path.length > 0 ? `${path.join(': ')}: ${message}` : message)

/** The value converted to the type (optional attributes filled, extra ones dropped), or a TypeProblem. */
export function convert(value, type, path = []) {
  if (value === null || value === undefined || type.kind === 'any') return value ?? null
  switch (type.kind) {
    case 'string':
      if (typeof value === 'string') return value
      if (typeof value === 'number' || typeof value === 'boolean') return String(value)
      throw at(path, 'string required')
    case 'number':
      if (typeof value === 'number') return value
      if (typeof value === 'string') {
        const n = value.trim() === '' ? Number.NaN : Number(value)
        if (Number.isFinite(n)) return n
        throw new TypeProblem('a number is required')
      }
      throw at(path, 'number required')
    case 'bool':
      if (typeof value === 'boolean') return value
      if (typeof value === 'string') {
        if (value === 'true' || value === '1') return true
        if (value === 'false' || value === '0') return false
        const lower = value.toLowerCase()
        if (lower === 'true' || lower === 'false') throw new TypeProblem(`a bool is required; to convert from string, use lowercase "${lower}"`)
        throw new TypeProblem('a bool is required')
      }
      throw at(path, 'bool required')
    case 'list':
    case 'set':
      if (!Array.isArray(value)) throw at(path, `${friendly(type)} required`)
      return value.map((v, i) => convert(v, type.element, [...path, `element ${i}`]))
    case 'tuple':
      if (!Array.isArray(value)) throw at(path, 'tuple required')
      if (value.length !== type.elements.length) throw at(path, `tuple required`)
      return value.map((v, i) => convert(v, type.elements[i], [...path, `element ${i}`]))
    case 'map':
      if (kindOf(value) !== 'object') throw at(path, `${friendly(type)} required`)
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, convert(v, type.element, [...path, `element ${JSON.stringify(k)}`])]))
    case 'object': {
      if (kindOf(value) !== 'object') throw at(path, 'object required')
      const missing = Object.entries(type.attributes).filter(([k, a]) => !a.optional && !(k in value)).map(([k]) => JSON.stringify(k)).sort()
      if (missing.length === 1) throw at(path, `attribute ${missing[0]} is required`)
      if (missing.length === 2) throw at(path, `attributes ${missing[0]} and ${missing[1]} are required`)
      if (missing.length > 2) throw at(path, `attributes ${missing.slice(0, -1).join(', ')}, and ${missing.at(-1)} are required`)
      const out = {}
      for (const [k, a] of Object.entries(type.attributes)) {
        if (!(k in value)) {
          out[k] = a.default === null ? null : convert(a.default, a.type, [...path, `attribute ${JSON.stringify(k)}`])
        } else {
          const v = convert(value[k], a.type, [...path, `attribute ${JSON.stringify(k)}`])
          out[k] = v === null && a.optional && a.default !== null ? convert(a.default, a.type) : v
        }
      }
      return out
    }
    default:
      throw new TypeProblem(`the fake cannot check the type ${type.kind}`)
  }
}
