import {describe, expect, it} from 'vitest'

import {foldProgress, formatDiagnostics, LineSplitter, parseUiLine, type ResourceProgress, type UiEvent} from '../../../src/terraform/events.js'

// Lines in the shapes Terraform 1.11 prints with -json (machine-readable UI 1.2).
const res = (addr: string) => {
  const [type, name] = addr.split('.')
  return {addr, module: '', resource: addr, implied_provider: 'proxmox', resource_type: type, resource_name: name, resource_key: null}
}
const line = (o: Record<string, unknown>) => JSON.stringify({'@level': 'info', '@module': 'terraform.ui', '@timestamp': '2026-11-25T19:00:00.000000+00:00', ...o})
const VM = 'proxmox_virtual_environment_vm.gitlab'

const STREAM = [
  line({'@message': 'Terraform 1.11.4', type: 'version', terraform: '1.11.4', ui: '1.2'}),
  line({'@message': `${VM}: Plan to create`, type: 'planned_change', change: {resource: res(VM), action: 'create'}}),
  line({'@message': 'Plan: 1 to add, 0 to change, 0 to destroy.', type: 'change_summary', changes: {add: 1, change: 0, import: 0, remove: 0, operation: 'plan'}}),
  line({'@message': `${VM}: Creating...`, type: 'apply_start', hook: {resource: res(VM), action: 'create'}}),
  line({'@message': `${VM}: Still creating... [10s elapsed]`, type: 'apply_progress', hook: {resource: res(VM), action: 'create', elapsed_seconds: 10}}),
  line({'@message': `${VM}: Creation complete after 12s [id=110]`, type: 'apply_complete', hook: {resource: res(VM), action: 'create', id_key: 'id', id_value: '110', elapsed_seconds: 12}}),
  line({'@message': 'Apply complete! Resources: 1 added, 0 changed, 0 destroyed.', type: 'change_summary', changes: {add: 1, change: 0, import: 0, remove: 0, operation: 'apply'}}),
]

describe('parseUiLine', () => {
  it('reads every event type of an apply in order, with the fields the progress display needs', () => {
    const events = STREAM.map(parseUiLine)
    expect(events.map((e) => e?.type)).toEqual(['version', 'planned_change', 'change_summary', 'apply_start', 'apply_progress', 'apply_complete', 'change_summary'])
    expect(events[0]).toMatchObject({terraform: '1.11.4', ui: '1.2'})
    expect(events[1]).toMatchObject({addr: VM, action: 'create'})
    expect(events[4]).toMatchObject({addr: VM, elapsedSeconds: 10})
    expect(events[5]).toMatchObject({addr: VM, elapsedSeconds: 12, idKey: 'id', idValue: '110'})
    expect(events[6]).toMatchObject({add: 1, change: 0, remove: 0, operation: 'apply'})
  })

  it('reads an apply_errored and the error diagnostic that follows it', () => {
    const errored = parseUiLine(line({'@level': 'error', '@message': `${VM}: Creation errored after 3s`, type: 'apply_errored', hook: {resource: res(VM), action: 'create', elapsed_seconds: 3}}))
    expect(errored).toMatchObject({type: 'apply_errored', addr: VM, elapsedSeconds: 3})
    const d = parseUiLine(
      line({
        '@level': 'error',
        '@message': 'Error: error cloning VM: received an HTTP 500 response',
        type: 'diagnostic',
        diagnostic: {severity: 'error', summary: 'error cloning VM: received an HTTP 500 response', detail: "can't lock file", address: VM, range: {filename: 'gitlab-vm.tf', start: {line: 3, column: 1, byte: 40}, end: {line: 3, column: 2, byte: 41}}},
      }),
    )
    expect(d).toMatchObject({type: 'diagnostic', severity: 'error', summary: 'error cloning VM: received an HTTP 500 response', detail: "can't lock file", address: VM, file: 'gitlab-vm.tf', line: 3})
    expect(formatDiagnostics([d as Extract<UiEvent, {type: 'diagnostic'}>])).toBe(`Error: error cloning VM: received an HTTP 500 response (${VM})\n    can't lock file`)
  })

  it('ignores non-JSON lines and keeps unknown event types (the format only adds within UI 1.x)', () => {
    expect(parseUiLine('Terraform has been successfully initialized!')).toBeUndefined()
    expect(parseUiLine('{not json')).toBeUndefined()
    expect(parseUiLine('{"no":"type"}')).toBeUndefined()
    expect(parseUiLine(line({'@message': 'Refreshing state...', type: 'refresh_start', hook: {resource: res(VM)}}))).toMatchObject({type: 'other', rawType: 'refresh_start'})
  })

  it('skips warnings when formatting the failure summary', () => {
    const w = parseUiLine(line({'@level': 'warn', type: 'diagnostic', diagnostic: {severity: 'warning', summary: 'agent timeout', detail: ''}})) as Extract<UiEvent, {type: 'diagnostic'}>
    expect(formatDiagnostics([w])).toBe('')
  })
})

describe('LineSplitter', () => {
  it('reassembles lines split across chunks', () => {
    const lines: string[] = []
    const s = new LineSplitter()
    const text = STREAM.join('\n') + '\n'
    for (let i = 0; i < text.length; i += 7) s.push(text.slice(i, i + 7), (l) => lines.push(l))
    s.flush((l) => lines.push(l))
    expect(lines).toEqual(STREAM)
  })
})

describe('foldProgress', () => {
  it('turns the stream into per-resource status: planned → running (elapsed) → done with id', () => {
    const state = new Map<string, ResourceProgress>()
    const snapshots: string[] = []
    for (const l of STREAM) {
      foldProgress(state, parseUiLine(l)!)
      const p = state.get(VM)
      if (p) snapshots.push(`${p.status}:${p.elapsedSeconds}`)
    }
    expect(snapshots).toEqual(['planned:0', 'planned:0', 'running:0', 'running:10', 'done:12', 'done:12'])
    expect(state.get(VM)?.id).toBe('110')
  })
})

describe('progressLine', () => {
  it('says what happens to which VM in words, and nothing for bookkeeping events', async () => {
    const {progressLine} = await import('../../../src/terraform/events.js')
    const lines = STREAM.map((l) => progressLine(parseUiLine(l)!))
    expect(lines).toEqual([undefined, undefined, undefined, 'VM gitlab: creating…', 'VM gitlab: still creating (10 s)', 'VM gitlab: created in 12 s [id 110]', undefined])
    const tpl = parseUiLine(line({type: 'apply_start', hook: {resource: res('proxmox_virtual_environment_vm.template'), action: 'create'}}))!
    expect(progressLine(tpl)).toBe('template VM: creating…')
    const snippet = parseUiLine(line({type: 'apply_errored', hook: {resource: {addr: 'proxmox_virtual_environment_file.user_data["k8s"]'}, action: 'create', elapsed_seconds: 2}}))!
    expect(progressLine(snippet)).toBe('cloud-init snippet k8s: FAILED after 2 s')
  })
})
