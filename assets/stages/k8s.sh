#!/usr/bin/env bash
# Stage "k8s" (k8s-vm): kernel settings, containerd (SystemdCgroup), kubeadm/kubelet/kubectl
# from pkgs.k8s.io (one minor, held), a single-node cluster, Calico (tigera operator), the
# F5 NGINX Ingress Controller, namespaces.
# Parameters (env file): VM_IP APT_PROXY K8S_VERSION (minor, "1.35") POD_CIDR SERVICE_CIDR
# CALICO_VERSION INGRESS_VERSION K8S_NAMESPACES BOOTSTRAP_TOKEN REGISTRY (host:port, plain HTTP)
#
# Ingress: the controller runs as a DaemonSet with hostPort 80/443, so on this single node it
# answers on the VM's own address (no NodePort range, no load balancer needed).
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

CONTAINERD_CONFIG=${CONTAINERD_CONFIG:-/etc/containerd/config.toml}
ADMIN_CONF=/etc/kubernetes/admin.conf
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

# --- containerd: CRI on, SystemdCgroup = true ---------------------------------------------
# containerd_config_ok FILE: the runc runtime uses the systemd cgroup driver and CRI is enabled.
# Understands config version 2 (containerd 1.x) and 3 (containerd 2.x).
containerd_config_ok() {
  [[ -r $1 ]] || return 1
  awk '
    /^[[:space:]]*#/ { next }
    /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:]]/, "", section); next }
    /^[[:space:]]*disabled_plugins[[:space:]]*=/ { if ($0 ~ /"(io\.containerd\.grpc\.v1\.)?cri"/) cri_off = 1 }
    /^[[:space:]]*SystemdCgroup[[:space:]]*=/ {
      v = $0; sub(/^[^=]*=[[:space:]]*/, "", v); sub(/[[:space:]]*(#.*)?$/, "", v)
      if (section ~ /containerd\.runtimes\.runc\.options\]$/ && (section ~ /io\.containerd\.grpc\.v1\.cri/ || section ~ /io\.containerd\.cri\.v1\.runtime/)) ok = (v == "true")
    }
    END { exit !(ok && !cri_off) }
  ' "$1"
}

# containerd's default config on stdin -> ours: the runc runtime uses the systemd cgroup driver
# (as kubelet does) and registries are configured in /etc/containerd/certs.d.
containerd_config_rewrite() {
  # (config version 2 quotes strings with "", version 3 with '')
  sed -E -e 's/^([[:space:]]*)SystemdCgroup = false/\1SystemdCgroup = true/' \
    -e "s#^([[:space:]]*)config_path = (\"\"|'')#\1config_path = '/etc/containerd/certs.d'#"
}

