/**
 * Terraform's machine-readable UI (`plan -json`, `apply -json`, `destroy -json`): one JSON
 * object per line with @level, @message, @module, @timestamp and a `type`. Parsed into a
 * small union; unknown types are kept as `other` (the format promises only additions within
 * UI major version 1).
 * Reference: developer.hashicorp.com/terraform/internals/machine-readable-ui
 */

export type ChangeAction = 'noop' | 'create' | 'read' | 'update' | 'replace' | 'delete' | 'move' | 'import' | 'forget' | 'remove'

interface Base {
  level: string
  message: string
  timestamp: string
}

export type UiEvent =
  | (Base & {type: 'version'; terraform: string; ui: string})
  | (Base & {type: 'planned_change'; addr: string; action: ChangeAction})
  | (Base & {type: 'apply_start'; addr: string; action: ChangeAction; idKey?: string; idValue?: string})
  | (Base & {type: 'apply_progress'; addr: string; action: ChangeAction; elapsedSeconds: number})
  | (Base & {type: 'apply_complete'; addr: string; action: ChangeAction; elapsedSeconds: number; idKey?: string; idValue?: string})
  | (Base & {type: 'apply_errored'; addr: string; action: ChangeAction; elapsedSeconds: number})
  | (Base & {type: 'change_summary'; add: number; change: number; remove: number; import: number; operation: 'plan' | 'apply' | 'destroy' | string})
  | (Base & {type: 'diagnostic'; severity: 'error' | 'warning'; summary: string; detail: string; address?: string; file?: string; line?: number})
  | (Base & {type: 'outputs'; outputs: Record<string, {value?: unknown; type?: unknown; sensitive: boolean}>})
  | (Base & {type: 'other'; raw: Record<string, unknown>; rawType: string})

export type UiEventType = UiEvent['type']

type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

function hookFields(j: Json): {addr: string; action: ChangeAction; elapsedSeconds: number; idKey?: string; idValue?: string} {
  const hook = (j.hook ?? {}) as Json
  return {
    addr: String(hook.resource?.addr ?? ''),
    action: String(hook.action ?? 'noop') as ChangeAction,
    elapsedSeconds: Number(hook.elapsed_seconds ?? 0),
    ...(hook.id_key ? {idKey: String(hook.id_key), idValue: String(hook.id_value ?? '')} : {}),
  }
}

/** One line of the stream → an event; undefined for a line that is not a JSON object. */
export function parseUiLine(line: string): UiEvent | undefined {
  const text = line.trim()
  if (!text.startsWith('{')) return undefined
  let j: Json
  try {
    j = JSON.parse(text) as Json
  } catch {
    return undefined
  }
  if (!j || typeof j !== 'object' || typeof j.type !== 'string') return undefined
  const base: Base = {level: String(j['@level'] ?? 'info'), message: String(j['@message'] ?? ''), timestamp: String(j['@timestamp'] ?? '')}
  switch (j.type) {
    case 'version':
      return {...base, type: 'version', terraform: String(j.terraform ?? j.tofu ?? ''), ui: String(j.ui ?? '')}
    case 'planned_change':
      return {...base, type: 'planned_change', addr: String(j.change?.resource?.addr ?? ''), action: String(j.change?.action ?? 'noop') as ChangeAction}
    case 'apply_start': {
      const h = hookFields(j)
      return {...base, type: 'apply_start', addr: h.addr, action: h.action, ...(h.idKey ? {idKey: h.idKey, idValue: h.idValue} : {})}
    }
    case 'apply_progress': {
      const h = hookFields(j)
      return {...base, type: 'apply_progress', addr: h.addr, action: h.action, elapsedSeconds: h.elapsedSeconds}
    }
    case 'apply_complete':
      return {...base, type: 'apply_complete', ...hookFields(j)}
    case 'apply_errored': {
      const h = hookFields(j)
      return {...base, type: 'apply_errored', addr: h.addr, action: h.action, elapsedSeconds: h.elapsedSeconds}
    }
    case 'change_summary':
      return {
        ...base,
        type: 'change_summary',
        add: Number(j.changes?.add ?? 0),
        change: Number(j.changes?.change ?? 0),
        remove: Number(j.changes?.remove ?? 0),
        import: Number(j.changes?.import ?? 0),
        operation: String(j.changes?.operation ?? ''),
      }
    case 'diagnostic': {
      const d = (j.diagnostic ?? {}) as Json
      return {
        ...base,
        type: 'diagnostic',
        severity: d.severity === 'warning' ? 'warning' : 'error',
        summary: String(d.summary ?? base.message),
        detail: String(d.detail ?? ''),
        ...(d.address ? {address: String(d.address)} : {}),
        ...(d.range?.filename ? {file: String(d.range.filename), line: Number(d.range.start?.line ?? 0)} : {}),
      }
    }
    case 'outputs':
      return {...base, type: 'outputs', outputs: (j.outputs ?? {}) as Record<string, {sensitive: boolean}>}
    default:
      return {...base, type: 'other', rawType: j.type, raw: j}
  }
}

