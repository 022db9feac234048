/**
 * Which way SSH goes to the VMs: straight from this machine, or through a jump host.
 *
 *   ssh.jumpHost: auto            (default) direct when this machine reaches the VMs' network,
 *                                 else through the Proxmox node (root@<proxmox.url host>:22)
 *   ssh.jumpHost: none            always direct
 *   ssh.jumpHost: admin@pve:2222  always through that machine
 *
 * `auto` decides with a TCP probe to port 22 of the gateway and the VMs' addresses: an answer
 * (connected, or refused — a host answered) means a route exists. Only node:net here: preflight
 * loads this without the SSH library.
 */
import net from 'node:net'

import type {Config} from '../config/schema.js'
import {type JumpSpec, formatJump, parseJumpHost} from './jump-spec.js'

export type SshRoute = {kind: 'direct'; why: string} | {kind: 'jump'; jump: JumpSpec; why: string}

/** A TCP probe: undefined when the port accepted, else the reason ("connection refused", …). */
export type TcpProbe = (host: string, port: number, timeoutMs: number) => Promise<string | undefined>

/** The setting in force: AUTOLABS_SSH_JUMP_HOST / --ssh-jump-host over ssh.jumpHost. */
export function jumpSetting(config: Config, override?: string): {value: string; source: string} {
  if (override !== undefined && override !== '') return {value: override, source: '--ssh-jump-host (AUTOLABS_SSH_JUMP_HOST)'}
  return {value: config.ssh.jumpHost, source: 'ssh.jumpHost'}
}

/** The Proxmox node as a jump host: root on port 22 of proxmox.url's host. */
export function proxmoxNodeJump(config: Config): JumpSpec {
  return {user: 'root', host: new URL(config.proxmox.url).hostname.replace(/^\[|\]$/g, ''), port: 22}
}

export const tcpProbe: TcpProbe = (host, port, timeoutMs) =>
  new Promise((resolve) => {
    const sock = net.connect({host, port})
    const t = setTimeout(() => {
      sock.destroy()
      resolve('no answer (timed out)')
    }, timeoutMs)
    sock.once('connect', () => {
      clearTimeout(t)
      sock.destroy()
      resolve(undefined)
    })
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(t)
      resolve(
        err.code === 'ECONNREFUSED'
          ? 'connection refused'
          : err.code === 'EHOSTUNREACH' || err.code === 'ENETUNREACH'
            ? 'host unreachable'
            : err.code === 'ETIMEDOUT'
              ? 'no answer (timed out)'
              : err.message,
      )
    })
  })

/**
 * Decides the route. `addresses` are the VMs' addresses (state.json, else autolabs.yaml); the
 * gateway is probed too, since before the VMs exist only it can answer.
 */
export async function chooseRoute(
  config: Config,
  addresses: string[],
  opts: {override?: string; probe?: TcpProbe; timeoutMs?: number} = {},
): Promise<SshRoute> {
  const {value, source} = jumpSetting(config, opts.override)
  if (value === 'none') return {kind: 'direct', why: `${source} is "none"`}
  if (value !== 'auto') {
    const jump = parseJumpHost(value)
    if (typeof jump === 'string') throw new Error(`${source}: ${jump}`) // validated with the config; a flag is checked here
    return {kind: 'jump', jump, why: `${source} is ${formatJump(jump)}`}
  }
  const probe = opts.probe ?? tcpProbe
  const timeoutMs = opts.timeoutMs ?? 3000
  const targets = [...new Set([config.network.gateway, ...addresses])]
  const answers = await firstAnswer(targets, (h) => probe(h, 22, timeoutMs))
  const reached = answers.find((a) => a.reason === undefined || a.reason === 'connection refused')
  if (reached) {
    return {kind: 'direct', why: `${source} is auto and ${reached.host}:22 answers from this machine (${reached.reason ?? 'connected'})`}
  }
  const jump = proxmoxNodeJump(config)
  const tried = answers.map((a) => `${a.host}:22 ${a.reason}`).join(', ')
  return {kind: 'jump', jump, why: `${source} is auto and this machine has no route to ${config.network.subnet} (${tried}): through the Proxmox node`}
}

/** Probes all at once; resolves as soon as one host answers, else when all have failed. */
function firstAnswer(hosts: string[], probe: (h: string) => Promise<string | undefined>): Promise<Array<{host: string; reason?: string}>> {
  return new Promise((resolve) => {
    const results: Array<{host: string; reason?: string}> = []
    for (const host of hosts) {
      void probe(host).then((reason) => {
        results.push({host, reason})
        if (reason === undefined || reason === 'connection refused' || results.length === hosts.length) resolve(results)
      })
    }
  })
}

/** A preflight line: which way SSH will go and why, before anything is created. */
export async function sshRouteCheck(
  config: Config,
  opts: {override?: string; probe?: TcpProbe; timeoutMs?: number} = {},
): Promise<{id: string; title: string; status: 'pass' | 'warn' | 'fail'; detail: string; fix?: string}> {
  const title = 'SSH path to the VMs'
  let route: SshRoute
  try {
    route = await chooseRoute(config, Object.values(config.network.vms).map((v) => v.ip), opts)
  } catch (error) {
    return {id: 'ssh-route', title, status: 'fail', detail: (error as Error).message, fix: 'Set ssh.jumpHost to auto, none or user@host[:port].'}
  }
  if (route.kind === 'direct') return {id: 'ssh-route', title, status: 'pass', detail: `direct: ${route.why}`}
  const probe = opts.probe ?? tcpProbe
  const answer = await probe(route.jump.host, route.jump.port, opts.timeoutMs ?? 3000)
  if (answer) {
    return {
      id: 'ssh-route',
      title,
      status: 'fail',
      detail: `through the jump host ${formatJump(route.jump)} (${route.why}), but ${route.jump.host}:${route.jump.port} does not answer: ${answer}`,
      fix: 'Set ssh.jumpHost to a machine this one reaches that reaches the VMs (user@host[:port]), or "none" if the VMs are routed to this machine.',
    }
  }
  return {id: 'ssh-route', title, status: 'pass', detail: `through the jump host ${formatJump(route.jump)}: ${route.why}`}
}

