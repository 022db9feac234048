import {type ChildProcess, spawn} from 'node:child_process'
import {cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'

import {afterAll, beforeAll, describe, expect, it} from 'vitest'

import {configSchema} from '../../src/config/schema.js'
import {envFileText, rolePorts} from '../../src/deploy/params.js'
import {ROOT, sh} from './deploy-support.js'

// The base stage's firewall step, run for real (ufw and iptables as Debian installs them) in
// network namespaces this test makes, then traffic: does a port that Docker publishes, or a
// Kubernetes hostPort, answer only the clients autolabs.yaml allows? Both are DNAT-ed and
// forwarded, so ufw's INPUT rules never see them.
//
// Docker and Calico cannot run here; their filter/nat layout is rebuilt with iptables exactly
// as their sources at the pinned versions program it (cited at each block below). The
// "container" and the "pod" are namespaces with a TCP server.
//
// One L2 segment 10.99.120.0/24 (a bridge in its own namespace): the VM subnet of the config
// is the lower half, an admin network is .192/27, and .130 is neither.
const X = 120
const NET = `10.99.${X}`
const SUBNET = `${NET}.0/25`
const ADMIN = `${NET}.192/27`
const NS = {lan: `al${X}-lan`, gitlab: `al${X}-gitlab`, k8s: `al${X}-k8s`, ctr: `al${X}-ctr`, pod: `al${X}-pod`, sub: `al${X}-sub`, adm: `al${X}-adm`, out: `al${X}-out`}
const IP = {gitlab: `${NET}.10`, k8s: `${NET}.30`, sub: `${NET}.20`, adm: `${NET}.200`, out: `${NET}.130`}
const CTR_IP = '10.99.121.2' // behind gitlab's docker0 (10.99.121.1)
const POD_IP = '10.99.122.2' // behind k8s's cali interface (10.99.122.1)
const CALI_IF = 'cali1a2b3c4d5e6'

const tools = ['/usr/sbin/ufw', '/usr/sbin/iptables', '/usr/sbin/ip', '/usr/bin/python3', '/usr/bin/timeout']
const missing = tools.filter((t) => !existsSync(t))
const why = process.getuid?.() !== 0 ? 'needs root (network namespaces, iptables)' : missing.length > 0 ? `needs ${missing.join(', ')} (apt-get install ufw iptables iproute2 python3)` : ''
if (why && process.env.CI && process.getuid?.() === 0) throw new Error(`firewall-published: ${why}`)

const config = configSchema.parse({network: {subnet: SUBNET, adminCidrs: [SUBNET, ADMIN]}})

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await sh(cmd, args, {timeoutMs: 60_000})
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}
const inNs = (ns: string, ...cmd: string[]) => must('ip', ['netns', 'exec', ns, ...cmd])
/** iptables lines (`-t table` then the rule), in order, in namespace ns. */
async function iptables(ns: string, rules: string[]): Promise<void> {
  for (const r of rules) await inNs(ns, 'iptables', ...r.split(' '))
}

/** Connects from a client namespace; 'open' when the server answered, else why not. */
async function connect(client: string, ip: string, port: number): Promise<string> {
  const r = await sh('ip', ['netns', 'exec', client, 'timeout', '3', 'bash', '-c', `exec 3<>/dev/tcp/${ip}/${port} && head -c 5 <&3`], {timeoutMs: 20_000})
  if (r.code === 0) return r.stdout === 'hello' ? 'open' : `answered ${JSON.stringify(r.stdout)}`
  return r.code === 124 ? 'dropped' : `refused (${r.stderr.trim()})`
}

