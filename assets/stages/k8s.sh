#!/usr/bin/env bash
# Stage "k8s" (k8s-vm): kernel settings, containerd (SystemdCgroup), kubeadm/kubelet/kubectl
# from pkgs.k8s.io (one minor, held), a single-node cluster, Calico (tigera operator), the
# F5 NGINX Ingress Controller, namespaces.
# Parameters (env file): VM_IP APT_PROXY K8S_VERSION (minor, "1.36") POD_CIDR SERVICE_CIDR
# CALICO_VERSION INGRESS_VERSION K8S_NAMESPACES BOOTSTRAP_TOKEN REGISTRY (host:port, plain HTTP)
# K8S_NETWORK_POLICIES (YAML stream, rendered by src/render/network-policies.ts)
# K8S_NETWORK_POLICY_NAMES ("namespace/name ...": the policies autolabs manages)
#
# Ingress: the controller runs as a DaemonSet with hostPort 80/443, so on this single node it
# answers on the VM's own address (no NodePort range, no load balancer needed).
# Every do_ step also runs on a live cluster: a changed input or a new version of this script
# forces it (src/deploy/run.ts), so each must be safe to repeat.
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

CONTAINERD_CONFIG=${CONTAINERD_CONFIG:-/etc/containerd/config.toml}
ADMIN_CONF=/etc/kubernetes/admin.conf
APISERVER_MANIFEST=/etc/kubernetes/manifests/kube-apiserver.yaml
KUBE_KEY=/etc/apt/keyrings/kubernetes-apt-keyring.asc
KUBE_LIST=/etc/apt/sources.list.d/kubernetes.list
DOCKER_KEY=/etc/apt/keyrings/docker.asc
DOCKER_LIST=/etc/apt/sources.list.d/docker.list
kubectl_() { kubectl --kubeconfig "$ADMIN_CONF" "$@"; }

# --- kernel: swap off, modules, sysctls ---------------------------------------------------
MODULES_FILE=/etc/modules-load.d/autolabs-k8s.conf
SYSCTL_FILE=/etc/sysctl.d/90-autolabs-k8s.conf
modules_text() { printf 'overlay\nbr_netfilter'; }
sysctl_text() {
  printf 'net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1'
}
# fstab_has_swap FILE: an active (uncommented) swap entry.
fstab_has_swap() { awk '!/^[[:space:]]*#/ && $3 == "swap" {f = 1} END {exit !f}' "$1"; }
check_kernel() {
  [[ -z $(swapon --noheadings --show 2>/dev/null) ]] || return 1
  if [[ -f /etc/fstab ]] && fstab_has_swap /etc/fstab; then return 1; fi
  file_is "$MODULES_FILE" "$(modules_text)" && file_is "$SYSCTL_FILE" "$(sysctl_text)" || return 1
  # Inside a container the host's kernel owns modules and sysctls; the files are what we manage.
  in_container && return 0
  [[ -d /sys/module/br_netfilter && -d /sys/module/overlay ]] &&
    [[ $(sysctl -n net.ipv4.ip_forward) == 1 && $(sysctl -n net.bridge.bridge-nf-call-iptables) == 1 ]]
}
do_kernel() {
  swapoff -a
  if [[ -f /etc/fstab ]]; then sed -i -E '/^[^#].*[[:space:]]swap[[:space:]]/ s/^/# autolabs: kubelet needs swap off # /' /etc/fstab; fi
  write_file "$MODULES_FILE" "$(modules_text)" 0644
  write_file "$SYSCTL_FILE" "$(sysctl_text)" 0644
  if in_container; then
    warn "running in a container: kernel modules and sysctls belong to the host and are not applied here"
    return 0
  fi
  modprobe overlay
  modprobe br_netfilter
  sysctl --system >/dev/null
}

# --- containerd: CRI on, SystemdCgroup = true, registries from certs.d, kubeadm's pause image --
# The CRI plugin's tables: config version 2 (containerd 1.x) and 3 (containerd 2.x).
# (Written with [.] rather than \. : awk -v would treat the backslashes as string escapes.)
CRI_RUNC_OPTIONS_RE='(io[.]containerd[.]grpc[.]v1[.]cri|io[.]containerd[.]cri[.]v1[.]runtime).*containerd[.]runtimes[.]runc[.]options[]]$'
CRI_REGISTRY_RE='(io[.]containerd[.]grpc[.]v1[.]cri|io[.]containerd[.]cri[.]v1[.]images)["'"'"']?[.]registry[]]$'
CERTS_D=/etc/containerd/certs.d