containerd_pkg() {
  # The distribution's containerd when it is 1.7 or newer; else Docker's containerd.io.
  local v
  v=$(apt_candidate containerd)
  v=${v#*:}
  if [[ -n $v ]] && printf '1.7\n%s\n' "${v%%[-+~]*}" | sort -V -C; then printf 'containerd'; else printf 'containerd.io'; fi
}
hosts_toml_text() {
  printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true' "$REGISTRY" "$REGISTRY"
}
check_containerd() {
  { pkg_installed containerd || pkg_installed containerd.io; } || return 1
  containerd_config_ok "$CONTAINERD_CONFIG" || return 1
  grep -Eq "config_path = [\"']/etc/containerd/certs.d[\"']" "$CONTAINERD_CONFIG" || return 1
  [[ -z ${REGISTRY:-} ]] || file_is "/etc/containerd/certs.d/$REGISTRY/hosts.toml" "$(hosts_toml_text)" || return 1
  unit_active containerd
}
do_containerd() {
  ensure_apt_lists
  local pkg
  pkg=$(containerd_pkg)
  if [[ $pkg == containerd.io ]] && ! pkg_installed containerd.io; then
    local base
    base="https://download.docker.com/linux/$(os_id)"
    log "this distribution's containerd is older than 1.7; using containerd.io from $base"
    require_reachable "$base/gpg"
    install -d -m 0755 /etc/apt/keyrings
    fetch "$base/gpg" "$DOCKER_KEY"
    chmod 0644 "$DOCKER_KEY"
    write_file "$DOCKER_LIST" "deb [arch=$(dpkg --print-architecture) signed-by=$DOCKER_KEY] $base $(os_codename) stable" 0644
    apt_update
  fi
  pkg_installed "$pkg" || apt_install "$pkg"
  install -d -m 0755 /etc/containerd
  write_file "$CONTAINERD_CONFIG" "$(containerd config default | containerd_config_rewrite)" 0644
  if [[ -n ${REGISTRY:-} ]]; then
    write_file "/etc/containerd/certs.d/$REGISTRY/hosts.toml" "$(hosts_toml_text)" 0644
  fi
  containerd_config_ok "$CONTAINERD_CONFIG" || die "containerd's default configuration has no runc SystemdCgroup option to set (containerd $(containerd --version 2>&1))"
  systemctl enable containerd >/dev/null 2>&1
  systemctl restart containerd
}

# --- kube_repo: pkgs.k8s.io, one repository per minor --------------------------------------
kube_base() { printf 'https://pkgs.k8s.io/core:/stable:/v%s/deb/' "$K8S_VERSION"; }
check_kube_repo() { [[ -s $KUBE_KEY ]] && file_is "$KUBE_LIST" "deb [signed-by=$KUBE_KEY] $(kube_base) /"; }
do_kube_repo() {
  require_reachable "$(kube_base)Release.key"
  install -d -m 0755 /etc/apt/keyrings
  fetch "$(kube_base)Release.key" "$KUBE_KEY"
  chmod 0644 "$KUBE_KEY"
  write_file "$KUBE_LIST" "deb [signed-by=$KUBE_KEY] $(kube_base) /" 0644
  apt_update
}

# --- kube_packages ------------------------------------------------------------------------
KUBE_PACKAGES=(kubelet kubeadm kubectl)
check_kube_packages() {
  pkg_installed "${KUBE_PACKAGES[@]}" || return 1
  [[ $(apt-mark showhold | grep -cxE 'kubelet|kubeadm|kubectl') -eq 3 ]] || return 1
  kubeadm version -o short 2>/dev/null | grep -q "^v$K8S_VERSION\."
}
do_kube_packages() {
  apt-mark unhold "${KUBE_PACKAGES[@]}" >/dev/null 2>&1 || true
  apt_install "${KUBE_PACKAGES[@]}"
  apt-mark hold "${KUBE_PACKAGES[@]}" >/dev/null
  systemctl enable kubelet >/dev/null 2>&1
}

# --- kubeadm_init -------------------------------------------------------------------------
KUBEADM_CONFIG=/etc/kubernetes/autolabs-kubeadm.yaml
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
check_kubeadm_init() { cluster_answers; }
do_kubeadm_init() {
  # Safe to re-run (--force, changed inputs): never initialise over an existing cluster.
  if [[ -f /etc/kubernetes/manifests/kube-apiserver.yaml ]]; then
    WAIT_SECONDS=120 wait_until cluster_answers && return 0
    die "a control plane exists (/etc/kubernetes/manifests) but does not answer; check kubelet (journalctl -u kubelet) or reset it with kubeadm reset"
  fi
  write_file "$KUBEADM_CONFIG" "$(kubeadm_config_text)" 0600
  kubeadm init --config "$KUBEADM_CONFIG" --upload-certs >&2 || die "kubeadm init failed (see the output above)"
  WAIT_SECONDS=180 wait_until cluster_answers || die "the API server did not become ready within 3 minutes"
}

# --- untaint ------------------------------------------------------------------------------
check_untaint() {
  local taints
  taints=$(kubectl_ get nodes -o jsonpath='{.items[*].spec.taints[*].key}' 2>/dev/null) || return 1
  [[ $taints != *node-role.kubernetes.io/control-plane* ]]
}
do_untaint() { kubectl_ taint nodes --all node-role.kubernetes.io/control-plane- >&2; }

# --- calico: tigera operator, pinned, with the configured pod CIDR -------------------------
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
check_calico() {
  [[ $(kubectl_ get installation default -o jsonpath='{.spec.calicoNetwork.ipPools[0].cidr}' 2>/dev/null) == "$POD_CIDR" ]] &&
    kubectl_ get tigerastatus calico -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null | grep -qx True
}
do_calico() {
  local url="https://raw.githubusercontent.com/projectcalico/calico/$CALICO_VERSION/manifests/tigera-operator.yaml"
  require_reachable "$url"
  local tmp
  tmp=$(mktemp -d)
  fetch "$url" "$tmp/operator.yaml"
  kubectl_ apply --server-side --force-conflicts -f "$tmp/operator.yaml" >&2
  kubectl_ wait --for=condition=Established --timeout=120s crd/installations.operator.tigera.io >&2
  printf '%s\n' "$(calico_installation_text)" | kubectl_ apply -f - >&2
  rm -rf "$tmp"
  WAIT_SECONDS=600 wait_until check_calico || die "Calico did not become available within 10 minutes: $(kubectl_ get tigerastatus 2>&1 | tail -n 3 | tr '\n' ' ')"
}

# --- ingress: F5 NGINX Ingress Controller (OSS), pinned ------------------------------------
INGRESS_NS=ingress-nginx
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
  fetch "$base/deployments/common/ns-and-sa.yaml" "$tmp/10-ns-and-sa.yaml"
  fetch "$base/deployments/rbac/rbac.yaml" "$tmp/20-rbac.yaml"
  fetch "$base/deployments/common/nginx-config.yaml" "$tmp/30-nginx-config.yaml"
  fetch "$base/deployments/common/ingress-class.yaml" "$tmp/40-ingress-class.yaml"
  fetch "$base/deployments/daemon-set/nginx-ingress.yaml" "$tmp/50-daemon-set.yaml"
  # The upstream manifests use the namespace "nginx-ingress"; the platform's is ingress-nginx
  # (created by us, so the upstream Namespace document is dropped).
  for f in "$tmp"/[1-5]*.yaml; do
    sed -i -E "s/namespace: nginx-ingress\$/namespace: $INGRESS_NS/" "$f"
  done
  awk 'BEGIN { RS = "\n---\n"; ORS = "\n---\n" } !/kind: Namespace/' "$tmp/10-ns-and-sa.yaml" >"$tmp/10-sa.yaml"
  rm -f "$tmp/10-ns-and-sa.yaml"
  kubectl_ create namespace "$INGRESS_NS" --dry-run=client -o yaml | kubectl_ apply -f - >&2
  sed -i -E "s#image: nginx/nginx-ingress:.*#image: nginx/nginx-ingress:$INGRESS_VERSION#" "$tmp/50-daemon-set.yaml"
  kubectl_ apply --server-side -f "$tmp/00-crds.yaml" >&2
  for f in "$tmp"/[1-5]*.yaml; do kubectl_ apply -f "$f" >&2; done
  rm -rf "$tmp"
  kubectl_ -n "$INGRESS_NS" rollout status daemonset/nginx-ingress --timeout=300s >&2 ||
    die "the NGINX Ingress Controller did not become ready within 5 minutes"
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

# --- kubeconfig: the orchestrator copies admin.conf to the workspace after this step ------
check_kubeconfig() { [[ -f $ADMIN_CONF ]] && grep -q "server: https://$VM_IP:6443" "$ADMIN_CONF"; }
do_kubeconfig() { die "$ADMIN_CONF does not point at https://$VM_IP:6443; re-run with --force --only k8s"; }

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then stage_main "$@"; fi
