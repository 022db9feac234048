import {spawnSync} from 'node:child_process'
import {chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {afterAll, describe, expect, it} from 'vitest'
import {parseAllDocuments} from 'yaml'

import {VERSIONS} from '../../../src/config/catalog.js'
import {sourceAndRun} from '../../support/bash.js'
import {missing} from '../../support/tools.js'

// k8s.sh's check functions and the text its actions write, run by bash against fixtures and
// against fake kubectl/curl/dpkg-query: what decides "already done?" and what is applied on
// k8s-vm, exercised without a cluster.
const HERE = path.dirname(fileURLToPath(import.meta.url))
const SCRIPT = path.resolve(HERE, '../../../assets/stages/k8s.sh')
const fx = (name: string) => path.join(HERE, 'fixtures', name)
const dir = mkdtempSync(path.join(tmpdir(), 'al-k8s-'))
afterAll(() => rmSync(dir, {recursive: true, force: true}))
let n = 0
const tmp = (name: string) => path.join(dir, `${n++}-${name}`)

const PARAMS = {
  VM_IP: '192.168.100.30',
  K8S_VERSION: VERSIONS.kubernetes,
  POD_CIDR: '10.244.0.0/16',
  SERVICE_CIDR: '10.96.0.0/12',
  CALICO_VERSION: VERSIONS.calico,
  INGRESS_VERSION: VERSIONS.nginxIngress,
  BOOTSTRAP_TOKEN: 'abcdef.0123456789abcdef',
  REGISTRY: '192.168.100.10:5050',
}

/** Sources k8s.sh (its main does not run when sourced) and runs `snippet`. */
function bash(snippet: string, env: Record<string, string> = {}, input?: string) {
  return sourceAndRun(SCRIPT, snippet, {env: {PATH: process.env.PATH ?? '/usr/bin:/bin', ...PARAMS, ...env}, input, timeoutMs: 20_000})
}
const ok = (snippet: string, env?: Record<string, string>) => bash(snippet, env).code === 0

/** An executable on a fresh PATH directory. */
function fakeBin(name: string, body: string) {
  const bin = mkdtempSync(path.join(dir, 'bin-'))
  writeFileSync(path.join(bin, name), `#!/bin/bash\n${body}\n`)
  chmodSync(path.join(bin, name), 0o755)
  return bin
}
const withPath = (...bins: string[]) => ({PATH: [...bins, process.env.PATH ?? '/usr/bin:/bin'].join(':')})

/** The rewritten config of a containerd default, as a file. */
function rewritten(fixture: string, pause = '') {
  const out = tmp('config.toml')
  const r = bash(`containerd_config_rewrite ${pause} < ${fx(fixture)} > ${out}`)
  expect(r.code, r.stderr).toBe(0)
  return out
}
const python311 = spawnSync('python3', ['-c', 'import tomllib'], {encoding: 'utf8'}).status === 0
/** Parses TOML like containerd does (duplicate keys and bad syntax are errors). */
function toml(file: string): Record<string, unknown> {
  const r = spawnSync('python3', ['-c', 'import json,sys,tomllib; print(json.dumps(tomllib.load(open(sys.argv[1],"rb"))))', file], {encoding: 'utf8'})
  expect(r.status, r.stderr).toBe(0)
  return JSON.parse(r.stdout) as Record<string, unknown>
}
const dig = (o: unknown, ...keys: string[]) => keys.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], o)

