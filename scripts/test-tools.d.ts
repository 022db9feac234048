export const TEST_TOOLS: Array<[what: string, executables: string[], install: string]>
export function findExecutable(name: string, env?: NodeJS.ProcessEnv): string | undefined
export function missingTestTools(env?: NodeJS.ProcessEnv): string[]
