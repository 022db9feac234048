import {ExitCode, UserError} from '../errors.js'

/**
 * Errors from the Proxmox API, each saying what happened and what to do. All are UserErrors
 * (the user can act on them); `status` is the HTTP status where there was one.
 */
export class ProxmoxError extends UserError {
  readonly status: number | undefined
  readonly method: string
  readonly path: string
  constructor(message: string, opts: {status?: number; method: string; path: string; suggestion?: string; exitCode?: number; cause?: unknown}) {
    super(message, {suggestion: opts.suggestion, exitCode: opts.exitCode, cause: opts.cause})
    this.name = 'ProxmoxError'
    this.status = opts.status
    this.method = opts.method
    this.path = opts.path
  }
}

/** 401: wrong, expired or revoked credentials. */
export class ProxmoxAuthError extends ProxmoxError {
  constructor(url: string, who: string, reason: string, req: {method: string; path: string}) {
    super(`Proxmox at ${url} rejected the credentials of ${who} (401 ${reason}).`, {
      ...req,
      status: 401,
      suggestion:
        'Check the token ID and secret (Datacenter → Permissions → API Tokens) or the password, and that the user and token are enabled and not expired. ' +
        'Pass them again with --proxmox-token-id and AUTOLABS_PROXMOX_TOKEN_SECRET (or --proxmox-token-secret-file).',
    })
    this.name = 'ProxmoxAuthError'
  }
}

/** 403: the user/token lacks a privilege on an ACL path. */
export class ProxmoxPermissionError extends ProxmoxError {
  readonly privilege: string | undefined
  readonly aclPath: string | undefined
  constructor(who: string, reason: string, req: {method: string; path: string}) {
    const m = /Permission check failed \(([^,]+),\s*([^)]+)\)/.exec(reason)
    const aclPath = m?.[1]
    const privilege = m?.[2]
    super(
      privilege
        ? `${who} lacks the privilege ${privilege} on ${aclPath} (needed for ${req.method} ${req.path}).`
        : `${who} is not allowed to ${req.method} ${req.path} (403 ${reason}).`,
      {
        ...req,
        status: 403,
        suggestion: privilege
          ? `Grant it, e.g. \`pveum acl modify ${aclPath} --tokens '${who}' --roles <a role with ${privilege}>\` (a token with privilege separation needs the ACL for the token itself, not only for its user).`
          : 'Give the user or token a role with the needed privileges (Datacenter → Permissions).',
      },
    )
    this.name = 'ProxmoxPermissionError'
    this.privilege = privilege
    this.aclPath = aclPath
  }
}

/** 400: Proxmox rejected parameters. Usually a bug in autolabs or a value the user entered. */
export class ProxmoxParameterError extends ProxmoxError {
  readonly errors: Record<string, string>
  constructor(errors: Record<string, string>, req: {method: string; path: string}) {
    const list = Object.entries(errors).map(([k, v]) => `  - ${k}: ${v.trim()}`)
    super(`Proxmox rejected ${req.method} ${req.path}: parameter verification failed:\n${list.join('\n')}`, {
      ...req,
      status: 400,
      suggestion: 'If a value above comes from autolabs.yaml or a flag, fix it there; otherwise this is a bug in autolabs — re-run with --verbose and report it.',
    })
    this.name = 'ProxmoxParameterError'
    this.errors = errors
  }
}

/** 501: the server has no such endpoint — an older PVE. */
export class ProxmoxNotImplementedError extends ProxmoxError {
  constructor(url: string, serverVersion: string | undefined, needs: string | undefined, req: {method: string; path: string}) {
    super(
      `Proxmox at ${url}${serverVersion ? ` (PVE ${serverVersion})` : ''} does not implement ${req.method} ${req.path}${needs ? `; it needs PVE ${needs}` : ''}.`,
      {...req, status: 501, suggestion: `Upgrade Proxmox VE to ${needs ?? 'a supported version (9.x, or 8.4)'}: https://pve.proxmox.com/wiki/Upgrade_from_8_to_9`},
    )
    this.name = 'ProxmoxNotImplementedError'
  }
}

/** 500 and other server-side failures: the server's reason is the message. */
export class ProxmoxServerError extends ProxmoxError {
  readonly reason: string
  constructor(status: number, reason: string, req: {method: string; path: string}) {
    super(`Proxmox failed ${req.method} ${req.path}: ${reason}`, {...req, status, suggestion: suggestionFor(reason)})
    this.name = 'ProxmoxServerError'
    this.reason = reason
  }
}