describe('k8s.sh containerd: the config the containerd step writes', () => {
  it('containerd 2.0/2.1 omit SystemdCgroup from the runc options table: the rewrite inserts it', () => {
    expect(ok(`containerd_config_ok ${fx('containerd-v3-2.1-default.toml')}`)).toBe(false)
    const out = rewritten('containerd-v3-2.1-default.toml')
    expect(ok(`containerd_config_ok ${out}`)).toBe(true)
    const keys = readFileSync(out, 'utf8').split('\n').filter((l) => /^\s*SystemdCgroup\s*=/.test(l))
    expect(keys).toEqual(['            SystemdCgroup = true'])
  })
  it("containerd 2.2's colon-separated registry config_path becomes the single certs.d directory", () => {
    expect(ok(`containerd_registry_ok ${fx('containerd-v3-2.2-default.toml')}`)).toBe(false)
    const out = rewritten('containerd-v3-2.2-default.toml')
    expect(ok(`containerd_registry_ok ${out}`)).toBe(true)
    expect(readFileSync(out, 'utf8')).not.toContain('/etc/docker/certs.d')
  })
  it.each(['containerd-v2-default.toml', 'containerd-v3-2.1-default.toml', 'containerd-v3-2.2-default.toml'])(
    '%s: the result passes every check, and a second rewrite changes nothing',
    (f) => {
      const once = rewritten(f, 'registry.k8s.io/pause:3.10.1')
      expect(ok(`containerd_config_ok ${once} && containerd_registry_ok ${once}`)).toBe(true)
      const twice = tmp('twice.toml')
      expect(bash(`containerd_config_rewrite registry.k8s.io/pause:3.10.1 < ${once} > ${twice}`).code).toBe(0)
      expect(readFileSync(twice, 'utf8')).toBe(readFileSync(once, 'utf8'))
    },
  )
  it.skipIf(missing('python3 >= 3.11 (tomllib)', python311))('the rewritten configs are valid TOML with the values where containerd reads them (python3 tomllib)', () => {
    const v3 = toml(rewritten('containerd-v3-2.1-default.toml', 'registry.k8s.io/pause:3.10.1'))
    const images = dig(v3, 'plugins', 'io.containerd.cri.v1.images')
    expect(dig(images, 'registry', 'config_path')).toBe('/etc/containerd/certs.d')
    expect(dig(images, 'pinned_images', 'sandbox')).toBe('registry.k8s.io/pause:3.10.1')
    expect(dig(v3, 'plugins', 'io.containerd.cri.v1.runtime', 'containerd', 'runtimes', 'runc', 'options', 'SystemdCgroup')).toBe(true)
    expect(dig(v3, 'plugins', 'io.containerd.transfer.v1.local', 'config_path')).toBe('/etc/containerd/certs.d')
    const v2 = toml(rewritten('containerd-v2-default.toml', 'registry.k8s.io/pause:3.10.1'))
    const cri = dig(v2, 'plugins', 'io.containerd.grpc.v1.cri')
    expect(dig(cri, 'sandbox_image')).toBe('registry.k8s.io/pause:3.10.1')
    expect(dig(cri, 'registry', 'config_path')).toBe('/etc/containerd/certs.d')
    expect(dig(cri, 'containerd', 'runtimes', 'runc', 'options', 'SystemdCgroup')).toBe(true)
  })
  it('without a pause image the sandbox stays as containerd ships it', () => {
    expect(bash(`containerd_sandbox ${rewritten('containerd-v2-default.toml')}`).stdout.trim()).toBe('registry.k8s.io/pause:3.8')
    expect(bash(`containerd_sandbox ${rewritten('containerd-v3-2.2-default.toml')}`).stdout.trim()).toBe('registry.k8s.io/pause:3.10.1')
  })
})

describe('k8s.sh containerd_pkg (which containerd package the pinned Kubernetes minor can use)', () => {
  const pkg = (candidate: string, minor: string) => bash(`apt_candidate() { printf '%s' '${candidate}'; }; containerd_pkg`, {K8S_VERSION: minor}).stdout
  it("takes the distribution's containerd from 1.7 on (Ubuntu 22.04/24.04) for Kubernetes 1.35", () => {
    expect(pkg('1.7.28-0ubuntu1~24.04.1', '1.35')).toBe('containerd')
  })
  it("takes Docker's containerd.io when the distribution's is older (Debian 12: 1.6.20) or missing", () => {
    expect(pkg('1.6.20~ds1-1+b1', '1.35')).toBe('containerd.io')
    expect(pkg('', '1.35')).toBe('containerd.io')
  })
  it("needs containerd 2.2+ from Kubernetes 1.36 on (containerd's matrix: 1.36 → 2.3.0+, 2.2.0+; 1.35 the last with 1.x)", () => {
    expect(pkg('1.7.28-0ubuntu1~24.04.1', '1.36')).toBe('containerd.io')
    expect(pkg('2.1.9+ds1-5', '1.36')).toBe('containerd.io') // Debian sid on 2026-11-30
    expect(pkg('2.2.0-0ubuntu1', '1.36')).toBe('containerd')
    expect(pkg('1:2.3.4-1', '1.37')).toBe('containerd')
  })
  it('for 1.35 a 1.7 must be 1.7.28 or newer (the matrix row "1.35 | 2.2.0+, 2.1.5+, 1.7.28+")', () => {
    expect(pkg('1.7.27-0ubuntu1~22.04.1', '1.35')).toBe('containerd.io')
  })
})

