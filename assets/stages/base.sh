#!/usr/bin/env bash
# Stage "base" (every VM): boot finished, apt proxy, base packages, guest agent, time sync,
# firewall. Parameters (env file): VM_ROLE VM_IP VM_SUBNET ADMIN_CIDRS APT_PROXY
# ROLE_PORTS ("port/proto ..." open to the VM subnet) PUBLIC_PORTS (also open to ADMIN_CIDRS).
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

APT_PROXY_FILE=${APT_PROXY_FILE:-/etc/apt/apt.conf.d/01autolabs-proxy}
APT_TIMEOUTS_FILE=${APT_TIMEOUTS_FILE:-/etc/apt/apt.conf.d/02autolabs-timeouts}
BASE_PACKAGES=(ca-certificates curl gnupg iproute2 python3)
# Installed with the base packages in one apt run (each dpkg run costs seconds); the steps
# below configure them and install whatever is still missing.
extra_packages() {
  printf '%s\n' qemu-guest-agent ufw
  pkg_installed chrony || printf '%s\n' systemd-timesyncd
}

# --- wait_boot: cloud-init finished, nobody holds apt --------------------------------------
# shellcheck source=lib/apt-locks.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt-locks.sh"
# Busy = a dpkg/apt lock is held (never a process name: see lib/apt-locks.sh).
apt_busy() { ! apt_lock_holders >/dev/null; }
cloud_init_done() {
  command -v cloud-init >/dev/null 2>&1 || return 0
  local s
  s=$(cloud-init status 2>/dev/null | awk '/^status:/ {print $2}')
  [[ $s == "done" || $s == disabled || $s == error || $s == degraded ]]
}
check_wait_boot() { cloud_init_done && ! apt_busy; }
do_wait_boot() {
  if command -v cloud-init >/dev/null 2>&1; then
    log "waiting for cloud-init to finish (at most 15 min)"
    timeout 900 cloud-init status --wait >/dev/null 2>&1 || true
    cloud_init_done || die "cloud-init did not finish within 15 minutes (cloud-init status: $(cloud-init status 2>&1 | head -n 1))"
  fi
  WAIT_SECONDS=600 wait_until apt_lock_holders ||
    die "apt/dpkg is still busy after 10 minutes (another installation is running: $(apt_lock_holders | head -n 1))"
}

# --- apt_proxy ----------------------------------------------------------------------------
# The same grammar as autolabs' aptProxy rule (src/config/grammar.ts): scheme, host, optional
# port and "/". A value outside it (a quote, ";", a newline, a user or a path) could end the
# quoted apt.conf string and add configuration of its own (APT::Update::Pre-Invoke runs as root),
# so it is refused here too, whatever wrote the env file.
APT_PROXY_RE='^https?://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?/?$'
apt_proxy_text() {
  [[ $APT_PROXY =~ $APT_PROXY_RE ]] ||
    die "APT_PROXY is not a plain http(s)://host[:port] URL; refusing to write it into apt.conf (set network.aptProxy in autolabs.yaml to e.g. http://10.0.0.5:3142)"
  printf 'Acquire::http::Proxy "%s";' "$APT_PROXY"
}
apt_timeouts_text() {
  printf 'Acquire::http::Timeout "%s";\nAcquire::https::Timeout "%s";\nAcquire::Retries "1";' "$APT_TIMEOUT" "$APT_TIMEOUT"
}
check_apt_proxy() {
  file_is "$APT_TIMEOUTS_FILE" "$(apt_timeouts_text)" || return 1
  if [[ -n ${APT_PROXY:-} ]]; then
    local text
    text=$(apt_proxy_text) || return 1
    file_is "$APT_PROXY_FILE" "$text"
  else
    [[ ! -e $APT_PROXY_FILE ]]
  fi
}
do_apt_proxy() {
  write_file "$APT_TIMEOUTS_FILE" "$(apt_timeouts_text)" 0644
  if [[ -n ${APT_PROXY:-} ]]; then
    local text
    text=$(apt_proxy_text) || exit 1
    write_file "$APT_PROXY_FILE" "$text" 0644
  else
    rm -f "$APT_PROXY_FILE"
  fi
}