# containerd_config_ok FILE: the runc runtime uses the systemd cgroup driver and CRI is enabled.
containerd_config_ok() {
  [[ -r $1 ]] || return 1
  awk -v runc_re="$CRI_RUNC_OPTIONS_RE" '
    /^[[:space:]]*#/ { next }
    /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:]]/, "", section); next }
    /^[[:space:]]*disabled_plugins[[:space:]]*=/ { if ($0 ~ /["\047](io\.containerd\.grpc\.v1\.)?cri["\047]/) cri_off = 1 }
    /^[[:space:]]*SystemdCgroup[[:space:]]*=/ {
      v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); sub(/[[:space:]]*(#.*)?$/, "", v)
      if (section ~ runc_re) ok = (v == "true")
    }
    END { exit !(ok && !cri_off) }
  ' "$1"
}

# containerd_registry_ok FILE: the CRI plugin reads registry hosts from exactly $CERTS_D.
# (containerd 2.2's default is "/etc/containerd/certs.d:/etc/docker/certs.d", which its
# transfer-service pulls take as one literal directory: hosts.toml would be ignored.)
containerd_registry_ok() {
  [[ -r $1 ]] || return 1
  awk -v reg_re="$CRI_REGISTRY_RE" -v want="$CERTS_D" '
    /^[[:space:]]*#/ { next }
    /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:]]/, "", section); next }
    section ~ reg_re && /^[[:space:]]*config_path[[:space:]]*=/ {
      v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); sub(/[[:space:]]*(#.*)?$/, "", v)
      ok = (v == "\"" want "\"" || v == "\047" want "\047")
    }
    END { exit !ok }
  ' "$1"
}