describe('k8s.sh do_containerd (the installed containerd must be one the Kubernetes minor is listed with)', () => {
  const log = tmp('containerd.log')
  // `containerd --version` as printed by cmd/containerd/command/main.go (v2.3.4): name, package, version, revision.
  const containerd = fakeBin('containerd', '[[ $1 == --version ]] && [[ -n ${HAVE:-} ]] && echo "containerd github.com/containerd/containerd/v2 $HAVE 1a2b3c4d"')
  const stubs = (initialised: boolean) =>
    `ensure_apt_lists() { :; }; pkg_installed() { [[ $1 == containerd ]]; }; apt_install() { echo "apt_install $*" >> ${log}; }; apt_candidate() { printf '2.2.1-0ubuntu1'; }; containerd_apply_config() { echo applied >> ${log}; }; cluster_initialised() { ${initialised ? 'return 0' : 'return 1'}; };`
  const run = (have: string, initialised = false, minor = '1.36') => {
    writeFileSync(log, '')
    const r = bash(`${stubs(initialised)} do_containerd`, {...withPath(containerd), HAVE: have, K8S_VERSION: minor, REGISTRY: ''})
    return {...r, calls: readFileSync(log, 'utf8')}
  }
  it('goes on with a containerd the minor is listed with', () => {
    expect(run('v2.3.4')).toMatchObject({code: 0, calls: 'applied\n'})
    expect(run('2.2.1-0ubuntu1')).toMatchObject({code: 0})
  })
  it('installs containerd when there is none yet (no containerd on PATH), then checks the version it got', () => {
    // Before the install `containerd` does not exist (command not found); the install puts it on PATH.
    const bin = mkdtempSync(path.join(dir, 'bin-'))
    const install = `apt_install() { echo "apt_install $*" >> ${log}; printf '#!/bin/sh\\necho "containerd github.com/containerd/containerd/v2 v2.2.1 1a2b3c4d"\\n' > ${bin}/containerd; chmod +x ${bin}/containerd; };`
    writeFileSync(log, '')
    const r = bash(`${stubs(false)} pkg_installed() { return 1; }; ${install} do_containerd`, {PATH: `${bin}:/usr/bin:/bin`, K8S_VERSION: '1.36', REGISTRY: ''})
    expect(r.code, r.stderr).toBe(0)
    expect(readFileSync(log, 'utf8')).toBe('apt_install containerd\napplied\n')
  })
  it('stops, naming versions and the fix, when the installed package is still too old', () => {
    const r = run('2.1.4~ds1')
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain('containerd 2.1.4~ds1 from package containerd is older than 2.2.0, the oldest containerd listed for Kubernetes 1.36')
    expect(r.calls).not.toContain('applied')
  })
  it('never swaps the runtime under a running cluster for a new minor: it says to upgrade by hand', () => {
    const r = run('1.7.28', true)
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/running cluster uses containerd 1\.7\.28, older than 2\.2\.0 which Kubernetes 1\.36 needs.*kubeadm upgrade/)
    expect(r.calls).toBe('')
    expect(run('1.7.28', true, '1.35')).toMatchObject({code: 0})
  })
  it('check_containerd fails while the installed containerd is too old for the minor', () => {
    const config = rewritten('containerd-v3-2.2-default.toml', '')
    const check = (have: string) =>
      ok(`pkg_installed() { [[ $1 == containerd ]]; }; unit_active() { return 0; }; kubeadm_pause_image() { :; }; check_containerd`, {...withPath(containerd), HAVE: have, CONTAINERD_CONFIG: config, REGISTRY: ''})
    expect(check('v2.2.1')).toBe(true)
    expect(check('v2.1.9')).toBe(false)
    expect(check('')).toBe(false)
  })
})

describe('k8s.sh containerd_registry_ok (the CRI plugin reads hosts.toml from certs.d)', () => {
  it('accepts config_path = "/etc/containerd/certs.d" in the CRI registry table (either quote style)', () => {
    expect(ok(`containerd_registry_ok ${fx('containerd-v2-systemd.toml')}`)).toBe(true)
  })
  it('refuses an empty config_path, and a missing file', () => {
    expect(ok(`containerd_registry_ok ${fx('containerd-v2-default.toml')}`)).toBe(false)
    expect(ok(`containerd_registry_ok ${fx('nope.toml')}`)).toBe(false)
  })
  it("is not satisfied by another plugin's config_path (the transfer service's)", () => {
    const f = tmp('transfer-only.toml')
    writeFileSync(f, "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\n  config_path = ''\n[plugins.'io.containerd.transfer.v1.local']\n  config_path = '/etc/containerd/certs.d'\n")
    expect(ok(`containerd_registry_ok ${f}`)).toBe(false)
  })
})