# --- packages -----------------------------------------------------------------------------
check_packages() {
  compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null && pkg_installed "${BASE_PACKAGES[@]}"
}
do_packages() {
  apt_update
  local extra
  mapfile -t extra < <(extra_packages)
  apt_install "${BASE_PACKAGES[@]}" "${extra[@]}"
}

# --- guest_agent --------------------------------------------------------------------------
GA_DEVICE=/dev/virtio-ports/org.qemu.guest_agent.0
check_guest_agent() {
  pkg_installed qemu-guest-agent || return 1
  if [[ -e $GA_DEVICE ]]; then unit_active qemu-guest-agent; fi
}
do_guest_agent() {
  pkg_installed qemu-guest-agent || apt_install qemu-guest-agent
  if [[ -e $GA_DEVICE ]]; then
    systemctl enable --now qemu-guest-agent
  else
    warn "no guest agent channel ($GA_DEVICE): enable the VM's QEMU agent option in Proxmox (agent: 1); the agent starts once it exists"
  fi
}

# --- time_sync ----------------------------------------------------------------------------
time_unit() {
  if pkg_installed chrony; then printf 'chrony'; else printf 'systemd-timesyncd'; fi
}
check_time_sync() {
  local unit
  unit=$(time_unit)
  [[ $unit == chrony ]] || pkg_installed systemd-timesyncd || return 1
  # Masked: someone chose another time source on purpose (or the host keeps the clock).
  [[ $(systemctl is-enabled "$unit" 2>/dev/null) != masked ]] || return 0
  unit_enabled "$unit" || return 1
  # systemd-timesyncd refuses to run in a container (the host keeps the clock).
  unit_active "$unit" || in_container
}
do_time_sync() {
  local unit
  unit=$(time_unit)
  if [[ $unit == systemd-timesyncd ]] && ! pkg_installed systemd-timesyncd; then apt_install systemd-timesyncd; fi
  if [[ $(systemctl is-enabled "$unit" 2>/dev/null) == masked ]]; then
    warn "$unit is masked on this machine; leaving time synchronisation as it is"
    return 0
  fi
  systemctl enable "$unit"
  systemctl start "$unit" || true
  if ! unit_active "$unit"; then
    if in_container; then
      warn "$unit does not run inside a container; the host's clock is used"
    else
      die "$unit did not start: $(systemctl status "$unit" --no-pager 2>&1 | tail -n 3 | tr '\n' ' ')"
    fi
  fi
}

# --- firewall -----------------------------------------------------------------------------
# The rules, in the form `ufw show added` prints them (that is what the check compares).
firewall_rules() {
  local cidr port
  for cidr in ${ADMIN_CIDRS:-}; do
    printf 'ufw allow from %s to any port 22 proto tcp\n' "$cidr"
  done
  for port in ${ROLE_PORTS:-}; do
    printf 'ufw allow from %s to any port %s proto %s\n' "$VM_SUBNET" "${port%/*}" "${port#*/}"
  done
  for port in ${PUBLIC_PORTS:-}; do
    for cidr in ${ADMIN_CIDRS:-}; do
      [[ $cidr == "$VM_SUBNET" ]] && continue
      printf 'ufw allow from %s to any port %s proto %s\n' "$cidr" "${port%/*}" "${port#*/}"
    done
  done
}

# Rules ufw has (one per line, in `ufw allow …` form), from `ufw show added` output on stdin.
ufw_added_rules() { sed -n 's/^ufw /ufw /p' | sed 's/[[:space:]]*$//' | sort; }

