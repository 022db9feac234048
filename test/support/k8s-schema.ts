import {readFileSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

// A strict validator for the subset of OpenAPI v3 that Kubernetes' published schemas use
// (type, properties, required, items, allOf/$ref, additionalProperties, int-or-string), in the
// manner of `kubeconform -strict`: a field the schema does not know is an error, as the API
// server's strict field validation (kubectl apply's default since 1.27) reports it.
type Schema = {
  type?: string
  format?: string
  properties?: Record<string, Schema>
  required?: string[]
  items?: Schema
  allOf?: Schema[]
  $ref?: string
  additionalProperties?: Schema
}

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/k8s-openapi')

export function loadSchemas(file: string): Record<string, Schema> {
  return (JSON.parse(readFileSync(path.join(FIXTURES, file), 'utf8')) as {components: {schemas: Record<string, Schema>}}).components.schemas
}

export function validate(value: unknown, schemaName: string, schemas: Record<string, Schema>): string[] {
  const errors: string[] = []
  const resolve = (s: Schema): Schema => (s.$ref ? schemas[s.$ref.replace('#/components/schemas/', '')] ?? {} : s)
  const walk = (v: unknown, raw: Schema, at: string): void => {
    const s = resolve(raw)
    for (const part of s.allOf ?? []) walk(v, part, at)
    if (s.format === 'int-or-string') {
      if (!(typeof v === 'string' || Number.isInteger(v))) errors.push(`${at}: expected an integer or a string`)
      return
    }
    switch (s.type) {
      case 'object': {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) {
          errors.push(`${at}: expected an object`)
          return
        }
        const obj = v as Record<string, unknown>
        for (const r of s.required ?? []) if (!(r in obj)) errors.push(`${at}: missing required field "${r}"`)
        for (const [k, child] of Object.entries(obj)) {
          if (s.properties?.[k]) walk(child, s.properties[k], `${at}.${k}`)
          else if (s.additionalProperties) walk(child, s.additionalProperties, `${at}.${k}`)
          else errors.push(`${at}: unknown field "${k}"`)
        }
        return
      }
      case 'array':
        if (!Array.isArray(v)) errors.push(`${at}: expected an array`)
        else v.forEach((item, i) => walk(item, s.items ?? {}, `${at}[${i}]`))
        return
      case 'string':
        if (typeof v !== 'string') errors.push(`${at}: expected a string`)
        return
      case 'integer':
        if (!Number.isInteger(v)) errors.push(`${at}: expected an integer`)
        return
      case 'boolean':
        if (typeof v !== 'boolean') errors.push(`${at}: expected a boolean`)
    }
  }
  walk(value, {$ref: `#/components/schemas/${schemaName}`}, '$')
  return errors
}