describe('k8s.sh check_containerd', () => {
  // The package and the unit are stubbed; the config file and kubeadm's pause image are real inputs.
  const stubs = (pause: string) =>
    `pkg_installed() { [[ $1 == containerd ]]; }; containerd_installed_version() { printf 'v2.2.1'; }; unit_active() { return 0; }; kubeadm_pause_image() { printf '%s' '${pause}'; };`
  const env = (config: string) => ({CONTAINERD_CONFIG: config, REGISTRY: ''})
  it('passes on the written config once its sandbox is the pause image of the installed kubeadm', () => {
    const config = rewritten('containerd-v3-2.2-default.toml', 'registry.k8s.io/pause:3.10.1')
    expect(ok(`${stubs('registry.k8s.io/pause:3.10.1')} check_containerd`, env(config))).toBe(true)
    expect(ok(`${stubs('')} check_containerd`, env(config))).toBe(true) // before kubeadm is installed
  })
  it("fails while containerd's sandbox differs from kubeadm's pause image", () => {
    const config = rewritten('containerd-v2-default.toml')
    expect(ok(`${stubs('registry.k8s.io/pause:3.10.1')} check_containerd`, env(config))).toBe(false)
  })
  it("fails on containerd 2.2's own default (colon-separated config_path)", () => {
    expect(ok(`${stubs('')} check_containerd`, env(fx('containerd-v3-2.2-default.toml')))).toBe(false)
  })
})

describe('k8s.sh hosts_toml_text (registry trust for the GitLab registry)', () => {
  it('names the plain-HTTP registry as server and host, without switching TLS verification off', () => {
    const r = bash('hosts_toml_text')
    expect(r.stdout).toBe('server = "http://192.168.100.10:5050"\n\n[host."http://192.168.100.10:5050"]\n  capabilities = ["pull", "resolve"]')
    expect(r.stdout).not.toMatch(/skip_verify/)
  })
})

describe('k8s.sh kube_repo', () => {
  it('the source line is the one kubernetes.io documents for the minor (signed-by the downloaded key)', () => {
    expect(bash('kube_list_text').stdout).toBe('deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.asc] https://pkgs.k8s.io/core:/stable:/v1.36/deb/ /')
  })
  it('armored_key accepts an ASCII-armored key and refuses a page a proxy answered with', () => {
    expect(ok(`armored_key ${fx('apt-key-armored.asc')}`)).toBe(true)
    expect(ok(`armored_key ${fx('proxy-portal.html')}`)).toBe(false)
  })
})

