/** The jump host setting's syntax (no SSH library here: config validation and preflight use it). */

/** The name the jump host's key is pinned under in known_hosts (`autolabs hosts forget jump-host`). */
export const JUMP_HOST_NAME = 'jump-host'

export interface JumpSpec {
  user: string
  host: string
  port: number
}

/** `user@host[:port]` (IPv6 in brackets: `root@[fd00::1]:22`); the user defaults to root. */
export function parseJumpHost(value: string): JumpSpec | string {
  const m = /^(?:([a-z_][a-z0-9_.-]{0,31})@)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::(\d{1,5}))?$/.exec(value.trim())
  if (!m) return 'must be auto, none, or user@host[:port] (e.g. root@pve.example.lan or admin@10.0.0.2:2222)'
  const port = m[3] ? Number(m[3]) : 22
  if (port < 1 || port > 65535) return 'the port must be 1–65535'
  return {user: m[1] ?? 'root', host: m[2].replace(/^\[|\]$/g, ''), port}
}

/** `user@host` (port 22) or `user@[host]:port`, as known_hosts and ssh -J write it. */
export function formatJump(j: JumpSpec): string {
  return `${j.user}@${j.port === 22 ? j.host : `[${j.host}]:${j.port}`}`
}
