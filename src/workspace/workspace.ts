import {existsSync, statSync} from 'node:fs'
import path from 'node:path'

import {UsageError} from '../errors.js'
import {refuseSymlinkSync, removeStaleTemps} from './fs.js'

export const CONFIG_FILE = 'autolabs.yaml'

/** Every path of a workspace in one place. */
export class Workspace {
  readonly root: string
  constructor(root: string) {
    this.root = path.resolve(root)
  }

  get configFile() {
    return path.join(this.root, CONFIG_FILE)
  }
  get stateDir() {
    return path.join(this.root, '.autolabs')
  }
  get secretsFile() {
    return path.join(this.stateDir, 'secrets.yaml')
  }
  get stateFile() {
    return path.join(this.stateDir, 'state.json')
  }
  get logsDir() {
    return path.join(this.stateDir, 'logs')
  }
  get knownHostsFile() {
    return path.join(this.stateDir, 'known_hosts')
  }
  get kubeconfigFile() {
    return path.join(this.stateDir, 'kubeconfig')
  }
  get terraformDir() {
    return path.join(this.root, 'terraform')
  }
  get tfvarsFile() {
    return path.join(this.terraformDir, 'terraform.tfvars.json')
  }
  get backupsDir() {
    return path.join(this.root, 'backups')
  }
  get gitignoreFile() {
    return path.join(this.root, '.gitignore')
  }
  logFile(...parts: string[]) {
    return path.join(this.logsDir, ...parts)
  }

  /**
   * The private paths (secrets, state, logs, Terraform's values and state): none may be a
   * symbolic link, or autolabs would write (and chmod) secrets wherever it points.
   */
  get privatePaths(): string[] {
    return [
      this.stateDir,
      this.secretsFile,
      this.stateFile,
      this.knownHostsFile,
      this.kubeconfigFile,
      this.logsDir,
      this.terraformDir,
      this.tfvarsFile,
      path.join(this.terraformDir, 'terraform.tfstate'),
      path.join(this.terraformDir, 'terraform.tfstate.backup'),
    ]
  }

  /** Refuse symlinked private paths; remove the temp files a killed run left behind. */
  check(): this {
    for (const p of this.privatePaths) refuseSymlinkSync(p)
    removeStaleTemps([this.root, this.stateDir, this.terraformDir])
    return this
  }
}

/**
 * The workspace: --dir / AUTOLABS_DIR if given; else the nearest directory upwards holding
 * autolabs.yaml (like git); else the current directory (where `init` creates one).
 */
export function findWorkspace(opts: {dir?: string; cwd?: string} = {}): Workspace {
  return locate(opts).check()
}

function locate(opts: {dir?: string; cwd?: string}): Workspace {
  if (opts.dir) {
    const st = statSync(opts.dir, {throwIfNoEntry: false})
    if (st && !st.isDirectory())
      throw new UsageError(`--dir ${opts.dir} is not a directory.`, {suggestion: 'Pass the workspace directory (it holds autolabs.yaml), or a new path for `autolabs init` to create.'})
    return new Workspace(opts.dir)
  }
  let cur = path.resolve(opts.cwd ?? process.cwd())
  for (;;) {
    if (existsSync(path.join(cur, CONFIG_FILE))) return new Workspace(cur)
    const parent = path.dirname(cur)
    if (parent === cur) return new Workspace(opts.cwd ?? process.cwd())
    cur = parent
  }
}