describe('k8s.sh kube_packages (pinned minor, held, never upgraded under a running cluster)', () => {
  // dpkg-query and apt-mark answer from a table; apt_install and apt_candidate are recorded/stubbed.
  const log = tmp('calls.log')
  const dpkg = fakeBin(
    'dpkg-query',
    `pkg=\${@: -1}; v=$(grep "^$pkg " "$VERSIONS" | cut -d' ' -f2); [[ -n $v ]] || exit 1
case "$2" in *Status*) printf 'install ok installed' ;; *Version*) printf '%s' "$v" ;; esac`,
  )
  const aptMark = fakeBin('apt-mark', `echo "apt-mark $*" >> ${log}; [[ $1 == showhold ]] && cat "$HELD" 2>/dev/null; exit 0`)
  const systemctl = fakeBin('systemctl', 'exit 0')
  const versions = (text: string) => {
    const f = tmp('versions')
    writeFileSync(f, text)
    return f
  }
  const held = tmp('held')
  writeFileSync(held, 'kubeadm\nkubectl\nkubelet\n')
  const env = (v: string) => ({...withPath(dpkg, aptMark, systemctl), VERSIONS: versions(v), HELD: held})
  const at136 = 'kubelet 1.36.0-1.1\nkubeadm 1.36.0-1.1\nkubectl 1.36.0-1.1\n'
  const stubs = (candidate: string, initialised: boolean) =>
    `apt_candidate() { printf '%s' '${candidate}'; }; apt_install() { echo "apt_install $*" >> ${log}; }; cluster_initialised() { ${initialised ? 'return 0' : 'return 1'}; };`

  it('check: all three at 1.36.x and held', () => {
    expect(ok('check_kube_packages', env(at136))).toBe(true)
  })
  it('check: fails when one package is of another minor, or missing, or not held', () => {
    expect(ok('check_kube_packages', env(at136.replace('kubectl 1.36.0', 'kubectl 1.35.2')))).toBe(false)
    expect(ok('check_kube_packages', env('kubelet 1.36.0-1.1\nkubeadm 1.36.0-1.1\n'))).toBe(false)
    expect(ok('check_kube_packages', {...env(at136), HELD: fx('nope')})).toBe(false)
  })
  it('installs the pinned versions of the minor (explicit, downgrade allowed) and holds them', () => {
    writeFileSync(log, '')
    const r = bash(`${stubs('1.36.2-1.1', false)} do_kube_packages`, env(''))
    expect(r.code, r.stderr).toBe(0)
    const calls = readFileSync(log, 'utf8')
    expect(calls).toContain('apt_install --allow-downgrades kubelet=1.36.2-1.1 kubeadm=1.36.2-1.1 kubectl=1.36.2-1.1')
    expect(calls).toMatch(/apt-mark unhold kubelet kubeadm kubectl[\s\S]*apt-mark hold kubelet kubeadm kubectl/)
  })
  it('already at the minor (a forced re-run): holds them without reinstalling (no newer kubelet patch)', () => {
    writeFileSync(log, '')
    expect(bash(`${stubs('1.36.9-1.1', true)} do_kube_packages`, env(at136)).code).toBe(0)
    const calls = readFileSync(log, 'utf8')
    expect(calls).not.toContain('apt_install')
    expect(calls).toContain('apt-mark hold kubelet kubeadm kubectl')
  })
  it('refuses to change the minor under an initialised cluster, naming the setting and kubeadm upgrade', () => {
    writeFileSync(log, '')
    const r = bash(`${stubs('1.37.0-1.1', true)} do_kube_packages`, {...env(at136), K8S_VERSION: '1.37'})
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/set up with kubeadm 1\.36\.0; services\.kubernetes\.version is now 1\.37.*kubeadm upgrade.*back to 1\.36 in autolabs\.yaml/)
    expect(readFileSync(log, 'utf8')).not.toContain('apt_install')
  })
  it("fails clearly when the minor's repository offers another version", () => {
    const r = bash(`${stubs('1.35.2-1.1', false)} do_kube_packages`, env(''))
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/pkgs\.k8s\.io v1\.36 offers no kubelet package \(candidate: 1\.35\.2-1\.1\)/)
  })
})

describe('k8s.sh kubeadm_init', () => {
  const kubeadm = fakeBin('kubeadm', '[[ "$1 $2 $3" == "version -o short" ]] && echo v1.36.0')
  it('the config file: kubeadm v1beta4 with the token, the advertise address, both networks and the systemd cgroup driver', () => {
    const r = bash('kubeadm_config_text', withPath(kubeadm))
    expect(r.code, r.stderr).toBe(0)
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as Record<string, unknown>)
    expect(docs.map((d) => `${d.apiVersion as string} ${d.kind as string}`)).toEqual([
      'kubeadm.k8s.io/v1beta4 InitConfiguration',
      'kubeadm.k8s.io/v1beta4 ClusterConfiguration',
      'kubelet.config.k8s.io/v1beta1 KubeletConfiguration',
    ])
    expect(dig(docs[0], 'bootstrapTokens', '0', 'token')).toBe(PARAMS.BOOTSTRAP_TOKEN)
    expect(dig(docs[0], 'localAPIEndpoint', 'advertiseAddress')).toBe(PARAMS.VM_IP)
    expect(dig(docs[1], 'kubernetesVersion')).toBe('v1.36.0')
    expect(dig(docs[1], 'networking')).toEqual({podSubnet: PARAMS.POD_CIDR, serviceSubnet: PARAMS.SERVICE_CIDR})
    expect(dig(docs[2], 'cgroupDriver')).toBe('systemd')
  })
  it("kubeadm's closing advice reaches the log without the token or a certificate key", () => {
    const out = 'kubeadm join 192.168.100.30:6443 --token abcdef.0123456789abcdef \\\n\t--discovery-token-ca-cert-hash sha256:0f1e \\\n\t--control-plane --certificate-key 9a8b7c6d\n'
    const r = bash('mask_join_secrets', {}, out)
    expect(r.stdout).toBe('kubeadm join 192.168.100.30:6443 --token <redacted> \\\n\t--discovery-token-ca-cert-hash sha256:0f1e \\\n\t--control-plane --certificate-key <redacted>\n')
  })
  it('yaml_scalar reads the networks kubeadm stored in its kubeadm-config ConfigMap', () => {
    expect(bash('yaml_scalar podSubnet', {}, readFileSync(fx('kubeadm-clusterconfiguration.yaml'), 'utf8')).stdout).toBe('10.244.0.0/16\n')
    expect(bash('yaml_scalar serviceSubnet', {}, readFileSync(fx('kubeadm-clusterconfiguration.yaml'), 'utf8')).stdout).toBe('10.96.0.0/12\n')
  })
  describe('cluster_drift (an existing cluster against the parameters)', () => {
    const stubs = `kubectl_() { cat ${fx('kubeadm-clusterconfiguration.yaml')}; }; APISERVER_MANIFEST=${fx('kube-apiserver-manifest.yaml')};`
    it('says nothing when the cluster matches', () => {
      expect(bash(`${stubs} cluster_drift`).stdout).toBe('')
    })
    it('names each changed setting with its autolabs.yaml field', () => {
      const r = bash(`${stubs} cluster_drift`, {POD_CIDR: '10.32.0.0/16', VM_IP: '192.168.100.31'})
      expect(r.stdout.trim().split('\n')).toEqual([
        'pod network: the cluster has 10.244.0.0/16, services.kubernetes.podCidr is 10.32.0.0/16',
        'API server address: the cluster has 192.168.100.30, the VM address is 192.168.100.31',
      ])
    })
    it('do_kubeadm_init on a drifted cluster fails with the fix instead of reporting success', () => {
      const r = bash(`${stubs} cluster_answers() { return 0; }; cluster_initialised() { return 0; }; do_kubeadm_init`, {SERVICE_CIDR: '10.100.0.0/16'})
      expect(r.code).not.toBe(0)
      expect(r.stderr).toMatch(/initialised with other settings: service network: the cluster has 10\.96\.0\.0\/12, services\.kubernetes\.serviceCidr is 10\.100\.0\.0\/16;.*kubeadm reset -f/)
    })
    it('do_kubeadm_init on a matching cluster does nothing (never initialises over it)', () => {
      const r = bash(`${stubs} cluster_answers() { return 0; }; cluster_initialised() { return 0; }; kubeadm() { echo KUBEADM-RAN; }; do_kubeadm_init`)
      expect(r.code, r.stderr).toBe(0)
      expect(r.stdout + r.stderr).not.toContain('KUBEADM-RAN')
    })
  })
})