# containerd_sandbox FILE: the pod sandbox (pause) image containerd uses.
containerd_sandbox() {
  [[ -r $1 ]] || return 0
  awk '
    /^[[:space:]]*#/ { next }
    /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:]]/, "", section); next }
    (/^[[:space:]]*sandbox_image[[:space:]]*=/ && section ~ /io\.containerd\.grpc\.v1\.cri["\047]\]$/) ||
    (/^[[:space:]]*sandbox[[:space:]]*=/ && section ~ /pinned_images\]$/) {
      v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); sub(/[[:space:]]*(#.*)?$/, "", v); gsub(/["\047]/, "", v); print v; exit
    }
  ' "$1"
}

# containerd's default config on stdin -> ours. $1: the pause image to pin (kubeadm's), or "".
#  - runc uses the systemd cgroup driver, as kubelet does. The key is set under the runc
#    options table, replacing any value there: containerd 2.0/2.1's default omits it entirely
#    (containerd issue #12101), so a plain "false -> true" substitution would find nothing.
#  - registry hosts come from $CERTS_D (CRI plugin and transfer service): an empty or
#    colon-separated certs.d path becomes the single directory.
#  - the sandbox image matches kubeadm's, which otherwise warns that it differs.
containerd_config_rewrite() {
  awk -v runc_re="$CRI_RUNC_OPTIONS_RE" -v certs="$CERTS_D" -v pause="${1:-}" '
    function indent(s) { match(s, /^[[:space:]]*/); return substr(s, 1, RLENGTH) }
    /^[[:space:]]*\[/ {
      section = $0; gsub(/[[:space:]]/, "", section); print
      if (section ~ runc_re) print indent($0) "  SystemdCgroup = true"
      next
    }
    section ~ runc_re && /^[[:space:]]*SystemdCgroup[[:space:]]*=/ { next }
    /^[[:space:]]*config_path[[:space:]]*=/ {
      v = $0; sub(/^[^=]*=[[:space:]]*/, "", v)
      if (v ~ /^(""|\047\047)[[:space:]]*$/ || v ~ /certs\.d/) { print indent($0) "config_path = \047" certs "\047"; next }
    }
    pause != "" && /^[[:space:]]*sandbox_image[[:space:]]*=/ && section ~ /io\.containerd\.grpc\.v1\.cri["\047]\]$/ {
      print indent($0) "sandbox_image = \"" pause "\""; next
    }
    pause != "" && /^[[:space:]]*sandbox[[:space:]]*=/ && section ~ /pinned_images\]$/ {
      print indent($0) "sandbox = \047" pause "\047"; next
    }
    { print }
  '
}

# The pause image of the installed kubeadm ("" before kube_packages has run). Offline: the
# version is given, so kubeadm does not look up "stable" on the internet.
kubeadm_pause_image() {
  command -v kubeadm >/dev/null 2>&1 || return 0
  local v
  v=$(kubeadm version -o short 2>/dev/null) || return 0
  kubeadm config images list --kubernetes-version "$v" 2>/dev/null | grep -m1 '/pause:' || true
}

# The oldest containerd the pinned Kubernetes minor is listed with in containerd's support
# matrix (containerd RELEASES.md at v2.3.4: "| 1.36 | 2.3.0+, 2.2.0+ |", "| 1.35 | 2.2.0+, 2.1.5+,
# 1.7.28+ |"); 1.35 is the last Kubernetes minor that supports containerd 1.x.
containerd_min() { if [[ ${K8S_VERSION#1.} -ge 36 ]]; then printf '2.2.0'; else printf '1.7.28'; fi; }
# version_at_least MIN VERSION: VERSION (a Debian version or a release tag) is MIN or newer.
version_at_least() { local v=${2#*:}; v=${v#v}; printf '%s\n%s\n' "$1" "${v%%[-+~]*}" | sort -V -C; }
# The installed containerd's version, from `containerd --version`: "containerd <package> <version>
# <revision>" (cmd/containerd/command/main.go at v2.3.4), e.g. "v2.2.1" or Debian's "2.1.4~ds1".
# Empty when containerd is not installed (yet).
containerd_installed_version() {
  command -v containerd >/dev/null 2>&1 || return 0
  containerd --version 2>/dev/null | awk '{print $3; exit}' || true
}
containerd_pkg() {
  # The distribution's containerd when it is new enough; else Docker's containerd.io.
  local v
  v=$(apt_candidate containerd)
  v=${v#*:}
  if [[ -n $v ]] && version_at_least "$(containerd_min)" "$v"; then printf 'containerd'; else printf 'containerd.io'; fi
}
# The GitLab registry speaks plain HTTP inside the VM network (gitlab.sh registry_trust), so
# the host is http:// (nothing to verify, and TLS verification is not switched off anywhere).
hosts_toml_text() {
  printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]' "$REGISTRY" "$REGISTRY"
}
# Writes config.toml from containerd's own defaults; restarts containerd when it changed.
containerd_apply_config() {
  local want pause
  pause=$(kubeadm_pause_image)
  want=$(containerd config default | containerd_config_rewrite "$pause")
  [[ -n $want ]] || die "containerd config default printed nothing (containerd $(containerd --version 2>&1))"
  if file_is "$CONTAINERD_CONFIG" "$want" && unit_active containerd; then return 0; fi
  install -d -m 0755 "$(dirname "$CONTAINERD_CONFIG")"
  write_file "$CONTAINERD_CONFIG" "$want" 0644
  containerd_config_ok "$CONTAINERD_CONFIG" || die "containerd's default configuration has no runc options table to set SystemdCgroup in (containerd $(containerd --version 2>&1))"
  containerd_registry_ok "$CONTAINERD_CONFIG" || die "containerd's default configuration has no CRI registry config_path to point at $CERTS_D (containerd $(containerd --version 2>&1))"
  [[ -z $pause || $(containerd_sandbox "$CONTAINERD_CONFIG") == "$pause" ]] ||
    die "containerd's default configuration has no sandbox image setting to pin $pause in (containerd $(containerd --version 2>&1))"
  systemctl enable containerd >/dev/null 2>&1
  systemctl restart containerd
  WAIT_SECONDS=30 wait_until unit_active containerd || die "containerd did not start with the new configuration (journalctl -u containerd)"
}
check_containerd() {
  { pkg_installed containerd || pkg_installed containerd.io; } || return 1
  version_at_least "$(containerd_min)" "$(containerd_installed_version)" || return 1
  containerd_config_ok "$CONTAINERD_CONFIG" && containerd_registry_ok "$CONTAINERD_CONFIG" || return 1
  [[ -z ${REGISTRY:-} ]] || file_is "$CERTS_D/$REGISTRY/hosts.toml" "$(hosts_toml_text)" || return 1
  local pause
  pause=$(kubeadm_pause_image)
  [[ -z $pause || $(containerd_sandbox "$CONTAINERD_CONFIG") == "$pause" ]] || return 1
  unit_active containerd
}
do_containerd() {
  ensure_apt_lists
  local pkg have
  have=$(containerd_installed_version)
  # A new minor needing a newer containerd under a running cluster: that is an upgrade
  # (kubeadm upgrade), not a package swap under the kubelet; kube_packages refuses the same.
  if [[ -n $have ]] && cluster_initialised && ! version_at_least "$(containerd_min)" "$have"; then
    die "the running cluster uses containerd $have, older than $(containerd_min) which Kubernetes $K8S_VERSION needs; autolabs does not replace the container runtime under a running cluster: upgrade the node by hand (containerd, then kubeadm upgrade), or set services.kubernetes.version back in autolabs.yaml"
  fi
  pkg=$(containerd_pkg)
  if [[ $pkg == containerd.io ]] && ! pkg_installed containerd.io; then
    local base
    base="https://download.docker.com/linux/$(os_id)"
    log "this distribution's containerd is older than $(containerd_min) (Kubernetes $K8S_VERSION); using containerd.io from $base"
    require_reachable "$base/gpg"
    install -d -m 0755 /etc/apt/keyrings
    fetch "$base/gpg" "$DOCKER_KEY"
    chmod 0644 "$DOCKER_KEY"
    write_file "$DOCKER_LIST" "deb [arch=$(dpkg --print-architecture) signed-by=$DOCKER_KEY] $base $(os_codename) stable" 0644
    apt_update
  fi
  pkg_installed "$pkg" || apt_install "$pkg"
  have=$(containerd_installed_version)
  version_at_least "$(containerd_min)" "$have" ||
    die "containerd ${have:-(no version)} from package $pkg is older than $(containerd_min), the oldest containerd listed for Kubernetes $K8S_VERSION (containerd RELEASES.md); remove it (apt-get purge $pkg) or pin an older services.kubernetes.version"
  # Registry hosts first: containerd reads hosts.toml at pull time, no restart needed for it.
  if [[ -n ${REGISTRY:-} ]]; then
    write_file "$CERTS_D/$REGISTRY/hosts.toml" "$(hosts_toml_text)" 0644
  fi
  containerd_apply_config
}

# --- kube_repo: pkgs.k8s.io, one repository per minor --------------------------------------
# As kubernetes.io's "Installing kubeadm" (Debian-based), except that the key is kept
# ASCII-armored as .asc (apt >= 1.4 reads it; no gpg needed on the VM).
kube_base() { printf 'https://pkgs.k8s.io/core:/stable:/v%s/deb/' "$K8S_VERSION"; }
kube_list_text() { printf 'deb [signed-by=%s] %s /' "$KUBE_KEY" "$(kube_base)"; }
# armored_key FILE: an ASCII-armored OpenPGP public key (not an error page saved by a proxy).
armored_key() { [[ -s $1 ]] && grep -q '^-----BEGIN PGP PUBLIC KEY BLOCK-----' "$1"; }
check_kube_repo() { armored_key "$KUBE_KEY" && file_is "$KUBE_LIST" "$(kube_list_text)"; }
do_kube_repo() {
  require_reachable "$(kube_base)Release.key"
  install -d -m 0755 /etc/apt/keyrings
  fetch "$(kube_base)Release.key" "$KUBE_KEY"
  chmod 0644 "$KUBE_KEY"
  armored_key "$KUBE_KEY" || die "$(kube_base)Release.key is not an OpenPGP public key (a proxy or portal answered instead?). $(https_hint)"
  write_file "$KUBE_LIST" "$(kube_list_text)" 0644
  apt_update
}

# --- kube_packages: kubelet, kubeadm, kubectl of the pinned minor, held --------------------
KUBE_PACKAGES=(kubelet kubeadm kubectl)
# The installed version of a package ("" when it is not installed).
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
# kube_pkgs_at_minor: all three installed, each at $K8S_VERSION.x (pkgs.k8s.io: "1.36.4-1.1").
kube_pkgs_at_minor() {
  local p
  for p in "${KUBE_PACKAGES[@]}"; do
    pkg_installed "$p" && [[ $(pkg_version "$p") == "$K8S_VERSION".* ]] || return 1
  done
}
kube_held() { [[ $(apt-mark showhold 2>/dev/null | grep -cxE 'kubelet|kubeadm|kubectl') -eq 3 ]]; }
check_kube_packages() { kube_pkgs_at_minor && kube_held; }
cluster_initialised() { [[ -f $APISERVER_MANIFEST ]]; }
do_kube_packages() {
  # Already at the pinned minor: only hold them. Reinstalling would pull a newer patch release
  # of kubelet than the running control plane (the kubelet must never be newer).
  if ! kube_pkgs_at_minor; then
    local have
    have=$(pkg_version kubeadm)
    if [[ -n $have ]] && cluster_initialised; then
      die "k8s-vm's cluster was set up with kubeadm ${have%%-*}; services.kubernetes.version is now $K8S_VERSION. A kubeadm cluster is upgraded one minor at a time with kubeadm upgrade (https://kubernetes.io/docs/tasks/administer-cluster/kubeadm/kubeadm-upgrade/), which autolabs does not do: set services.kubernetes.version back to ${have%.*-*} in autolabs.yaml, or upgrade the cluster by hand first."
    fi
    local p v pinned=()
    for p in "${KUBE_PACKAGES[@]}"; do
      v=$(apt_candidate "$p")
      [[ $v == "$K8S_VERSION".* ]] || die "pkgs.k8s.io v$K8S_VERSION offers no $p package (candidate: ${v:-none}); check services.kubernetes.version in autolabs.yaml"
      pinned+=("$p=$v")
    done
    apt-mark unhold "${KUBE_PACKAGES[@]}" >/dev/null 2>&1 || true
    # Explicit versions (and --allow-downgrades): a lowered minor before the cluster exists
    # installs that minor instead of keeping the newer one.
    apt_install --allow-downgrades "${pinned[@]}"
  fi
  apt-mark hold "${KUBE_PACKAGES[@]}" >/dev/null
  systemctl enable kubelet >/dev/null 2>&1
}

# --- kubeadm_init -------------------------------------------------------------------------
KUBEADM_CONFIG=/etc/kubernetes/autolabs-kubeadm.yaml
# kubeadm's config file (v1beta4: kubeadm 1.31+) instead of flags: the bootstrap token stays
# off the command line, and the kubelet's cgroup driver is set alongside.
kubeadm_config_text() {
  cat <<YAML
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
  - token: "$BOOTSTRAP_TOKEN"
    ttl: "24h"
localAPIEndpoint:
  advertiseAddress: "$VM_IP"
  bindPort: 6443
nodeRegistration:
  criSocket: unix:///run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: "$(kubeadm version -o short)"
networking:
  podSubnet: "$POD_CIDR"
  serviceSubnet: "$SERVICE_CIDR"
apiServer:
  certSANs: ["$VM_IP"]
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
YAML
}
cluster_answers() { [[ -f $ADMIN_CONF ]] && kubectl_ get --raw /readyz --request-timeout=5s 2>/dev/null | grep -qx ok; }
# yaml_scalar KEY: the value of the first "KEY: value" line on stdin (quotes removed).
yaml_scalar() {
  awk -v k="$1" '
    { line = $0; sub(/^[[:space:]]*/, "", line) }
    index(line, k ":") == 1 { v = substr(line, length(k) + 2); gsub(/^[[:space:]]+|[[:space:]]+$|["\047]/, "", v); print v; exit }
  '
}
# The settings the running cluster was initialised with that differ from the parameters,
# one "what: cluster has X, autolabs.yaml has Y" line each (nothing when they agree).
cluster_drift() {
  local cc ip
  cc=$(kubectl_ -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}' 2>/dev/null) || return 0
  [[ -n $cc ]] || return 0
  local pod svc
  pod=$(yaml_scalar podSubnet <<<"$cc")
  svc=$(yaml_scalar serviceSubnet <<<"$cc")
  if [[ $pod != "$POD_CIDR" ]]; then printf 'pod network: the cluster has %s, services.kubernetes.podCidr is %s\n' "${pod:-none}" "$POD_CIDR"; fi
  if [[ $svc != "$SERVICE_CIDR" ]]; then printf 'service network: the cluster has %s, services.kubernetes.serviceCidr is %s\n' "${svc:-none}" "$SERVICE_CIDR"; fi
  ip=$(grep -Eo -- '--advertise-address=[0-9.]+' "$APISERVER_MANIFEST" 2>/dev/null | head -n 1 || true)
  ip=${ip#*=}
  if [[ -n $ip && $ip != "$VM_IP" ]]; then printf 'API server address: the cluster has %s, the VM address is %s\n' "$ip" "$VM_IP"; fi
}
# kubeadm's output with the values of --token and --certificate-key masked.
mask_join_secrets() { sed -E 's/(--token|--certificate-key)[[:space:]]+[^[:space:]\\]+/\1 <redacted>/g'; }
# Pins kubeadm's pause image in containerd before kubeadm's preflight compares them.
containerd_align_pause() {
  local pause
  pause=$(kubeadm_pause_image)
  [[ -n $pause && $(containerd_sandbox "$CONTAINERD_CONFIG") != "$pause" ]] || return 0
  log "pinning kubeadm's pause image $pause in containerd"
  containerd_apply_config
}
check_kubeadm_init() { cluster_answers; }
do_kubeadm_init() {
  # Safe to re-run (--force, changed inputs): never initialise over an existing cluster
  # (kubeadm's own preflight refuses too: FileAvailable--etc-kubernetes-manifests-*).
  if cluster_initialised; then
    WAIT_SECONDS=120 wait_until cluster_answers ||
      die "a control plane exists (/etc/kubernetes/manifests) but does not answer; check kubelet (journalctl -u kubelet) or reset it with kubeadm reset"
    local drift
    drift=$(cluster_drift)
    [[ -z $drift ]] || die "the cluster on k8s-vm was initialised with other settings: $(tr '\n' ';' <<<"$drift") these cannot change in place. Set them back in autolabs.yaml, or reset the cluster (sudo kubeadm reset -f on k8s-vm; its workloads are lost) and run autolabs deploy again."
    return 0
  fi
  containerd_align_pause
  write_file "$KUBEADM_CONFIG" "$(kubeadm_config_text)" 0600
  # No --upload-certs: there is no second control plane to join, and it would print the
  # certificate key. Join tokens in kubeadm's closing advice are masked for the log.
  kubeadm init --config "$KUBEADM_CONFIG" 2>&1 | mask_join_secrets >&2 ||
    die "kubeadm init failed (see the output above)"
  WAIT_SECONDS=180 wait_until cluster_answers || die "the API server did not become ready within 3 minutes"
}

# --- untaint: a single node runs the workloads ---------------------------------------------
CP_TAINT='node-role.kubernetes.io/control-plane'
# Names of the nodes that carry the control-plane taint, one a line.
cp_tainted_nodes() {
  kubectl_ get nodes -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.spec.taints[*].key}{"\n"}{end}' |
    awk -v t="$CP_TAINT" '{ for (i = 2; i <= NF; i++) if ($i == t) { print $1; break } }'
}
check_untaint() {
  local taints
  taints=$(kubectl_ get nodes -o jsonpath='{.items[*].spec.taints[*].key}' 2>/dev/null) || return 1
  [[ " $taints " != *" $CP_TAINT "* ]]
}
do_untaint() {
  # kubectl fails on "taint ... not found": only nodes that still carry it (a forced re-run).
  local nodes node
  nodes=$(cp_tainted_nodes) # (an assignment: a failing kubectl stops the step here)
  for node in $nodes; do
    kubectl_ taint nodes "$node" "$CP_TAINT-" >&2
  done
}

# --- calico: tigera operator, pinned, with the configured pod CIDR -------------------------
# Calico's install order (docs.tigera.io, v3.32): the CRDs, tigera-operator.yaml,
# then the Installation. Server-side apply, as Calico's upgrade guide does: the CRDs are too
# large for client-side apply's last-applied annotation, and unlike `kubectl create` it can
# run again (forced re-runs, a new CALICO_VERSION).
calico_base() { printf 'https://raw.githubusercontent.com/projectcalico/calico/%s/manifests' "$CALICO_VERSION"; }
calico_installation_text() {
  cat <<YAML
apiVersion: operator.tigera.io/v1
kind: Installation
metadata:
  name: default
spec:
  calicoNetwork:
    ipPools:
      - name: default-ipv4-ippool
        blockSize: 26
        cidr: $POD_CIDR
        encapsulation: VXLANCrossSubnet
        natOutgoing: Enabled
        nodeSelector: all()
---
apiVersion: operator.tigera.io/v1
kind: APIServer
metadata:
  name: default
spec: {}
YAML
}
# fetch_optional URL FILE: 0 = downloaded, 1 = the release has no such file (HTTP 404);
# anything else (no answer, 5xx) is fatal.
fetch_optional() {
  local code
  code=$(curl --silent --show-error --location --connect-timeout 10 --max-time 120 --output "$2" --write-out '%{http_code}' "$1" 2>/dev/null) || true
  case $code in
    200) return 0 ;;
    404) return 1 ;;
    *) die "cannot download $1 (HTTP ${code:-no answer}). $(https_hint)" ;;
  esac
}
check_calico() {
  [[ $(kubectl_ get installation default -o jsonpath='{.spec.calicoNetwork.ipPools[0].cidr}' 2>/dev/null) == "$POD_CIDR" ]] &&
    kubectl_ get tigerastatus calico -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null | grep -qx True
}
do_calico() {
  local base tmp
  base=$(calico_base)
  require_reachable "$base/tigera-operator.yaml"
  tmp=$(mktemp -d)
  # The operator's CRDs: v1_crd_projectcalico_org.yaml since Calico v3.32 (what its docs
  # install); operator-crds.yaml before, and a copy of it "for a while" since
  # (manifests/generate.sh at v3.32.1). Very old releases carry them in tigera-operator.yaml.
  local crds=''
  for name in v1_crd_projectcalico_org.yaml operator-crds.yaml; do
    if fetch_optional "$base/$name" "$tmp/crds.yaml"; then crds=$name && break; fi
  done
  if [[ -n $crds ]]; then
    kubectl_ apply --server-side --force-conflicts -f "$tmp/crds.yaml" >&2
  else
    log "Calico $CALICO_VERSION has neither v1_crd_projectcalico_org.yaml nor operator-crds.yaml; its CRDs come with tigera-operator.yaml"
  fi
  fetch "$base/tigera-operator.yaml" "$tmp/tigera-operator.yaml"
  kubectl_ apply --server-side --force-conflicts -f "$tmp/tigera-operator.yaml" >&2
  rm -rf "$tmp"
  kubectl_ wait --for=condition=Established --timeout=120s crd/installations.operator.tigera.io crd/apiservers.operator.tigera.io >&2
  calico_installation_text | kubectl_ apply -f - >&2
  WAIT_SECONDS=600 wait_until check_calico || die "Calico did not become available within 10 minutes: $(kubectl_ get tigerastatus 2>&1 | tail -n 3 | tr '\n' ' ')"
}

# --- ingress: F5 NGINX Ingress Controller (OSS), pinned ------------------------------------
# Its manifests install (docs.nginx.com, "Install NGINX Ingress Controller with Manifests"):
# ns-and-sa, rbac, nginx-config, ingress-class, deploy/crds.yaml, then the DaemonSet, whose
# container has hostPort 80 and 443 (Calico's CNI config includes the portmap plugin).
INGRESS_NS=ingress-nginx
# ingress_namespace FILE: the upstream namespace "nginx-ingress" -> ours (ingress-nginx).
ingress_namespace() { sed -i -E "s/^([[:space:]]*namespace:[[:space:]]*)nginx-ingress[[:space:]]*\$/\1$INGRESS_NS/" "$1"; }
# drop_namespace_docs: a multi-document YAML stream without its Namespace documents.
drop_namespace_docs() {
  awk '
    function flush() { if (doc != "" && !ns) printf "%s---\n", doc; doc = ""; ns = 0 }
    /^---[[:space:]]*$/ { flush(); next }
    /^kind:[[:space:]]*Namespace[[:space:]]*$/ { ns = 1 }
    { doc = doc $0 "\n" }
    END { flush() }
  '
}
# The controller reads this ConfigMap (-nginx-configmaps). external-status-address: what it
# reports as the address of Ingress resources — the VM, where hostPort 80/443 answer (the
# upstream args name an "external service" that this install does not create).
ingress_config_text() {
  cat <<YAML
kind: ConfigMap
apiVersion: v1
metadata:
  name: nginx-config
  namespace: $INGRESS_NS
data:
  external-status-address: "$VM_IP"
YAML
}
check_ingress() {
  kubectl_ -n "$INGRESS_NS" get daemonset nginx-ingress -o jsonpath='{.spec.template.spec.containers[0].image}' 2>/dev/null |
    grep -q ":$INGRESS_VERSION\$" &&
    [[ $(kubectl_ -n "$INGRESS_NS" get daemonset nginx-ingress -o jsonpath='{.status.numberReady}' 2>/dev/null) -ge 1 ]]
}
do_ingress() {
  local base="https://raw.githubusercontent.com/nginx/kubernetes-ingress/v$INGRESS_VERSION"
  require_reachable "$base/deploy/crds.yaml"
  local tmp f
  tmp=$(mktemp -d)
  fetch "$base/deploy/crds.yaml" "$tmp/00-crds.yaml"
  fetch "$base/deployments/common/ns-and-sa.yaml" "$tmp/ns-and-sa.yaml"
  fetch "$base/deployments/rbac/rbac.yaml" "$tmp/20-rbac.yaml"
  fetch "$base/deployments/common/ingress-class.yaml" "$tmp/40-ingress-class.yaml"
  fetch "$base/deployments/daemon-set/nginx-ingress.yaml" "$tmp/50-daemon-set.yaml"
  # The platform's namespace is created here (the upstream Namespace document is dropped).
  drop_namespace_docs <"$tmp/ns-and-sa.yaml" >"$tmp/10-sa.yaml"
  ingress_config_text >"$tmp/30-nginx-config.yaml"
  for f in "$tmp"/[1-5]*.yaml; do ingress_namespace "$f"; done
  sed -i -E "s#image: nginx/nginx-ingress:.*#image: nginx/nginx-ingress:$INGRESS_VERSION#" "$tmp/50-daemon-set.yaml"
  kubectl_ create namespace "$INGRESS_NS" --dry-run=client -o yaml | kubectl_ apply -f - >&2
  kubectl_ apply --server-side --force-conflicts -f "$tmp/00-crds.yaml" >&2
  for f in "$tmp"/[1-5]*.yaml; do kubectl_ apply -f "$f" >&2; done
  rm -rf "$tmp"
  kubectl_ -n "$INGRESS_NS" rollout status daemonset/nginx-ingress --timeout=300s >&2 ||
    die "the NGINX Ingress Controller did not become ready within 5 minutes: $(kubectl_ -n "$INGRESS_NS" get pods -l app=nginx-ingress 2>&1 | tail -n 3 | tr '\n' ' ')"
}

# --- namespaces ---------------------------------------------------------------------------
check_namespaces() {
  local have ns
  have=$(kubectl_ get namespaces -o jsonpath='{.items[*].metadata.name}' 2>/dev/null) || return 1
  for ns in $K8S_NAMESPACES; do [[ " $have " == *" $ns "* ]] || return 1; done
}
do_namespaces() {
  local ns
  for ns in $K8S_NAMESPACES; do
    kubectl_ create namespace "$ns" --dry-run=client -o yaml | kubectl_ apply -f - >&2
  done
}

# --- network_policies ---------------------------------------------------------------------
# The manifests come rendered (src/render/network-policies.ts); here they are applied, and
# policies autolabs made earlier that the config no longer names (a namespace removed from
# services.kubernetes.namespaces) are deleted. Found by their managed-by label.
POLICY_LABEL=app.kubernetes.io/managed-by=autolabs
managed_policies() {
  kubectl_ get networkpolicies -A -l "$POLICY_LABEL" \
    -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}' 2>/dev/null | sort
}
wanted_policies() { tr ' ' '\n' <<<"${K8S_NETWORK_POLICY_NAMES:-}" | sed '/^$/d' | sort; }
check_network_policies() {
  local have
  have=$(managed_policies) || return 1
  [[ $have == "$(wanted_policies)" ]] || return 1
  [[ -z ${K8S_NETWORK_POLICIES:-} ]] && return 0
  # kubectl diff: exit 0 when the cluster already has exactly these objects, 1 when it differs.
  printf '%s\n' "$K8S_NETWORK_POLICIES" | kubectl_ diff -f - >/dev/null 2>&1
}
do_network_policies() {
  if [[ -n ${K8S_NETWORK_POLICIES:-} ]]; then
    printf '%s\n' "$K8S_NETWORK_POLICIES" | kubectl_ apply -f - >&2
  fi
  local stale
  stale=$(comm -23 <(managed_policies) <(wanted_policies))
  while IFS=/ read -r ns name; do
    [[ -n $name ]] || continue
    kubectl_ -n "$ns" delete networkpolicy "$name" --ignore-not-found >&2
  done <<<"$stale"
}

# --- kubeconfig: the orchestrator copies admin.conf to the workspace after this step ------
check_kubeconfig() { [[ -f $ADMIN_CONF ]] && grep -q "server: https://$VM_IP:6443" "$ADMIN_CONF"; }
do_kubeconfig() {
  die "$ADMIN_CONF does not point at https://$VM_IP:6443: the cluster was initialised for another address. Reset it (sudo kubeadm reset -f on k8s-vm; its workloads are lost) and run autolabs deploy again."
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then stage_main "$@"; fi