describe.skipIf(Boolean(why))(`published ports obey autolabs.yaml, not only ufw's INPUT${why ? ` (skipped: ${why})` : ''}`, () => {
  const servers: ChildProcess[] = []
  const dir = mkdtempSync(path.join(os.tmpdir(), 'al-fw-'))

  /** A VM namespace on the LAN whose /etc/ufw and /etc/default are its own (ip netns exec binds /etc/netns/NAME/*). */
  async function vm(ns: string, ip: string): Promise<void> {
    const etc = `/etc/netns/${ns}`
    rmSync(etc, {recursive: true, force: true})
    mkdirSync(etc, {recursive: true})
    cpSync('/etc/ufw', `${etc}/ufw`, {recursive: true})
    cpSync('/etc/default', `${etc}/default`, {recursive: true})
    await must('ip', ['netns', 'add', ns])
    await must('ip', ['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `v-${ns}`, 'netns', NS.lan])
    await must('ip', ['-n', NS.lan, 'link', 'set', `v-${ns}`, 'master', 'br0', 'up'])
    await must('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
    for (const l of ['eth0', 'lo']) await must('ip', ['-n', ns, 'link', 'set', l, 'up'])
    await inNs(ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1')
  }
  async function client(ns: string, ip: string): Promise<void> {
    await must('ip', ['netns', 'add', ns])
    await must('ip', ['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `v-${ns}`, 'netns', NS.lan])
    await must('ip', ['-n', NS.lan, 'link', 'set', `v-${ns}`, 'master', 'br0', 'up'])
    await must('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
    for (const l of ['eth0', 'lo']) await must('ip', ['-n', ns, 'link', 'set', l, 'up'])
  }
  /** A namespace behind `host` on a point-to-point link `hostIf` (a container or a pod) with servers on `ports`. */
  async function backend(ns: string, host: string, hostIf: string, ip: string, ports: number[]): Promise<void> {
    const gw = ip.replace(/\.2$/, '.1')
    await must('ip', ['netns', 'add', ns])
    await must('ip', ['-n', host, 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    await must('ip', ['-n', host, 'addr', 'add', `${gw}/24`, 'dev', hostIf])
    await must('ip', ['-n', host, 'link', 'set', hostIf, 'up'])
    await must('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0'])
    for (const l of ['eth0', 'lo']) await must('ip', ['-n', ns, 'link', 'set', l, 'up'])
    await must('ip', ['-n', ns, 'route', 'add', 'default', 'via', gw])
    for (const port of ports) {
      // Answers "hello" to each connection; ends with the test (killed by pid in afterAll).
      const code = `import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('${ip}',${port}))\ns.listen(8)\ns.settimeout(600)\nwhile True:\n  c,_=s.accept()\n  c.sendall(b'hello')\n  c.close()\n`
      servers.push(spawn('ip', ['netns', 'exec', ns, 'python3', '-c', code], {stdio: 'ignore'}))
    }
  }
  /** The real base stage's firewall step in VM namespace ns, with the role's parameters. */
  async function firewallStep(ns: string, role: 'gitlab' | 'k8s', ip: string): Promise<string> {
    const ports = rolePorts(role, config)
    const env = path.join(dir, `${role}.env`)
    writeFileSync(
      env,
      envFileText({VM_ROLE: role, VM_IP: ip, VM_SUBNET: SUBNET, ADMIN_CIDRS: config.network.adminCidrs.join(' '), ROLE_PORTS: ports.subnet.join(' '), PUBLIC_PORTS: ports.public.join(' ')}),
      {mode: 0o600},
    )
    const r = await sh('ip', ['netns', 'exec', ns, 'bash', path.join(ROOT, 'assets/stages/base.sh'), env, 'firewall'], {timeoutMs: 120_000})
    if (r.code !== 0) throw new Error(`firewall step: exit ${r.code}\n${r.stdout}\n${r.stderr}`)
    return r.stdout
  }

  const cleanup = async () => {
    for (const s of servers.splice(0)) s.kill('SIGTERM')
    for (const ns of Object.values(NS)) {
      await sh('ip', ['netns', 'del', ns])
      rmSync(`/etc/netns/${ns}`, {recursive: true, force: true})
    }
  }

  beforeAll(async () => {
    await cleanup()
    await must('ip', ['netns', 'add', NS.lan])
    await must('ip', ['-n', NS.lan, 'link', 'add', 'br0', 'type', 'bridge'])
    await must('ip', ['-n', NS.lan, 'link', 'set', 'br0', 'up'])
    await vm(NS.gitlab, IP.gitlab)
    await vm(NS.k8s, IP.k8s)
    await client(NS.sub, IP.sub)
    await client(NS.adm, IP.adm)
    await client(NS.out, IP.out)
    // At boot ufw starts first (base stage), Docker / kubelet + Calico later.
    expect(await firewallStep(NS.gitlab, 'gitlab', IP.gitlab)).toBe('AUTOLABS_STEP firewall changed\n')
    expect(await firewallStep(NS.k8s, 'k8s', IP.k8s)).toBe('AUTOLABS_STEP firewall changed\n')

    // gitlab-vm: Docker Engine with GitLab publishing 80 and 2222->22 from its bridge network,
    // programmed as moby docker-v29.7.2 does: daemon/libnetwork/drivers/bridge/internal/iptabler/
    // iptabler.go (setupIPChains: the chains, nat-PREROUTING jump, DOCKER-FORWARD jumps inserted at
    // the top), network.go (DOCKER-CT, DOCKER-BRIDGE, the outgoing ACCEPT, setDefaultForwardRule's
    // DROP), port.go (setPerPortNAT's DNAT, setPerPortForwarding's ACCEPT inserted at the top of
    // filter-DOCKER), and daemon/libnetwork/firewall_linux.go (setupUserChain: DOCKER-USER, its
    // jump (re-)inserted at the top of FORWARD; the chain's rules are never touched).
    await backend(NS.ctr, NS.gitlab, 'docker0', CTR_IP, [80, 22])
    await iptables(NS.gitlab, [
      '-t nat -N DOCKER',
      '-t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER',
      `-t nat -A DOCKER -p tcp -d 0/0 --dport 80 -j DNAT --to-destination ${CTR_IP}:80 ! -i docker0`,
      `-t nat -A DOCKER -p tcp -d 0/0 --dport 2222 -j DNAT --to-destination ${CTR_IP}:22 ! -i docker0`,
      '-N DOCKER',
      '-N DOCKER-FORWARD',
      '-N DOCKER-BRIDGE',
      '-N DOCKER-CT',
      '-N DOCKER-INTERNAL',
      '-I FORWARD -j DOCKER-FORWARD',
      '-I DOCKER-FORWARD -j DOCKER-BRIDGE',
      '-I DOCKER-FORWARD -j DOCKER-INTERNAL',
      '-I DOCKER-FORWARD -j DOCKER-CT',
      '-A DOCKER-CT -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-A DOCKER-BRIDGE -o docker0 -j DOCKER',
      '-A DOCKER-FORWARD -i docker0 -j ACCEPT',
      '-A DOCKER ! -i docker0 -o docker0 -j DROP',
      `-I DOCKER ! -i docker0 -o docker0 -p tcp -d ${CTR_IP} --dport 80 -j ACCEPT`,
      `-I DOCKER ! -i docker0 -o docker0 -p tcp -d ${CTR_IP} --dport 22 -j ACCEPT`,
      '-I FORWARD -j DOCKER-USER',
    ])

    // k8s-vm: the ingress controller's hostPort 80 on a pod, as the CNI portmap plugin programs
    // it (containernetworking/plugins v1.9.1 plugins/meta/portmap/portmap_iptables.go: PREROUTING
    // --dst-type LOCAL -j CNI-HOSTPORT-DNAT, --destination-ports -j CNI-DN-…, DNAT), and Calico's
    // filter-FORWARD as felix programs it (calico v3.32.1 felix/rules/static.go:
    // StaticFilterForwardChains inserts cali-FORWARD, which returns what policy allows with the
    // accept mark 0x10000; StaticFilterForwardAppendRules appends the ACCEPT for that mark at the
    // end of FORWARD, after ufw's chains).
    await backend(NS.pod, NS.k8s, CALI_IF, POD_IP, [80])
    await iptables(NS.k8s, [
      '-t nat -N CNI-HOSTPORT-DNAT',
      '-t nat -N CNI-DN-0123456789abcdef',
      '-t nat -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
      '-t nat -A CNI-HOSTPORT-DNAT -p tcp -m multiport --destination-ports 80 -j CNI-DN-0123456789abcdef',
      `-t nat -A CNI-DN-0123456789abcdef -p tcp --dport 80 -j DNAT --to-destination ${POD_IP}:80`,
      '-N cali-FORWARD',
      '-A cali-FORWARD -j MARK --set-xmark 0x0/0xfff00000',
      '-A cali-FORWARD -o cali+ -j MARK --set-xmark 0x10000/0x10000',
      '-A cali-FORWARD -i cali+ -j MARK --set-xmark 0x10000/0x10000',
      '-I FORWARD -j cali-FORWARD',
      '-A FORWARD -m mark --mark 0x10000/0x10000 -j ACCEPT',
      '-A FORWARD -j MARK --set-xmark 0x10000/0x10000',
    ])
  }, 300_000)

  afterAll(async () => {
    await cleanup()
    rmSync(dir, {recursive: true, force: true})
  })

  it('gitlab-vm: a published port answers the VM subnet and the admin network, and drops anyone else', async () => {
    expect(await connect(NS.sub, IP.gitlab, 80)).toBe('open')
    expect(await connect(NS.adm, IP.gitlab, 80)).toBe('open')
    expect(await connect(NS.adm, IP.gitlab, 2222)).toBe('open')
    expect(await connect(NS.out, IP.gitlab, 80)).toBe('dropped')
    expect(await connect(NS.out, IP.gitlab, 2222)).toBe('dropped')
  })

  it('gitlab-vm: without the chain the outsider gets in (what ufw alone leaves open)', async () => {
    await inNs(NS.gitlab, 'iptables', '-D', 'DOCKER-USER', '-j', 'autolabs-published')
    try {
      expect(await connect(NS.out, IP.gitlab, 80)).toBe('open')
      // And the step sees the hole: its check fails, so the next deploy repairs it.
      const check = await sh('ip', ['netns', 'exec', NS.gitlab, 'bash', '-c', `source ${ROOT}/assets/stages/base.sh; source ${dir}/gitlab.env; check_published_ports`])
      expect(check.code).not.toBe(0)
    } finally {
      await inNs(NS.gitlab, 'iptables', '-A', 'DOCKER-USER', '-j', 'autolabs-published')
    }
  })

  it('gitlab-vm: the rules survive a ufw reload and a Docker restart, without duplicates', async () => {
    await inNs(NS.gitlab, 'ufw', 'reload')
    // Docker restarting: EnsureJumpRule deletes and re-inserts its FORWARD jumps at the top.
    await iptables(NS.gitlab, ['-D FORWARD -j DOCKER-FORWARD', '-I FORWARD -j DOCKER-FORWARD', '-D FORWARD -j DOCKER-USER', '-I FORWARD -j DOCKER-USER'])
    const user = await inNs(NS.gitlab, 'iptables', '-S', 'DOCKER-USER')
    expect(user.trim().split('\n')).toEqual(['-N DOCKER-USER', '-A DOCKER-USER -j autolabs-published'])
    const forward = (await inNs(NS.gitlab, 'iptables', '-S', 'FORWARD')).trim().split('\n')
    expect(forward.slice(0, 3)).toEqual(['-P FORWARD DROP', '-A FORWARD -j DOCKER-USER', '-A FORWARD -j DOCKER-FORWARD'])
    expect(await connect(NS.out, IP.gitlab, 80)).toBe('dropped')
    expect(await connect(NS.sub, IP.gitlab, 80)).toBe('open')
    // The deploy's own check agrees that nothing is left to do.
    const again = await sh('ip', ['netns', 'exec', NS.gitlab, 'bash', path.join(ROOT, 'assets/stages/base.sh'), `${dir}/gitlab.env`, 'firewall'], {timeoutMs: 120_000})
    expect(again.stdout, again.stderr).toBe('AUTOLABS_STEP firewall unchanged\n')
  })

  it('gitlab-vm: the container itself still reaches out (only traffic from the VM interface is filtered)', async () => {
    // The container connects to a client on the LAN through the VM (Docker's outgoing ACCEPT).
    await iptables(NS.gitlab, [`-t nat -A POSTROUTING -s ${CTR_IP}/32 ! -o docker0 -j MASQUERADE`])
    const code = `import socket\ns=socket.socket()\ns.bind(('${IP.out}',8080))\ns.listen(1)\ns.settimeout(20)\nc,_=s.accept()\nc.sendall(b'hello')\nc.close()\n`
    const srv = spawn('ip', ['netns', 'exec', NS.out, 'python3', '-c', code], {stdio: 'ignore'})
    servers.push(srv)
    await new Promise((r) => setTimeout(r, 500))
    expect(await connect(NS.ctr, IP.out, 8080)).toBe('open')
  })

  it('k8s-vm: the ingress hostPort answers the VM subnet and the admin network, and drops anyone else, though Calico lets it through', async () => {
    expect(await connect(NS.sub, IP.k8s, 80)).toBe('open')
    expect(await connect(NS.adm, IP.k8s, 80)).toBe('open')
    expect(await connect(NS.out, IP.k8s, 80)).toBe('dropped')
    await inNs(NS.k8s, 'iptables', '-D', 'ufw-after-forward', '-j', 'autolabs-published')
    try {
      expect(await connect(NS.out, IP.k8s, 80)).toBe('open')
    } finally {
      await inNs(NS.k8s, 'ufw', 'reload')
    }
    // ufw's reload keeps its FORWARD jumps where they were: Calico's ACCEPT stays after them.
    const forward = (await inNs(NS.k8s, 'iptables', '-S', 'FORWARD')).trim().split('\n')
    expect(forward[1]).toBe('-A FORWARD -j cali-FORWARD')
    expect(forward.slice(-2)).toEqual(['-A FORWARD -m mark --mark 0x10000/0x10000 -j ACCEPT', '-A FORWARD -j MARK --set-xmark 0x10000/0x10000'])
    expect(await connect(NS.out, IP.k8s, 80)).toBe('dropped')
  })

  it('k8s-vm: the chain is loaded as the step wrote it, with the uplink interface', async () => {
    const chain = await inNs(NS.k8s, 'iptables', '-S', 'autolabs-published')
    expect(chain).toContain('-A autolabs-published ! -i eth0 -j RETURN')
    expect(chain).toContain(`-A autolabs-published -s ${ADMIN} -p tcp -m conntrack --ctorigdstport 443 -j RETURN`)
    // 10250 (kubelet) is for the VM subnet only.
    expect(chain).toContain(`-A autolabs-published -s ${SUBNET} -p tcp -m conntrack --ctorigdstport 10250 -j RETURN`)
    expect(chain).not.toContain(`-s ${ADMIN} -p tcp -m conntrack --ctorigdstport 10250`)
    expect(chain.trim().split('\n').at(-1)).toBe('-A autolabs-published -j DROP')
  })
})
