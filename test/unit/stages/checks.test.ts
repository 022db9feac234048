import {chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, describe, expect, it} from 'vitest'

import {bashSync, sourceAndRun} from '../../support/bash.js'

// The stage scripts' check functions, run by bash against fixture files: what decides
// "already done?" on a real VM, exercised here without one.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')
const STAGES = path.join(ROOT, 'assets/stages')
const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures')
const fx = (name: string) => path.join(FIX, name)

/** Sources a stage script (its main does not run when sourced) and runs `snippet`. */
function bash(script: string, snippet: string, env: Record<string, string> = {}) {
  return sourceAndRun(path.join(STAGES, script), snippet, {env: {PATH: process.env.PATH ?? '/usr/bin:/bin', ...env}, timeoutMs: 15_000})
}
const ok = (script: string, snippet: string, env?: Record<string, string>) => bash(script, snippet, env).code === 0

describe('k8s.sh containerd_config_ok (SystemdCgroup and CRI, parsed from config.toml)', () => {
  it('accepts config version 2 with SystemdCgroup = true under the runc options', () => {
    expect(ok('k8s.sh', `containerd_config_ok ${fx('containerd-v2-systemd.toml')}`)).toBe(true)
  })
  it('accepts config version 3 (containerd 2.x) with SystemdCgroup = true', () => {
    expect(ok('k8s.sh', `containerd_config_ok ${fx('containerd-v3-systemd.toml')}`)).toBe(true)
  })
  it("refuses containerd's default (SystemdCgroup = false)", () => {
    expect(ok('k8s.sh', `containerd_config_ok ${fx('containerd-v2-default.toml')}`)).toBe(false)
  })
  it("refuses Docker's containerd.io config, which disables the CRI plugin", () => {
    expect(ok('k8s.sh', `containerd_config_ok ${fx('containerd-cri-disabled.toml')}`)).toBe(false)
  })
  it('is not fooled by a comment or by another runtime having SystemdCgroup = true', () => {
    expect(ok('k8s.sh', `containerd_config_ok ${fx('containerd-wrong-section.toml')}`)).toBe(false)
  })
  it('refuses a missing file', () => {
    expect(ok('k8s.sh', `containerd_config_ok ${fx('nope.toml')}`)).toBe(false)
  })
})

describe('k8s.sh containerd_config_rewrite (what the containerd step writes)', () => {
  it.each(['containerd-v2-default.toml', 'containerd-v3-default.toml'])('turns the default %s into a config the check accepts, with certs.d for registries', (f) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'al-ctd-'))
    const r = bash('k8s.sh', `containerd_config_rewrite < ${fx(f)} > ${dir}/config.toml && containerd_config_ok ${dir}/config.toml && cat ${dir}/config.toml`)
    rmSync(dir, {recursive: true})
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/config_path = '\/etc\/containerd\/certs\.d'/)
    expect(r.stdout).not.toMatch(/SystemdCgroup = false/)
  })
  it('the unmodified defaults fail the check', () => {
    expect(ok('k8s.sh', `containerd_config_ok ${fx('containerd-v3-default.toml')}`)).toBe(false)
  })
})

describe('k8s.sh fstab_has_swap', () => {
  it('finds an active swap entry and ignores one commented out by the kernel step', () => {
    expect(ok('k8s.sh', `fstab_has_swap ${fx('fstab-swap')}`)).toBe(true)
    expect(ok('k8s.sh', `fstab_has_swap ${fx('fstab-swap-off')}`)).toBe(false)
  })
})

describe('database.sh pg_hba_ok (each database only for its own user, from the VM subnet, with scram)', () => {
  // The fixtures name each user like its database (a workspace deployed before <database>_user).
  const check = (f: string) => ok('database.sh', `pg_hba_ok ${fx(f)} 192.168.100.0/24 "autolabs:autolabs zitadel:zitadel gitlab:gitlab"`)
  it('accepts the file the stage writes', () => expect(check('pg_hba-good.conf')).toBe(true))
  it('refuses a file missing one database', () => expect(check('pg_hba-missing-db.conf')).toBe(false))
  it('refuses a rule for an address outside the VM subnet', () => expect(check('pg_hba-world.conf')).toBe(false))
  it('refuses md5 (only scram-sha-256 is allowed)', () => expect(check('pg_hba-md5.conf')).toBe(false))
  it('refuses local trust', () => expect(check('pg_hba-local-trust.conf')).toBe(false))
  it("refuses a database opened to another database's user", () => expect(check('pg_hba-wrong-user.conf')).toBe(false))
  it('matches what pg_hba_text renders for the same parameters', () => {
    const users = {PG_USER__autolabs: 'autolabs_user', PG_USER__zitadel: 'zitadel_user', PG_USER__gitlab: 'gitlab'}
    const r = bash('database.sh', 'pg_hba_text', {VM_SUBNET: '192.168.100.0/24', PG_DATABASES: 'autolabs zitadel gitlab', ...users})
    expect(r.code).toBe(0)
    expect(r.stdout).toMatch(/^host {4}zitadel {9}zitadel_user {4}192\.168\.100\.0\/24 {8}scram-sha-256$/m)
    const dir = mkdtempSync(path.join(tmpdir(), 'al-hba-'))
    writeFileSync(path.join(dir, 'pg_hba.conf'), r.stdout)
    expect(ok('database.sh', `pg_hba_ok ${dir}/pg_hba.conf 192.168.100.0/24 "autolabs:autolabs_user zitadel:zitadel_user gitlab:gitlab"`)).toBe(true)
    // The same file does not let the databases' old same-named users in.
    expect(ok('database.sh', `pg_hba_ok ${dir}/pg_hba.conf 192.168.100.0/24 "autolabs:autolabs zitadel:zitadel gitlab:gitlab"`)).toBe(false)
    rmSync(dir, {recursive: true})
  })
})

