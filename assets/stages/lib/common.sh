# shellcheck shell=bash
# Shared helpers for the stage scripts (sourced, never run on its own).
#
# Contract with the orchestrator (src/deploy/):
#   bash <stage>.sh <env-file> <step-id>...
# runs each named step: `check_<id>` (exit 0 = already done) and, when it is not done,
# `do_<id>` followed by the check again. One machine-readable line per step on stdout:
#   AUTOLABS_STEP <id> unchanged|changed
# Problems are reported as `AUTOLABS_ERROR <message>` (fatal) or `AUTOLABS_WARN <message>`.
# Parameters come only from the 0600 env file: secrets are never on a command line and
# never printed.

set -Eeuo pipefail
set +x # never trace: the env file holds passwords
umask 077
# A command failing under `set -e` says which one (the text before expansion: no secrets).
trap 'rc=$?; printf "AUTOLABS_ERROR %s failed (exit %s) in %s\n" "$BASH_COMMAND" "$rc" "${FUNCNAME[0]:-main}" >&2' ERR

AUTOLABS_STATE_DIR=${AUTOLABS_STATE_DIR:-/var/lib/autolabs}
# Fail fast instead of hanging when a package source is unreachable (MISSION: "no hangs").
APT_TIMEOUT=${APT_TIMEOUT:-20}
CURL_OPTS=(--fail --silent --show-error --location --connect-timeout 10 --max-time 120)

log() { printf '%s\n' "$*" >&2; }
warn() { printf 'AUTOLABS_WARN %s\n' "$*" >&2; }
die() {
  printf 'AUTOLABS_ERROR %s\n' "$*" >&2
  exit 1
}

# The hint every "cannot reach a source" error carries.
proxy_hint() {
  if [[ -n ${APT_PROXY:-} ]]; then
    printf 'The apt proxy %s (network.aptProxy in autolabs.yaml) is in use; check that it can reach this source.' "$APT_PROXY"
  else
    printf 'If this network needs a proxy or a local cache, set network.aptProxy in autolabs.yaml (e.g. http://10.0.0.5:3142) and run autolabs deploy again.'
  fi
}

# Load the stage parameters. The file must be private: it carries passwords.
load_env() {
  local file=$1
  [[ -f $file ]] || die "parameter file $file is missing"
  local mode
  mode=$(stat -c '%a' "$file")
  [[ $mode == 600 || $mode == 400 ]] || die "parameter file $file has mode $mode; it must be 0600"
  # shellcheck source=/dev/null
  source "$file"
}

AUTOLABS_FORCE=${AUTOLABS_FORCE:-0}

run_step() {
  local id=$1
  declare -F "check_$id" >/dev/null || die "unknown step '$id' in $(basename "$0")"
  declare -F "do_$id" >/dev/null || die "step '$id' has no action"
  # Forced (--force, or an input changed): run the action even though the check passes.
  if [[ $AUTOLABS_FORCE != 1 ]] && "check_$id"; then
    printf 'AUTOLABS_STEP %s unchanged\n' "$id"
    return 0
  fi
  log "== $id: not done yet, running it"
  "do_$id"
  if ! "check_$id"; then
    die "step $id ran but its check still fails (see the output above)"
  fi
  printf 'AUTOLABS_STEP %s changed\n' "$id"
}

# Entry point of every stage script: <stage>.sh [--force] <env-file> <step-id>...
stage_main() {
  if [[ ${1:-} == --force ]]; then
    AUTOLABS_FORCE=1
    shift
  fi
  if [[ $# -lt 2 ]]; then
    die "usage: $(basename "$0") [--force] <env-file> <step-id>..."
  fi
  [[ $(id -u) -eq 0 ]] || die "$(basename "$0") must run as root (through sudo)"
  load_env "$1"
  shift
  # One step at a time per machine: a step orphaned by a dropped SSH connection keeps running;
  # the next deploy waits for it here and then finds its work done (nothing is done twice).
  install -d -m 0755 "$AUTOLABS_STATE_DIR"
  exec 9>"$AUTOLABS_STATE_DIR/step.lock"
  if ! flock -n 9; then
    log "another autolabs step is still running on this machine; waiting for it (at most 30 min)"
    flock -w 1800 9 || die "another autolabs step has held $AUTOLABS_STATE_DIR/step.lock for 30 minutes"
  fi
  local id
  for id in "$@"; do run_step "$id"; done
}

# --- files --------------------------------------------------------------------------------

# True when file $1 exists and holds exactly the text $2 (a trailing newline is added).
file_is() {
  [[ -f $1 ]] && [[ $(cat "$1") == "$2" ]]
}

# Write $2 to $1 with mode $3 (default 0644) atomically; owner $4 optional (user:group).
write_file() {
  local file=$1 content=$2 mode=${3:-0644} owner=${4:-}
  local tmp
  install -d -m 0755 "$(dirname "$file")"
  tmp=$(mktemp "$(dirname "$file")/.autolabs.XXXXXX")
  printf '%s\n' "$content" >"$tmp"
  chmod "$mode" "$tmp"
  if [[ -n $owner ]]; then chown "$owner" "$tmp"; fi
  mv -f "$tmp" "$file"
}

# --- packages -----------------------------------------------------------------------------

APT_OPTS=(
  -o "Acquire::http::Timeout=$APT_TIMEOUT"
  -o "Acquire::https::Timeout=$APT_TIMEOUT"
  -o "Acquire::Retries=1"
  -o "DPkg::Lock::Timeout=600"
  -o "APT::Update::Error-Mode=any"
)

# Turn apt's output into the first unreachable source's URL, if any.
apt_failed_source() {
  grep -Eo '^(Err|E|W):.*(https?://[^ ]+)' | grep -Eo 'https?://[^ ]+' | head -n 1 || true
}

apt_update() {
  local out rc=0
  out=$(apt-get "${APT_OPTS[@]}" update 2>&1) || rc=$?
  printf '%s\n' "$out" >&2
  if [[ $rc -ne 0 ]] || grep -Eq '^(Err:|E: Failed to fetch|W: Failed to fetch)' <<<"$out"; then
    local src
    src=$(apt_failed_source <<<"$out")
    die "apt cannot reach the package source ${src:-(see the log)}. $(proxy_hint)"
  fi
}

# A dpkg run cut short (a dropped connection killed apt) must be finished before the next.
dpkg_repair() {
  if [[ -n $(dpkg --audit 2>/dev/null) ]]; then
    log "dpkg was interrupted earlier; finishing its work (dpkg --configure -a)"
    DEBIAN_FRONTEND=noninteractive dpkg --configure -a >&2
  fi
}

# Install packages; a fetch failure names the source instead of a bare apt error.
apt_install() {
  dpkg_repair
  local out rc=0
  out=$(DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "$@" 2>&1) || rc=$?
  printf '%s\n' "$out" >&2
  if [[ $rc -ne 0 ]]; then
    local src
    src=$(apt_failed_source <<<"$out")
    if [[ -n $src ]]; then
      die "apt cannot download from $src while installing $*. $(proxy_hint)"
    fi
    die "apt-get install $* failed: $(tail -n 3 <<<"$out" | tr '\n' ' ')"
  fi
}

# Package lists present? (A fresh cloud image may have none.)
ensure_apt_lists() {
  if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then apt_update; fi
}

pkg_installed() {
  local p
  for p in "$@"; do
    # "install ok installed", or "hold ok installed" once apt-mark hold pinned it.
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) == @(install|hold)' ok installed' ]] || return 1
  done
}