describe('k8s.sh untaint (single node: the control-plane taint goes)', () => {
  const calls = tmp('kubectl.log')
  // A fake kubectl_: `get nodes` prints "name taint-keys" lines from $NODES; taint calls are recorded.
  const stub = `kubectl_() { if [[ $1 == get ]]; then if [[ $* == *range* ]]; then printf '%b' "$NODES"; else printf '%b' "$NODES" | cut -d' ' -f2- | tr '\\n' ' '; fi; else echo "kubectl $*" >> ${calls}; fi; };`
  it('removes the taint from the nodes that carry it, by key (every effect)', () => {
    writeFileSync(calls, '')
    const env = {NODES: 'k8s-vm node-role.kubernetes.io/control-plane\\n'}
    expect(ok(`${stub} check_untaint`, env)).toBe(false)
    expect(bash(`${stub} do_untaint`, env).code).toBe(0)
    expect(readFileSync(calls, 'utf8')).toBe('kubectl taint nodes k8s-vm node-role.kubernetes.io/control-plane-\n')
  })
  it('a forced re-run on an untainted node succeeds without calling kubectl taint (which would fail: "not found")', () => {
    writeFileSync(calls, '')
    const env = {NODES: 'k8s-vm node.kubernetes.io/not-ready\\n'}
    expect(ok(`${stub} check_untaint`, env)).toBe(true)
    expect(bash(`${stub} do_untaint`, env).code).toBe(0)
    expect(readFileSync(calls, 'utf8')).toBe('')
  })
  it('an unreachable API server fails the action (not an empty node list), and the check fails quietly', () => {
    const down = 'kubectl_() { echo "The connection to the server was refused" >&2; return 1; };'
    const r = bash(`${down} do_untaint`)
    expect(r.code).not.toBe(0)
    const c = bash(`${down} if check_untaint; then exit 0; else exit 1; fi`)
    expect(c.code).toBe(1)
    expect(c.stderr).not.toMatch(/AUTOLABS_ERROR/)
  })
  it('is not fooled by a taint whose key only starts with the control-plane key', () => {
    expect(ok(`${stub} check_untaint`, {NODES: 'k8s-vm node-role.kubernetes.io/control-plane-extra\\n'})).toBe(true)
  })
})