describe('database.sh redis_conf_ok (bound to the VM address, protected mode, requirepass)', () => {
  const check = (f: string) => ok('database.sh', `redis_conf_ok ${fx(f)} 192.168.100.20 s3cret-Redis-pass-0123456789`)
  it('accepts the file the stage writes', () => expect(check('redis-good.conf')).toBe(true))
  it('refuses a config without requirepass', () => expect(check('redis-no-auth.conf')).toBe(false))
  it('refuses a loopback-only bind', () => expect(check('redis-loopback-only.conf')).toBe(false))
  it('refuses protected-mode no', () => expect(check('redis-unprotected.conf')).toBe(false))
  it('refuses another password', () => {
    expect(ok('database.sh', `redis_conf_ok ${fx('redis-good.conf')} 192.168.100.20 other-password-000000`)).toBe(false)
  })
})

describe('database.sh psql_quote (the password reaches psql on stdin, quoted for \\set)', () => {
  it("doubles single quotes and escapes backslashes", () => {
    const r = bash('database.sh', `psql_quote "a'b\\\\c"`)
    expect(r.stdout).toBe("'a''b\\\\c'")
  })
})

describe('lib/common.sh helpers', () => {
  it('cidr_contains decides subnet membership', () => {
    expect(ok('base.sh', 'cidr_contains 10.99.40.0/24 10.99.40.77')).toBe(true)
    expect(ok('base.sh', 'cidr_contains 10.99.40.0/25 10.99.40.200')).toBe(false)
    expect(ok('base.sh', 'cidr_contains 0.0.0.0/0 8.8.8.8')).toBe(true)
    expect(ok('base.sh', 'cidr_contains 10.0.0.5/32 10.0.0.5')).toBe(true)
    expect(ok('base.sh', 'cidr_contains 10.0.0.5/32 10.0.0.6')).toBe(false)
  })
  it('deb_major reads the major version of a Debian version string', () => {
    expect(bash('base.sh', 'deb_major 5:7.0.15-1~deb12u1').stdout).toBe('7')
    expect(bash('base.sh', 'deb_major 15+248').stdout).toBe('15')
    expect(bash('base.sh', 'deb_major 17.6-1.pgdg22.04+1').stdout).toBe('17')
  })
  it('apt_failed_source names the unreachable source from apt-get update output', () => {
    const r = bash('base.sh', `apt_failed_source < ${fx('apt-update-unreachable.txt')}`)
    expect(r.stdout.trim()).toBe('https://download.docker.com/linux/debian')
  })
})

describe('base.sh firewall rules', () => {
  const env = {ADMIN_CIDRS: '203.0.113.0/24', VM_SUBNET: '192.168.100.0/24', ROLE_PORTS: '5432/tcp 6379/tcp', PUBLIC_PORTS: '443/tcp'}
  it('allows SSH from the admin networks and each service from the VM subnet only', () => {
    const r = bash('base.sh', 'firewall_rules', env)
    expect(r.stdout.trim().split('\n')).toEqual([
      'ufw allow from 203.0.113.0/24 to any port 22 proto tcp',
      'ufw allow from 192.168.100.0/24 to any port 5432 proto tcp',
      'ufw allow from 192.168.100.0/24 to any port 6379 proto tcp',
      'ufw allow from 203.0.113.0/24 to any port 443 proto tcp',
    ])
  })
  it('reads the rules back from `ufw show added` in the same form', () => {
    const shown = 'Added user rules (see \'ufw status\' for running firewall):\nufw allow from 192.168.100.0/24 to any port 6379 proto tcp\nufw allow from 203.0.113.0/24 to any port 22 proto tcp \n'
    const r = bash('base.sh', 'ufw_added_rules', {})
    const r2 = sourceAndRun(path.join(STAGES, 'base.sh'), 'ufw_added_rules', {input: shown})
    expect(r.code).toBe(0)
    expect(r2.stdout.trim().split('\n')).toEqual([
      'ufw allow from 192.168.100.0/24 to any port 6379 proto tcp',
      'ufw allow from 203.0.113.0/24 to any port 22 proto tcp',
    ])
  })
})

