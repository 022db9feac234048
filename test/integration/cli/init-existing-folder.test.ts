import {execa} from 'execa'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {afterAll, describe, expect, it} from 'vitest'

import {removeDir, runCli, snapshotTree, tempDir} from '../../support/cli.js'

/** init in a folder that already holds the user's work: it adds, it never destroys. */
const dirs: string[] = []
afterAll(async () => Promise.all(dirs.map((d) => removeDir(d))))

async function gitRepo(files: Record<string, string>): Promise<string> {
  const dir = await tempDir('autolabs-repo-')
  dirs.push(dir)
  for (const [f, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, f)), {recursive: true})
    await writeFile(path.join(dir, f), text)
  }
  const git = (...args: string[]) => execa('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], {cwd: dir})
  await git('init', '-q')
  await git('add', '-A')
  await git('commit', '-qm', 'the user project')
  return dir
}
const ignored = async (dir: string, p: string) => (await execa('git', ['check-ignore', '-q', p], {cwd: dir, reject: false})).exitCode === 0

describe('init in a Git repository with files of its own', () => {
  it("merges its lines into the user's .gitignore as a marked block, idempotently", async () => {
    // Given a repository whose .gitignore ignores node_modules/ and .env
    const dir = await gitRepo({'.gitignore': 'node_modules/\n.env\n', '.env': 'TOKEN=x\n', 'src/app.js': 'console.log(1)\n'})
    // When init writes a workspace there
    const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir])
    expect(r.exitCode, r.stderr).toBe(0)
    // Then the user's lines are still there, first, and still effective
    const gi = await readFile(path.join(dir, '.gitignore'), 'utf8')
    expect(gi.startsWith('node_modules/\n.env\n')).toBe(true)
    expect(await ignored(dir, '.env')).toBe(true)
    expect(await ignored(dir, 'node_modules/x')).toBe(true)
    // And autolabs' secrets, state and tfvars are ignored too, the .tf files are not
    for (const p of ['.autolabs/secrets.yaml', 'terraform/terraform.tfvars.json', 'terraform/terraform.tfstate', 'backups/x']) expect(await ignored(dir, p), p).toBe(true)
    expect(await ignored(dir, 'terraform/main.tf')).toBe(false)
    expect(gi.match(/>>> autolabs/g)).toHaveLength(1)
    // And a second run leaves the file byte for byte as it was (one block, not two)
    const again = await runCli(['init', '--dry-run', '--yes', '--dir', dir])
    expect(again.exitCode, again.stderr).toBe(0)
    expect(await readFile(path.join(dir, '.gitignore'), 'utf8')).toBe(gi)
    // And the user's other files are untouched
    expect(await readFile(path.join(dir, 'src/app.js'), 'utf8')).toBe('console.log(1)\n')
  })

  it('keeps lines the user added after the block and replaces only the block', async () => {
    const dir = await gitRepo({'.gitignore': 'dist/\n', 'README.md': '# mine\n'})
    expect((await runCli(['init', '--dry-run', '--yes', '--dir', dir])).exitCode).toBe(0)
    const gi = await readFile(path.join(dir, '.gitignore'), 'utf8')
    await writeFile(path.join(dir, '.gitignore'), gi.replace('backups/\n', '') + '*.log\n')
    expect((await runCli(['init', '--dry-run', '--yes', '--dir', dir])).exitCode).toBe(0)
    expect(await readFile(path.join(dir, '.gitignore'), 'utf8')).toBe(gi + '*.log\n')
  })

  it('refuses a terraform/ directory it did not write, naming --dir, and writes nothing', async () => {
    // Given a repository with its own Terraform configuration and no autolabs.yaml
    const dir = await gitRepo({'terraform/main.tf': 'resource "null_resource" "mine" {}\n', '.gitignore': '.env\n'})
    const before = await snapshotTree(dir)
    const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain(`${path.join(dir, 'terraform')} already exists (main.tf)`)
    expect(r.stderr).toContain('--dir')
    expect(await snapshotTree(dir)).toEqual(before)
  })

  it('refuses an autolabs.yaml that is not an autolabs configuration, naming --dir', async () => {
    const dir = await gitRepo({'autolabs.yaml': 'labs:\n  - name: intro\n'})
    const before = await snapshotTree(dir)
    const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toContain('is not an autolabs configuration')
    expect(r.stderr).toContain('--dir')
    expect(await snapshotTree(dir)).toEqual(before)
  })

  it("updates a workspace's own terraform/ and replaces the .gitignore an older autolabs wrote whole", async () => {
    const dir = await gitRepo({'README.md': '# lab\n'})
    expect((await runCli(['init', '--dry-run', '--yes', '--dir', dir])).exitCode).toBe(0)
    const {GITIGNORE} = await import('../../../src/steps/render-workspace.js')
    await writeFile(path.join(dir, '.gitignore'), GITIGNORE.replace('# autolabs.yaml and', '# autolabs workspace: autolabs.yaml and'))
    const r = await runCli(['init', '--dry-run', '--yes', '--dir', dir])
    expect(r.exitCode, r.stderr).toBe(0)
    const gi = await readFile(path.join(dir, '.gitignore'), 'utf8')
    expect(gi.startsWith('# >>> autolabs')).toBe(true)
    expect(gi.match(/\.autolabs\//g)).toHaveLength(1)
  })
})