describe('k8s.sh calico (operator CRDs, operator, Installation with the pod CIDR)', () => {
  const calls = tmp('calico.log')
  // A fake curl: answers HEAD requests, saves "# <url>" as the download, and returns the HTTP
  // status from $CODE_<file> (default 200) for --write-out, failing like --fail otherwise.
  const curl = fakeBin(
    'curl',
    `out=''; url=\${@: -1}; wo=''; while [[ $# -gt 0 ]]; do case $1 in --output) out=$2; shift ;; --write-out) wo=$2; shift ;; esac; shift; done
f=$(basename "$url"); var="CODE_\${f//[.-]/_}"; code=\${!var:-200}
if [[ -n $out ]]; then printf '# %s\\n' "$url" > "$out"; fi
if [[ -n $wo ]]; then printf '%s' "$code"; exit 0; fi
[[ $code == 200 ]] || exit 22`,
  )
  const stub = `kubectl_() { local a="$*"; if [[ $a == *" -f "* && $a != *" -f -"* ]]; then a="$a ($(head -n 1 "\${@: -1}"))"; fi; if [[ $a == *"-f -"* ]]; then cat > /dev/null; fi; echo "kubectl $a" >> ${calls}; }; check_calico() { return 0; };`
  const run = (env: Record<string, string> = {}) => {
    writeFileSync(calls, '')
    const r = bash(`${stub} do_calico`, {...withPath(curl), ...env})
    return {...r, calls: readFileSync(calls, 'utf8').trim().split('\n')}
  }
  const base = (v = 'v3.32.1') => `https://raw.githubusercontent.com/projectcalico/calico/${v}/manifests`
  it('v3.32+: v1_crd_projectcalico_org.yaml, then tigera-operator.yaml, both server-side, then the CRDs are waited for and the Installation applied', () => {
    const r = run()
    expect(r.code, r.stderr).toBe(0)
    expect(r.calls[0]).toMatch(new RegExp(`^kubectl apply --server-side --force-conflicts -f \\S+ \\(# ${base()}/v1_crd_projectcalico_org\\.yaml\\)$`))
    expect(r.calls[1]).toMatch(new RegExp(`^kubectl apply --server-side --force-conflicts -f \\S+ \\(# ${base()}/tigera-operator\\.yaml\\)$`))
    expect(r.calls[2]).toBe('kubectl wait --for=condition=Established --timeout=120s crd/installations.operator.tigera.io crd/apiservers.operator.tigera.io')
    expect(r.calls[3]).toBe('kubectl apply -f -')
    expect(r.calls.join('\n')).not.toMatch(/kubectl create/)
  })
  it('a release before v3.32 (no v1_crd_projectcalico_org.yaml) takes its operator-crds.yaml', () => {
    const r = run({CALICO_VERSION: 'v3.31.7', CODE_v1_crd_projectcalico_org_yaml: '404'})
    expect(r.code, r.stderr).toBe(0)
    expect(r.calls[0]).toContain(`(# ${base('v3.31.7')}/operator-crds.yaml)`)
    expect(r.calls[1]).toMatch(/tigera-operator\.yaml\)$/)
  })
  it('a release with neither CRD manifest installs from tigera-operator.yaml alone', () => {
    const r = run({CALICO_VERSION: 'v3.26.4', CODE_v1_crd_projectcalico_org_yaml: '404', CODE_operator_crds_yaml: '404'})
    expect(r.code, r.stderr).toBe(0)
    expect(r.calls[0]).toMatch(/tigera-operator\.yaml\)$/)
    expect(r.stderr).toMatch(/Calico v3\.26\.4 has neither v1_crd_projectcalico_org\.yaml nor operator-crds\.yaml/)
  })
  it('any other failure to download the CRDs is fatal and names the URL', () => {
    const r = run({CODE_v1_crd_projectcalico_org_yaml: '503'})
    expect(r.code).not.toBe(0)
    expect(r.stderr).toContain(`cannot download ${base()}/v1_crd_projectcalico_org.yaml (HTTP 503)`)
    expect(readFileSync(calls, 'utf8')).toBe('')
  })
  it('the Installation carries the configured pod CIDR (not Calico’s 192.168.0.0/16)', () => {
    const docs = parseAllDocuments(bash('calico_installation_text').stdout).map((d) => d.toJS() as Record<string, unknown>)
    expect(docs.map((d) => d.kind)).toEqual(['Installation', 'APIServer'])
    expect(dig(docs[0], 'spec', 'calicoNetwork', 'ipPools', '0', 'cidr')).toBe('10.244.0.0/16')
  })
})