describe('base.sh firewall: rules written but not enforced are a failure, never a quiet success', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'al-ufw-'))
  afterAll(() => rmSync(dir, {recursive: true, force: true}))
  // A fake ufw on PATH: records the rules, and `status`/`enable` behave as told.
  const fake = (status: string, enableFails: boolean) => {
    const bin = mkdtempSync(path.join(dir, 'bin-'))
    writeFileSync(
      path.join(bin, 'ufw'),
      `#!/bin/bash
case "$1" in
  show) echo "Added user rules (see 'ufw status' for running firewall):"; cat "${bin}/rules" 2>/dev/null ;;
  status) echo "Status: ${status}" ;;
  allow) echo "ufw $*" >>"${bin}/rules" ;;
  --force) if [[ $2 == enable ]]; then ${enableFails ? "echo 'iptables-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)'; echo 'ERROR: problem running ufw-init'; exit 1" : 'exit 0'}; fi; rm -f "${bin}/rules" ;;
esac
`,
    )
    chmodSync(path.join(bin, 'ufw'), 0o755)
    return bin
  }
  const afterRules = path.join(dir, 'after.rules')
  writeFileSync(afterRules, '*filter\n:ufw-after-forward - [0:0]\nCOMMIT\n')
  const env = (bin: string) => ({PATH: `${bin}:${process.env.PATH}`, ADMIN_CIDRS: '10.0.0.0/8', VM_SUBNET: '192.168.100.0/24', ROLE_PORTS: '5432/tcp', PUBLIC_PORTS: '', AFTER_RULES: afterRules})
  // The kernel side of the published-ports chain is proved with real ufw and iptables in
  // test/lab/firewall-published.test.ts; here only the ufw protocol.
  const stubs = 'pkg_installed() { return 0; }; ssh_peers() { :; }; uplink_iface() { echo eth0; }; published_chain_loaded() { return 0; };'

  it('do_firewall fails, naming the cause, when ufw cannot enable', () => {
    const r = bash('base.sh', `${stubs} do_firewall`, env(fake('inactive', true)))
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/ufw could not enable the firewall .*Permission denied \(you must be root\)/)
  })
  it('check_firewall: the right rules on an inactive firewall are not done; active with the rules is', () => {
    const inactive = fake('inactive', false)
    expect(bash('base.sh', `${stubs} do_firewall`, env(inactive)).code).toBe(0)
    expect(bash('base.sh', `${stubs} check_firewall`, env(inactive)).code).not.toBe(0)
    const active = fake('active', false)
    expect(bash('base.sh', `${stubs} do_firewall`, env(active)).code).toBe(0)
    expect(bash('base.sh', `${stubs} check_firewall`, env(active)).code).toBe(0)
  })
})

