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
  forceNew?: string[]
  opaque?: boolean
}

export const META_ARGUMENTS: string[]
export const PROVIDER: BlockSchema
export const RESOURCES: Record<string, BlockSchema>
export function configProblems(schema: BlockSchema, body: Record<string, unknown>, where: string, resource?: boolean): string[]
export function valueProblems(schema: BlockSchema, attrs: Record<string, unknown>, where: string, resource?: boolean): string[]
export const PINNED: {tag: string; commit: string}
export function changedPaths(a: unknown, b: unknown, prefix?: string): string[]
export function forcesNew(schema: BlockSchema, path: string): boolean
