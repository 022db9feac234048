/* eslint-disable @typescript-eslint/no-explicit-any */
export interface SchemaNode {
  path: string
  text: string
  leaf: number
  info?: Record<string, any>
  children?: SchemaNode[]
}
export interface LoadedSchema {
  release: '8.4' | '9.1'
  version: string
  tree: SchemaNode[]
  privileges: string[]
}
export declare const SCHEMA_FILES: Record<string, {file: string; version: string}>
export declare function loadSchema(release: '8.4' | '9.1'): LoadedSchema
export declare function matchPath(schema: LoadedSchema, apiPath: string): {node: SchemaNode & {info: Record<string, any>}; pathParams: Record<string, string>} | undefined
export declare function perlPattern(pattern: string): RegExp
export declare function validateParams(schema: LoadedSchema, opSchema: any, params: Record<string, string | string[]>): Record<string, string>
export declare function parsePropertyString(format: Record<string, any>, data: string): Record<string, string>