# The SSH clients connected right now (so we never lock the admin out).
ssh_peers() {
  ss -Htn state established '( sport = :22 )' 2>/dev/null | awk '{print $4}' | sed -E 's/^\[?(::ffff:)?//; s/\]?:[0-9]+$//' | sort -u
}

# Every current SSH peer must be allowed by ADMIN_CIDRS, or enabling ufw would cut us off.
admin_covers_peers() {
  local peer cidr ok
  for peer in $(ssh_peers); do
    [[ $peer == *:* ]] && continue # IPv6 peers: ufw's IPv6 rules are not managed here
    ok=no
    for cidr in ${ADMIN_CIDRS:-}; do
      if cidr_contains "$cidr" "$peer"; then ok=yes; fi
    done
    if [[ $ok == no ]]; then
      printf '%s' "$peer"
      return 1
    fi
  done
}

# --- published ports: traffic ufw's INPUT rules never see ---------------------------------
# Docker's published ports (gitlab-vm) and the ingress controller's hostPorts (k8s-vm, CNI
# portmap) are DNAT-ed in nat PREROUTING to a container or pod and then *forwarded*: ufw's
# INPUT rules above never see them. This chain gives them the same rule: a DNAT-ed connection
# that came in on the VM's own interface passes only if its original port is one of the role's
# ports and its source may reach that port (ROLE_PORTS: VM subnet, PUBLIC_PORTS: admin
# networks too); any other is dropped. It is hooked from
#  - DOCKER-USER, which Docker jumps to first in filter FORWARD and never flushes (moby
#    docker-v29.7.2 daemon/libnetwork/firewall_linux.go setupUserChain), before its own
#    DOCKER-FORWARD chain accepts published ports (…/bridge/internal/iptabler/port.go);
#  - ufw-after-forward, for Calico: its cali-FORWARD returns allowed packets and accepts
#    them only in rules it appends at the end of FORWARD (calico v3.32.1
#    felix/rules/static.go StaticFilterForwardAppendRules), after ufw's chains.
# It lives in ufw's after.rules (iptables-restore syntax, loaded on every ufw start and reload,
# so it survives reboots and Docker restarts); ufw --force reset restores the file without it.
# Traffic from containers and pods themselves (docker0, br-*, cali*) is not filtered here.
AFTER_RULES=${AFTER_RULES:-/etc/ufw/after.rules}
PUBLISHED_CHAIN=autolabs-published
PUBLISHED_BEGIN="# BEGIN autolabs: $PUBLISHED_CHAIN (Docker published ports, Kubernetes hostPorts)"
PUBLISHED_END="# END autolabs: $PUBLISHED_CHAIN"

# The interface that holds VM_IP: where outside traffic comes in.
uplink_iface() {
  ip -o -4 addr show 2>/dev/null | awk -v ip="$VM_IP" '{split($4, a, "/"); if (a[1] == ip) {print $2; exit}}'
}

# The chain's rules, in the form `iptables -S` prints them; $1 is the uplink interface.
published_chain_rules() {
  local iface=$1 c=$PUBLISHED_CHAIN cidr port
  printf -- '-A %s ! -i %s -j RETURN\n' "$c" "$iface"
  printf -- '-A %s -m conntrack ! --ctstate DNAT -j RETURN\n' "$c"
  for port in ${ROLE_PORTS:-}; do
    printf -- '-A %s -s %s -p %s -m conntrack --ctorigdstport %s -j RETURN\n' "$c" "$VM_SUBNET" "${port#*/}" "${port%/*}"
  done
  for port in ${PUBLIC_PORTS:-}; do
    for cidr in ${ADMIN_CIDRS:-}; do
      [[ $cidr == "$VM_SUBNET" ]] && continue
      printf -- '-A %s -s %s -p %s -m conntrack --ctorigdstport %s -j RETURN\n' "$c" "$cidr" "${port#*/}" "${port%/*}"
    done
  done
  printf -- '-A %s -j DROP\n' "$c"
}

