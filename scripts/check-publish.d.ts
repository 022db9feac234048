export function canonicalRepo(url: string | undefined): string | undefined
export function publishProblems(pkg: {repository?: string | {url?: string}; homepage?: string; bugs?: {url?: string}}, origin: string | undefined): string[]