/** No HTTP answer: DNS, refused, timeout, TLS handshake. */
export class ProxmoxUnreachableError extends ProxmoxError {
  readonly waitedMs: number
  readonly reason: string
  constructor(url: string, waitedMs: number, reason: string, req: {method: string; path: string}) {
    super(`Cannot reach Proxmox at ${url} (waited ${(waitedMs / 1000).toFixed(1)} s): ${reason}.`, {
      ...req,
      exitCode: ExitCode.unreachable,
      suggestion: 'Check the URL and port (usually https://<host>:8006), that pveproxy runs, and that no firewall blocks this machine.',
    })
    this.name = 'ProxmoxUnreachableError'
    this.waitedMs = waitedMs
    this.reason = reason
  }
}

/** The server presented a certificate other than the pinned one. */
export class CertificateMismatchError extends UserError {
  readonly expected: string
  readonly actual: string
  constructor(url: string, expected: string, actual: string) {
    super(`The TLS certificate of ${url} does not match the pinned fingerprint.\n  expected: ${expected}\n  got:      ${actual}`, {
      suggestion:
        'If you re-installed Proxmox or renewed its certificate, verify the new fingerprint on the host (`pvenode cert info`, the "Fingerprint" of pveproxy-ssl.pem or pve-ssl.pem) ' +
        'and put it in autolabs.yaml (proxmox.fingerprint) or pass --proxmox-fingerprint. Otherwise something is intercepting the connection: do not continue.',
    })
    this.name = 'CertificateMismatchError'
    this.expected = expected
    this.actual = actual
  }
}

/** The certificate is not trusted and nothing pins it. */
export class UntrustedCertificateError extends UserError {
  readonly fingerprint: string | undefined
  readonly reason: string
  constructor(url: string, reason: string, fingerprint?: string) {
    super(`The TLS certificate of ${url} is not trusted (${reason}).`, {
      suggestion: fingerprint
        ? `Compare it with the host's certificate (\`pvenode cert info\` on the node) and, if it matches, pass --proxmox-fingerprint ${fingerprint} (or set proxmox.fingerprint in autolabs.yaml, or proxmox.caFile to your CA).`
        : 'Pass --proxmox-fingerprint with the SHA-256 fingerprint shown by `pvenode cert info`, or set proxmox.caFile in autolabs.yaml.',
    })
    this.name = 'UntrustedCertificateError'
    this.fingerprint = fingerprint
    this.reason = reason
  }
}

/** A worker task ended with an error. */
export class ProxmoxTaskError extends UserError {
  readonly upid: string
  readonly exitstatus: string
  readonly logTail: string[]
  constructor(upid: string, exitstatus: string, logTail: string[], what?: string) {
    super(`Proxmox task ${what ?? taskType(upid)} failed: ${exitstatus}${logTail.length ? `\nTask log (last ${logTail.length} lines):\n${logTail.map((l) => `  ${l}`).join('\n')}` : ''}`, {
      suggestion: `${suggestionFor(exitstatus) ?? 'Read the task log in the Proxmox web UI (node → Task History)'}; task ${upid}.`,
    })
    this.name = 'ProxmoxTaskError'
    this.upid = upid
    this.exitstatus = exitstatus
    this.logTail = logTail
  }
}

export class ProxmoxTaskTimeoutError extends UserError {
  readonly upid: string
  constructor(upid: string, waitedMs: number) {
    super(`Proxmox task ${taskType(upid)} did not finish within ${Math.round(waitedMs / 1000)} s.`, {
      suggestion: `It may still be running on the server: check node → Task History in the Proxmox web UI (task ${upid}), then re-run; autolabs resumes where it stopped.`,
    })
    this.name = 'ProxmoxTaskTimeoutError'
    this.upid = upid
  }
}

export function taskType(upid: string): string {
  const parts = upid.split(':')
  return parts.length >= 8 ? `${parts[5]}${parts[6] ? ` ${parts[6]}` : ''}` : upid
}

function suggestionFor(reason: string): string | undefined {
  if (/VM is locked \((\w+)\)/.test(reason))
    return 'Another operation holds the VM lock: wait for it to finish (Task History), or if it crashed, clear it on the host with `qm unlock <vmid>`'
  if (/already exists/.test(reason)) return 'Something with that ID already exists: pick another ID in autolabs.yaml or remove the old one'
  if (/does not exist/.test(reason)) return 'Check the name/ID in autolabs.yaml against what the Proxmox web UI shows'
  if (/no space left|not enough space/i.test(reason)) return 'Free space on the storage or choose another one (proxmox.vmStorage)'
  return undefined
}