describe('k8s.sh ingress manifests (F5 NGINX Ingress Controller in ingress-nginx)', () => {
  it('drop_namespace_docs keeps the ServiceAccount and drops the upstream Namespace', () => {
    const r = bash('drop_namespace_docs', {}, readFileSync(fx('nginx-ns-and-sa.yaml'), 'utf8'))
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as Record<string, unknown> | null).filter(Boolean)
    expect(docs.map((d) => d!.kind)).toEqual(['ServiceAccount'])
    expect(dig(docs[0], 'automountServiceAccountToken')).toBe(false)
  })
  it('ingress_namespace moves namespaced objects and binding subjects to ingress-nginx, leaving names alone', () => {
    const f = tmp('rbac.yaml')
    writeFileSync(f, readFileSync(fx('nginx-rbac-binding.yaml'), 'utf8'))
    expect(bash(`ingress_namespace ${f}`).code).toBe(0)
    const doc = parseAllDocuments(readFileSync(f, 'utf8'))[0].toJS() as Record<string, unknown>
    expect(dig(doc, 'subjects', '0', 'namespace')).toBe('ingress-nginx')
    expect(dig(doc, 'subjects', '0', 'name')).toBe('nginx-ingress')
    expect(dig(doc, 'metadata', 'name')).toBe('nginx-ingress')
  })
  it("the controller's ConfigMap reports the VM address as the Ingresses' address", () => {
    const doc = parseAllDocuments(bash('ingress_config_text').stdout)[0].toJS() as Record<string, unknown>
    expect(dig(doc, 'metadata')).toEqual({name: 'nginx-config', namespace: 'ingress-nginx'})
    expect(dig(doc, 'data', 'external-status-address')).toBe('192.168.100.30')
  })
})

describe('k8s.sh network_policies (applied, checked, stale ones removed)', () => {
  // A fake kubectl that keeps NetworkPolicies in a state file: apply stores the stream and the
  // namespace/name pairs it holds, diff compares with what was applied (exit 0 = no difference,
  // 1 = differs, as kubectl diff does), delete removes one.
  const state = tmp('netpol-state')
  const applied = tmp('netpol-applied')
  const kubectl = fakeBin(
    'kubectl',
    `[[ $1 == --kubeconfig ]] && shift 2
case "$1" in
  get) sort "${state}" 2>/dev/null ;;
  apply) cat >"${applied}"; awk '/^  name:/ {n=$2} /^  namespace:/ {print $2 "/" n}' "${applied}" | cat - "${state}" 2>/dev/null | sort -u >"${state}.new"; mv "${state}.new" "${state}" ;;
  diff) cmp -s - "${applied}" ;;
  -n) grep -vx "$2/$5" "${state}" >"${state}.new"; mv "${state}.new" "${state}" ;;
esac`,
  )
  const yaml = (ns: string) => `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny-ingress\n  namespace: ${ns}\n  labels:\n    app.kubernetes.io/managed-by: autolabs\nspec:\n  podSelector: {}\n  policyTypes:\n    - Ingress\n`
  const env = (...ns: string[]) => ({...withPath(kubectl), K8S_NETWORK_POLICIES: ns.map(yaml).join('---\n'), K8S_NETWORK_POLICY_NAMES: ns.map((n) => `${n}/default-deny-ingress`).join(' ')})

  it('is not done on a fresh cluster; after the action it is, and a second check changes nothing', () => {
    const e = env('platform', 'auth')
    expect(ok('check_network_policies', e)).toBe(false)
    const r = bash('do_network_policies', e)
    expect(r.code, r.stderr).toBe(0)
    expect(readFileSync(state, 'utf8').trim().split('\n')).toEqual(['auth/default-deny-ingress', 'platform/default-deny-ingress'])
    expect(ok('check_network_policies', e)).toBe(true)
  })
  it('a policy changed on the cluster (kubectl diff differs) is not done', () => {
    writeFileSync(applied, 'edited by hand\n')
    expect(ok('check_network_policies', env('platform', 'auth'))).toBe(false)
    expect(bash('do_network_policies', env('platform', 'auth')).code).toBe(0)
    expect(ok('check_network_policies', env('platform', 'auth'))).toBe(true)
  })
  it('a namespace dropped from the config: its policy is stale, and the action deletes it', () => {
    const e = env('platform')
    expect(ok('check_network_policies', e)).toBe(false)
    const r = bash('do_network_policies', e)
    expect(r.code, r.stderr).toBe(0)
    expect(readFileSync(state, 'utf8').trim()).toBe('platform/default-deny-ingress')
    expect(ok('check_network_policies', e)).toBe(true)
  })
})