# The block appended to after.rules (a *filter section of its own, as iptables-restore reads it).
published_block() {
  printf '%s\n' "$PUBLISHED_BEGIN" '*filter' ':DOCKER-USER - [0:0]' ":$PUBLISHED_CHAIN - [0:0]" \
    "-A DOCKER-USER -j $PUBLISHED_CHAIN" "-A ufw-after-forward -j $PUBLISHED_CHAIN"
  published_chain_rules "$1"
  printf '%s\n' 'COMMIT' "$PUBLISHED_END"
}

# after.rules without our block (on stdin → stdout).
without_published_block() {
  awk -v b="$PUBLISHED_BEGIN" -v e="$PUBLISHED_END" '$0 == b {skip = 1} !skip {print} $0 == e {skip = 0}'
}

# The block in after.rules (stdin → stdout).
published_block_in() {
  awk -v b="$PUBLISHED_BEGIN" -v e="$PUBLISHED_END" '$0 == b {on = 1} on {print} $0 == e {on = 0}'
}

# What the kernel has: the chain's rules and both hooks.
published_chain_loaded() {
  local iface=$1
  [[ $(iptables -S "$PUBLISHED_CHAIN" 2>/dev/null) == "$(printf -- '-N %s\n' "$PUBLISHED_CHAIN"; published_chain_rules "$iface")" ]] &&
    iptables -C DOCKER-USER -j "$PUBLISHED_CHAIN" 2>/dev/null &&
    iptables -C ufw-after-forward -j "$PUBLISHED_CHAIN" 2>/dev/null
}

check_published_ports() {
  local iface
  iface=$(uplink_iface)
  [[ -n $iface && -f $AFTER_RULES ]] || return 1
  [[ $(published_block_in <"$AFTER_RULES") == "$(published_block "$iface")" ]] && published_chain_loaded "$iface"
}
# Writes the block into after.rules (ufw loads it on the next enable/reload).
write_published_block() {
  local iface rest
  iface=$(uplink_iface)
  [[ -n $iface ]] || die "no network interface holds this VM's address $VM_IP (network.vms in autolabs.yaml); cannot limit the published ports to it"
  [[ -f $AFTER_RULES ]] || die "$AFTER_RULES is missing: reinstall ufw (apt-get install --reinstall ufw)"
  rest=$(without_published_block <"$AFTER_RULES")
  write_file "$AFTER_RULES" "$rest"$'\n'"$(published_block "$iface")" 0640
}

check_firewall() {
  pkg_installed ufw || return 1
  [[ $(ufw show added 2>/dev/null | ufw_added_rules) == "$(firewall_rules | sort)" ]] || return 1
  ufw status 2>/dev/null | grep -q '^Status: active' || return 1
  check_published_ports
}
do_firewall() {
  pkg_installed ufw || apt_install ufw
  local peer
  if ! peer=$(admin_covers_peers); then
    die "you are connected over SSH from $peer, which network.adminCidrs (${ADMIN_CIDRS:-none}) does not include; enabling the firewall would lock you out. Add your address to network.adminCidrs."
  fi
  ufw --force reset >/dev/null
  ufw default deny incoming >/dev/null
  ufw default allow outgoing >/dev/null
  local rule
  while IFS= read -r rule; do
    [[ -n $rule ]] || continue
    # shellcheck disable=SC2086 # the rule is words by construction
    ${rule} >/dev/null
  done < <(firewall_rules)
  write_published_block
  # Rules that are written but not enforced would be a silent hole: fail instead.
  local out
  if ! out=$(ufw --force enable 2>&1); then
    die "ufw could not enable the firewall (a container without CAP_NET_ADMIN, or a kernel without netfilter?): $(grep -m 1 -iE 'error|denied|fail' <<<"$out" || tail -n 1 <<<"$out")"
  fi
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then stage_main "$@"; fi