describe('base.sh published ports (DNAT-ed traffic ufw INPUT never sees)', () => {
  const env = {ADMIN_CIDRS: '192.168.100.0/24 203.0.113.0/24', VM_SUBNET: '192.168.100.0/24', ROLE_PORTS: '80/tcp 2222/tcp', PUBLIC_PORTS: '80/tcp'}
  it('passes a DNAT-ed connection from the uplink only to a role port from an allowed source, and drops the rest', () => {
    const r = bash('base.sh', 'published_chain_rules ens18', env)
    expect(r.stdout.trim().split('\n')).toEqual([
      '-A autolabs-published ! -i ens18 -j RETURN',
      '-A autolabs-published -m conntrack ! --ctstate DNAT -j RETURN',
      '-A autolabs-published -s 192.168.100.0/24 -p tcp -m conntrack --ctorigdstport 80 -j RETURN',
      '-A autolabs-published -s 192.168.100.0/24 -p tcp -m conntrack --ctorigdstport 2222 -j RETURN',
      '-A autolabs-published -s 203.0.113.0/24 -p tcp -m conntrack --ctorigdstport 80 -j RETURN',
      '-A autolabs-published -j DROP',
    ])
  })
  it('keeps exactly one block in after.rules however often it is written, and leaves ufw’s own rules alone', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'al-after-'))
    try {
      const file = path.join(dir, 'after.rules')
      const ufwOwn = '*filter\n:ufw-after-input - [0:0]\n:ufw-after-forward - [0:0]\n-A ufw-after-input -p udp --dport 137 -j ufw-skip-to-policy-input\nCOMMIT\n'
      writeFileSync(file, ufwOwn)
      const e = {...env, AFTER_RULES: file}
      const stub = 'uplink_iface() { echo ens18; };'
      expect(bash('base.sh', `${stub} check_published_ports`, e).code).not.toBe(0)
      expect(bash('base.sh', `${stub} write_published_block && write_published_block`, e).code).toBe(0)
      const text = readFileSync(file, 'utf8')
      expect(text.startsWith(ufwOwn)).toBe(true)
      expect(text.match(/^# BEGIN autolabs/gm)).toHaveLength(1)
      expect(text).toContain('*filter\n:DOCKER-USER - [0:0]\n:autolabs-published - [0:0]\n-A DOCKER-USER -j autolabs-published\n-A ufw-after-forward -j autolabs-published\n')
      // The file is right; the kernel must have it too before the step counts as done.
      expect(bash('base.sh', `${stub} published_chain_loaded() { return 0; }; check_published_ports`, e).code).toBe(0)
      expect(bash('base.sh', `${stub} published_chain_loaded() { return 1; }; check_published_ports`, e).code).not.toBe(0)
      // Another admin network: the block is replaced, not added to.
      expect(bash('base.sh', `${stub} write_published_block`, {...e, ADMIN_CIDRS: '198.51.100.0/24'}).code).toBe(0)
      const again = readFileSync(file, 'utf8')
      expect(again.match(/^# BEGIN autolabs/gm)).toHaveLength(1)
      expect(again).toContain('-s 198.51.100.0/24')
      expect(again).not.toContain('203.0.113.0/24')
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
  it('refuses to guess when no interface holds the VM address', () => {
    const r = bash('base.sh', 'uplink_iface() { :; }; write_published_block', {...env, VM_IP: '192.168.100.10', AFTER_RULES: '/nonexistent'})
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/AUTOLABS_ERROR no network interface holds this VM's address 192\.168\.100\.10/)
  })
})

describe('lib/common.sh run_step protocol', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'al-step-'))
  afterAll(() => rmSync(dir, {recursive: true, force: true}))
  const stage = (body: string) => {
    const f = path.join(dir, `stage-${Math.random().toString(36).slice(2)}.sh`)
    writeFileSync(f, `source ${STAGES}/lib/common.sh\n${body}\nrun_step "$@"\n`)
    return (id: string) => bashSync([f, id], {timeoutMs: 10_000})
  }

  it('prints "changed" when the action ran and "unchanged" when the check already passes', () => {
    const marker = path.join(dir, 'marker')
    const run = stage(`check_touch() { [[ -f ${marker} ]]; }\ndo_touch() { touch ${marker}; }`)
    const first = run('touch')
    expect(first.code).toBe(0)
    expect(first.stdout).toBe('AUTOLABS_STEP touch changed\n')
    const second = run('touch')
    expect(second.stdout).toBe('AUTOLABS_STEP touch unchanged\n')
  })
  it('fails with AUTOLABS_ERROR when the action does not make its check pass', () => {
    const run = stage('check_never() { false; }\ndo_never() { :; }')
    const r = run('never')
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/AUTOLABS_ERROR step never ran but its check still fails/)
    expect(r.stdout).not.toMatch(/AUTOLABS_STEP/)
  })
  it('names the command that failed under set -e, without expanding its secrets', () => {
    const run = stage('SECRET=hunter2-hunter2\ncheck_boom() { false; }\ndo_boom() { grep -q "$SECRET" /nonexistent; }')
    const r = run('boom')
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain('AUTOLABS_ERROR grep -q "$SECRET" /nonexistent failed (exit 2) in do_boom')
    expect(r.stderr).not.toContain('hunter2')
  })
  it('fails on an unknown step id', () => {
    const r = stage('')('nosuch')
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/AUTOLABS_ERROR unknown step 'nosuch'/)
  })
  it('refuses a parameter file readable by others (it carries passwords)', () => {
    const env = path.join(dir, 'params.env')
    writeFileSync(env, "SECRET='x'\n")
    chmodSync(env, 0o644)
    const r = bashSync(['-c', `source ${STAGES}/lib/common.sh; load_env ${env}`])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/mode 644; it must be 0600/)
    chmodSync(env, 0o600)
    const r2 = bashSync(['-c', `source ${STAGES}/lib/common.sh; load_env ${env}; [[ $SECRET == x ]]`])
    expect(r2.code).toBe(0)
    expect(readFileSync(env, 'utf8')).toContain('SECRET')
  })
})
