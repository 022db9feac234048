import {spawnSync} from 'node:child_process'
import {copyFile, mkdir, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {ASSETS_DIR} from '../../../src/render/cloud-init.js'
import {terraformVariables} from '../../../src/render/terraform.js'
import {removeDir, tempDir} from '../../support/cli.js'
import {missing, REAL_TERRAFORM} from '../../support/tools.js'
import {defaultConfig, KEY} from '../../unit/render/fixtures.js'
import {FAKE_TERRAFORM} from './helpers.js'

/**
 * The fake terraform converts tfvars to the declared variable types as the real one does. Both
 * run the same configuration — variables and one output, no provider, so the real terraform
 * needs no download and no init — on the same terraform.tfvars.json: `apply -auto-approve`, then
 * `output -json`. They must agree on every case: accepted or refused, the converted value
 * (optional attributes filled in, extra ones dropped), and the message of a refusal.
 */
const TYPES_TF = `
variable "b" {
  type    = bool
  default = false
}
variable "n" {
  type    = number
  default = 1
}
variable "s" {
  type    = string
  default = "x"
}
variable "l" {
  type    = list(string)
  default = []
}
variable "m" {
  type    = map(object({ a = number, b = optional(string, "d") }))
  default = {}
}
variable "o" {
  type    = object({ p = number, q = optional(list(number)) })
  default = { p = 1 }
}
variable "t" {
  type    = object({ x = string, y = string, z = string })
  default = { x = "", y = "", z = "" }
}
output "all" {
  value = { b = var.b, n = var.n, s = var.s, l = var.l, m = var.m, o = var.o, t = var.t }
}
`

/** The rendered tfvars' non-sensitive variables, echoed back (sensitive ones cannot be outputs). */
const ECHO_TF = `output "all" {
  value = { insecure = var.proxmox_insecure, network = var.network, image = var.image, vms = var.vms, template = var.template, clone_retries = var.clone_retries, keys = var.ssh_public_keys }
}
`

const TYPE_CASES: Array<[string, unknown]> = [
  ['defaults', {}],
  ['bool from "true", "1" and "0"', {b: 'true'}],
  ['bool from "1"', {b: '1'}],
  ['bool from "0"', {b: '0'}],
  ['bool "maybe"', {b: 'maybe'}],
  ['bool "TRUE" (not lowercase)', {b: 'TRUE'}],
  ['bool from a number', {b: 1}],
  ['number from "5"', {n: '5'}],
  ['number 1.5', {n: 1.5}],
  ['number "x"', {n: 'x'}],
  ['number from a bool', {n: true}],
  ['string from a number and from a bool', {s: 5}],
  ['string from a bool', {s: true}],
  ['string from a list', {s: [1]}],
  ['list of mixed primitives', {l: [1, true, 'x']}],
  ['list from a string', {l: 'a'}],
  ['list of lists', {l: [[1]]}],
  ['null list', {l: null}],
  ['map of objects, extra attribute dropped, optional default filled', {m: {k: {a: 1, zz: 2}}}],
  ['optional attribute given as null takes its default', {m: {k: {a: '2', b: null}}}],
  ['map element with a bad number', {m: {k: {a: 'x'}}}],
  ['map element missing its required attribute', {m: {k: {}}}],
  ['map from a list', {m: []}],
  ['object with a bad list element', {o: {p: 1, q: ['a']}}],
  ['null object', {o: null}],
  ['object attribute null', {o: {p: null}}],
  ['object from a string', {o: 'x'}],
  ['two attributes missing', {t: {x: ''}}],
  ['three attributes missing', {t: {}}],
]

const env = {...process.env, CHECKPOINT_DISABLE: '1', TF_IN_AUTOMATION: '1', TF_CLI_CONFIG_FILE: '/dev/null'}
let root: string

beforeAll(async () => {
  root = await tempDir('autolabs-fake-types-')
})
afterAll(async () => removeDir(root))

interface Outcome {
  exit: number | null
  value?: unknown
  problem?: string
}

/** apply + output under one binary; a refusal is reduced to "var.X: message". */
async function outcome(bin: string, dir: string, tfvars: unknown): Promise<Outcome> {
  await rm(path.join(dir, 'terraform.tfstate'), {force: true})
  await writeFile(path.join(dir, 'terraform.tfvars.json'), JSON.stringify(tfvars))
  const run = (args: string[]) => spawnSync(bin, args, {cwd: dir, env, encoding: 'utf8', timeout: 60_000})
  const apply = run(['apply', '-auto-approve', '-input=false', '-no-color'])
  if (apply.status !== 0) {
    const text = (apply.stdout + apply.stderr).replace(/[│╷╵]/g, ' ').replace(/\s+/g, ' ')
    const m = /not suitable for (var\.\w+) declared (?:at \S+|in the root module): (.+?)\.(?: |$)/.exec(text)
    return {exit: apply.status, problem: m ? `${m[1]}: ${m[2]}` : text}
  }
  const out = run(['output', '-json'])
  return {exit: apply.status, value: (JSON.parse(out.stdout) as {all: {value: unknown}}).all.value}
}

async function twoDirs(name: string, files: Record<string, string>): Promise<{real: string; fake: string}> {
  const dirs = {real: path.join(root, `${name}-real`), fake: path.join(root, `${name}-fake`)}
  for (const d of Object.values(dirs)) {
    await mkdir(path.join(d, '.terraform'), {recursive: true}) // where the fake caches its parse
    for (const [f, text] of Object.entries(files)) await writeFile(path.join(d, f), text)
  }
  return dirs
}

describe.skipIf(missing('terraform', REAL_TERRAFORM === 'terraform'))('the fake terraform converts variable types like terraform 1.11', () => {
  let types: {real: string; fake: string}
  beforeAll(async () => {
    types = await twoDirs('types', {'main.tf': TYPES_TF})
  })

  it('has cases that accept and cases that refuse', () => {
    expect(TYPE_CASES.length).toBeGreaterThan(20)
  })

  it.each(TYPE_CASES)('%s', async (_name, tfvars) => {
    const [real, fake] = await Promise.all([outcome('terraform', types.real, tfvars), outcome(FAKE_TERRAFORM, types.fake, tfvars)])
    expect(fake).toEqual(real)
  })

  it("agrees on autolabs' own variables.tf: the rendered values, and each bad value refused with the same message", async () => {
    const dirs = await twoDirs('autolabs', {'echo.tf': ECHO_TF})
    for (const d of Object.values(dirs)) await copyFile(path.join(ASSETS_DIR, 'terraform', 'variables.tf'), path.join(d, 'variables.tf'))
    const good = terraformVariables(defaultConfig(), undefined, [KEY])
    const cases: unknown[] = [
      good,
      {...good, proxmox_insecure: 'maybe'},
      {...good, clone_retries: 'x'},
      {...good, clone_retries: '5'},
      {...good, vms: {...good.vms, k8s: {...good.vms.k8s, cores: 'many'}}},
      {...good, network: {...good.network, gateway: undefined}},
      {...good, ssh_public_keys: KEY},
      {...good, image: {...good.image, checksum_algorithm: undefined}},
    ]
    const outcomes: Array<[Outcome, Outcome]> = []
    for (const c of cases) outcomes.push(await Promise.all([outcome('terraform', dirs.real, c), outcome(FAKE_TERRAFORM, dirs.fake, c)]))
    for (const [real, fake] of outcomes) expect(fake).toEqual(real)
    // Not vacuous: the rendered values pass, "maybe" is refused as the issue reported.
    expect(outcomes[0]![0].exit).toBe(0)
    expect(outcomes[1]![0]).toMatchObject({exit: 1, problem: 'var.proxmox_insecure: a bool is required'})
  })
})
