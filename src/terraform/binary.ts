import {accessSync, constants} from 'node:fs'
import path from 'node:path'

import {execa} from 'execa'

import {VERSIONS} from '../config/catalog.js'
import {UserError} from '../errors.js'
import {redact} from '../util/redact.js'
import {terraformEnv} from '../util/child-env.js'

/** The one environment name for the executable (the --terraform flag reads it). */
export const TERRAFORM_ENV = 'AUTOLABS_TERRAFORM'
/** Older name, still honoured (the preflight command used it). */
export const TERRAFORM_ENV_ALIAS = 'AUTOLABS_TERRAFORM_BIN'

export type TerraformFlavor = 'terraform' | 'opentofu'

/** OpenTofu forked from Terraform 1.6; its 1.6 is the first stable release. */
export const MIN_VERSION: Record<TerraformFlavor, string> = {terraform: VERSIONS.terraformMin, opentofu: '1.6.0'}

export const INSTALL_HINT =
  'Install Terraform >= 1.5 (https://developer.hashicorp.com/terraform/install) or OpenTofu >= 1.6 (https://opentofu.org/docs/intro/install/), or name the executable with --terraform / AUTOLABS_TERRAFORM. Then run the command again.'

export interface TerraformBinary {
  /** What autolabs runs: the named executable, or `terraform` / `tofu` found on PATH. */
  bin: string
  flavor: TerraformFlavor
  version: string
}

/** `name` found as an executable file in one of PATH's directories. */
export function onPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const exts = process.platform === 'win32' ? (env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : ['']
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    for (const ext of exts) {
      const file = path.join(dir, name + ext)
      try {
        accessSync(file, constants.X_OK)
        return file
      } catch {
        // not here
      }
    }
  }
  return undefined
}

/**
 * The executable every command and check runs: the one the user named (--terraform, else
 * AUTOLABS_TERRAFORM, else its alias AUTOLABS_TERRAFORM_BIN), else `terraform` on PATH,
 * else `tofu` on PATH (OpenTofu), else `terraform` (whose absence is then reported).
 */
export function resolveTerraformBin(named?: string, env: NodeJS.ProcessEnv = process.env): string {
  const given = named || env[TERRAFORM_ENV] || env[TERRAFORM_ENV_ALIAS]
  if (given) return given
  if (onPath('terraform', env)) return 'terraform'
  if (onPath('tofu', env)) return 'tofu'
  return 'terraform'
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0)
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0)
  for (let i = 0; i < 3; i++) if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0)
  return 0
}

/**
 * Runs `<bin> version` and tells Terraform from OpenTofu by its first line: Terraform prints
 * "Terraform v1.11.4" (hashicorp/terraform internal/command/version.go), OpenTofu "OpenTofu
 * v1.10.10" (opentofu/opentofu v1.10.10 internal/command/version.go); their `-json` output is
 * the same shape ("terraform_version" in both), so the text is what tells them apart.
 * Missing, unrunnable, unreadable or too old → UserError naming the executable and the fix.
 */
export async function probeTerraform(bin: string, opts: {cwd?: string; env?: Record<string, string>} = {}): Promise<TerraformBinary> {
  const named = bin === 'terraform' || bin === 'tofu' ? `\`${bin}\` on PATH` : `\`${bin}\``
  const result = await execa(bin, ['version'], {
    cwd: opts.cwd,
    reject: false,
    stdin: 'ignore',
    // Only what Terraform needs (src/util/child-env.ts): never the administrator's secrets.
    env: {CHECKPOINT_DISABLE: '1', ...(opts.env ?? terraformEnv(process.env))},
    extendEnv: false,
    timeout: 30_000,
  })
  const code = (result as unknown as {code?: string}).code
  if (code === 'ENOENT') {
    const which = bin === 'terraform' ? 'Neither `terraform` nor `tofu` (OpenTofu) was found on PATH.' : `Terraform was not found: ${named} does not exist.`
    throw new UserError(which, {suggestion: INSTALL_HINT})
  }
  if (result.failed && result.exitCode === undefined) {
    throw new UserError(`Cannot run ${named}: ${redact(String(result.shortMessage ?? code ?? 'unknown error'))}`, {suggestion: INSTALL_HINT})
  }
  const m = /^(Terraform|OpenTofu) v(\d+\.\d+\.\d+\S*)/m.exec(String(result.stdout))
  if (!m) {
    throw new UserError(`${named} is not Terraform or OpenTofu: \`version\` printed no "Terraform v…" or "OpenTofu v…" (exit ${result.exitCode}): ${redact(String(result.stderr || result.stdout)).slice(0, 300)}`, {
      suggestion: INSTALL_HINT,
    })
  }
  const flavor: TerraformFlavor = m[1] === 'OpenTofu' ? 'opentofu' : 'terraform'
  const version = m[2]!
  const min = MIN_VERSION[flavor]
  if (compareVersions(version, min) < 0) {
    throw new UserError(`${flavorName(flavor)} ${version} (${named}) is too old: autolabs needs ${min} or newer.`, {suggestion: INSTALL_HINT})
  }
  return {bin, flavor, version}
}

export function flavorName(flavor: TerraformFlavor): string {
  return flavor === 'opentofu' ? 'OpenTofu' : 'Terraform'
}

/** Where `init` downloads the bpg/proxmox provider from ("bpg/proxmox" is resolved by each tool in its own registry). */
export function registryHost(flavor: TerraformFlavor): string {
  return flavor === 'opentofu' ? 'registry.opentofu.org' : 'registry.terraform.io'
}
