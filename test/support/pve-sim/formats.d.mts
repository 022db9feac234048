export declare const PRIVILEGES_8: string[]
export declare const PRIVILEGES_9: string[]
export declare const CONTENT_TYPES: string[]
export declare const UNCHECKED_FORMATS: string[]
export type FormatChecker = (value: string, ctx: {privileges: string[]}) => string | undefined | {composite: Record<string, unknown>}
export declare const FORMATS: Record<string, FormatChecker>
export declare function lookupFormat(name: string): FormatChecker | undefined
export declare function isIpv4(v: string): boolean
