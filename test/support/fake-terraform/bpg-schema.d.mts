// Types for bpg-schema.mjs (the fake terraform is plain JavaScript; the unit tests are TypeScript).

export interface BlockSchema {
  attributes: string[]
  required?: string[]
  computed?: string[]
  blocks?: Record<string, BlockSchema>
  enums?: Record<string, string[]>
  patterns?: Record<string, RegExp>
  alsoRequires?: Array<[string, string]>
  conflicts?: Array<[string, string]>
}

export const META_ARGUMENTS: string[]
export const PROVIDER: BlockSchema
export const RESOURCES: Record<string, BlockSchema>
export function configProblems(schema: BlockSchema, body: Record<string, unknown>, where: string, resource?: boolean): string[]
export function valueProblems(schema: BlockSchema, attrs: Record<string, unknown>, where: string, resource?: boolean): string[]