# Candidate version of a package from the configured sources ("" when none).
apt_candidate() {
  local v
  v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
  [[ $v == '(none)' ]] && v=''
  printf '%s' "$v"
}

# Major number of a Debian version string: "5:7.0.15-1~deb12u1" -> 7, "15+248" -> 15.
deb_major() {
  local v=${1#*:}
  printf '%s' "${v%%[.+~-]*}"
}

# --- network sources ----------------------------------------------------------------------

# Direct HTTPS downloads (keys, release files) do not go through the apt proxy.
https_hint() {
  if [[ -n ${APT_PROXY:-} ]]; then
    printf 'The VM fetches it directly over HTTPS: network.aptProxy (%s) serves only apt'"'"'s HTTP sources. Let the VM reach this host over HTTPS (firewall, proxy allow-list) and run autolabs deploy again.' "$APT_PROXY"
  else
    printf 'The VM fetches it directly over HTTPS: let the VM reach this host (for apt'"'"'s HTTP sources a cache or proxy can be set as network.aptProxy in autolabs.yaml) and run autolabs deploy again.'
  fi
}

# Fail at once (bounded by curl's timeouts) when an HTTPS source cannot be reached.
require_reachable() {
  local url=$1 err
  if ! err=$(curl "${CURL_OPTS[@]}" --max-time 30 --head --output /dev/null "$url" 2>&1); then
    die "cannot reach $url (${err:-no answer}). $(https_hint)"
  fi
}

# Download $1 to $2; on failure name the URL.
fetch() {
  local url=$1 dest=$2 err
  if ! err=$(curl "${CURL_OPTS[@]}" --output "$dest" "$url" 2>&1); then
    die "cannot download $url (${err:-no answer}). $(https_hint)"
  fi
}

os_id() { (. /etc/os-release && printf '%s' "$ID"); }
os_codename() { (. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}"); }

in_container() { systemd-detect-virt --container --quiet 2>/dev/null; }

# --- IPv4 ---------------------------------------------------------------------------------

ip_to_int() {
  local IFS=.
  # shellcheck disable=SC2206 # splitting on dots is the point
  local o=($1)
  [[ ${#o[@]} -eq 4 ]] || return 1
  printf '%d' $(((o[0] << 24) + (o[1] << 16) + (o[2] << 8) + o[3]))
}

# cidr_contains 10.0.0.0/24 10.0.0.7 -> exit 0
cidr_contains() {
  local net=${1%/*} bits=${1#*/} ip=$2 n a mask
  [[ $1 == */* ]] || bits=32
  n=$(ip_to_int "$net") || return 1
  a=$(ip_to_int "$ip") || return 1
  if [[ $bits -eq 0 ]]; then return 0; fi
  mask=$(((0xffffffff << (32 - bits)) & 0xffffffff))
  [[ $((n & mask)) -eq $((a & mask)) ]]
}

# --- systemd ------------------------------------------------------------------------------

unit_active() { systemctl is-active --quiet "$1"; }
unit_enabled() { systemctl is-enabled --quiet "$1" 2>/dev/null; }

# Wait (bounded) until command "$@" succeeds; $WAIT_SECONDS (default 60) limits it.
wait_until() {
  local limit=${WAIT_SECONDS:-60} start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - start >= limit)); then return 1; fi
    sleep 1
  done
}