/** Splits a byte stream into lines across chunk boundaries. */
export class LineSplitter {
  private rest = ''
  push(chunk: string, onLine: (line: string) => void): void {
    const parts = (this.rest + chunk).split('\n')
    this.rest = parts.pop() ?? ''
    for (const p of parts) onLine(p.replace(/\r$/, ''))
  }
  flush(onLine: (line: string) => void): void {
    if (this.rest) onLine(this.rest)
    this.rest = ''
  }
}

/** "Error: summary (at address): detail" lines for the errors among the diagnostics. */
export function formatDiagnostics(diags: Array<Extract<UiEvent, {type: 'diagnostic'}>>): string {
  return diags
    .filter((d) => d.severity === 'error')
    .map((d) => {
      const where = d.address ? ` (${d.address})` : d.file ? ` (${d.file}:${d.line})` : ''
      const detail = d.detail ? `\n    ${d.detail.trim().split('\n').join('\n    ')}` : ''
      return `Error: ${d.summary}${where}${detail}`
    })
    .join('\n')
}

/** Per-resource progress, folded from the events: what a task list shows. */
export interface ResourceProgress {
  addr: string
  action: ChangeAction
  status: 'planned' | 'running' | 'done' | 'failed'
  elapsedSeconds: number
  id?: string
}

export function foldProgress(state: Map<string, ResourceProgress>, e: UiEvent): Map<string, ResourceProgress> {
  switch (e.type) {
    case 'planned_change':
      if (!state.has(e.addr)) state.set(e.addr, {addr: e.addr, action: e.action, status: 'planned', elapsedSeconds: 0})
      break
    case 'apply_start':
      state.set(e.addr, {addr: e.addr, action: e.action, status: 'running', elapsedSeconds: 0})
      break
    case 'apply_progress': {
      const cur = state.get(e.addr) ?? {addr: e.addr, action: e.action, status: 'running' as const, elapsedSeconds: 0}
      state.set(e.addr, {...cur, status: 'running', elapsedSeconds: e.elapsedSeconds})
      break
    }
    case 'apply_complete':
      state.set(e.addr, {addr: e.addr, action: e.action, status: 'done', elapsedSeconds: e.elapsedSeconds, id: e.idValue})
      break
    case 'apply_errored':
      state.set(e.addr, {addr: e.addr, action: e.action, status: 'failed', elapsedSeconds: e.elapsedSeconds})
      break
    default:
      break
  }
  return state
}

const ACTION_WORDS: Partial<Record<ChangeAction, [string, string]>> = {
  create: ['creating', 'created'],
  update: ['updating', 'updated'],
  replace: ['replacing', 'replaced'],
  delete: ['destroying', 'destroyed'],
  read: ['reading', 'read'],
}

/** resource address → what a person calls it: "proxmox_virtual_environment_vm.gitlab" → "VM gitlab". */
export function resourceTitle(addr: string): string {
  const m = /^(?:module\.[^.]+\.)*([a-z0-9_]+)\.([a-z0-9_]+)(?:\["([^"]+)"\])?$/.exec(addr)
  if (!m) return addr
  const [, type, name, key] = m
  const kind =
    type === 'proxmox_virtual_environment_vm' ? (name === 'template' ? 'template VM' : 'VM') : type === 'proxmox_download_file' ? 'cloud image' : type === 'proxmox_virtual_environment_file' ? 'cloud-init snippet' : type
  return name === 'template' || type === 'proxmox_download_file' ? kind : `${kind} ${key ?? name}`
}

/** One short progress line per event worth showing (undefined for the rest). */
export function progressLine(e: UiEvent): string | undefined {
  switch (e.type) {
    case 'apply_start':
      return `${resourceTitle(e.addr)}: ${ACTION_WORDS[e.action]?.[0] ?? e.action}…`
    case 'apply_progress':
      return `${resourceTitle(e.addr)}: still ${ACTION_WORDS[e.action]?.[0] ?? e.action} (${e.elapsedSeconds} s)`
    case 'apply_complete':
      return `${resourceTitle(e.addr)}: ${ACTION_WORDS[e.action]?.[1] ?? 'done'} in ${e.elapsedSeconds} s${e.idValue ? ` [id ${e.idValue}]` : ''}`
    case 'apply_errored':
      return `${resourceTitle(e.addr)}: FAILED after ${e.elapsedSeconds} s`
    case 'diagnostic':
      return e.severity === 'warning' ? `warning: ${e.summary}${e.address ? ` (${resourceTitle(e.address)})` : ''}` : undefined
    default:
      return undefined
  }
}
