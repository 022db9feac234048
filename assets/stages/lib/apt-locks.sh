# shellcheck shell=sh
# Who holds the dpkg/apt locks (sourced; POSIX sh). Used by base.sh's wait_boot and, as text,
# by src/ssh/readiness.ts, so that both decide "apt is busy" the same way.
#
# The lock files, not process names: unattended-upgrades' service keeps
# `unattended-upgrade-shutdown --wait-for-signal` (process name "unattended-upgr") running for
# as long as the machine is up, holding no lock; a name match would call apt busy forever.
# fuser sees any holder (apt's fcntl locks and flock alike); without psmisc, flock and a fcntl
# probe through python3 (which cloud-init needs, so a cloud image has it) are used.
APT_LOCK_FILES=${APT_LOCK_FILES:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock}

# Prints "held <file> <pid> <command>" (pid and command "?" when unknown) for the first lock
# file that is held and returns 1; returns 0 when every lock is free.
apt_lock_holders() {
  for alh_f in $APT_LOCK_FILES; do
    [ -e "$alh_f" ] || continue
    alh_held=0
    if command -v fuser >/dev/null 2>&1; then
      alh_pids=$(fuser "$alh_f" 2>/dev/null | tr -cd '0-9 \n') || true
      for alh_p in $alh_pids; do
        printf 'held %s %s %s\n' "$alh_f" "$alh_p" "$(cat "/proc/$alh_p/comm" 2>/dev/null || echo '?')"
        alh_held=1
      done
    else
      alh_rc=0
      flock -n -E 75 "$alh_f" true 2>/dev/null || alh_rc=$?
      if [ "$alh_rc" = 75 ]; then
        alh_held=1
      elif command -v python3 >/dev/null 2>&1 && ! python3 -c 'import fcntl,sys; fcntl.lockf(open(sys.argv[1], "r+"), fcntl.LOCK_EX | fcntl.LOCK_NB)' "$alh_f" 2>/dev/null; then
        alh_held=1
      fi
      [ "$alh_held" = 0 ] || printf 'held %s ? ?\n' "$alh_f"
    fi
    [ "$alh_held" = 0 ] || return 1
  done
  return 0
}
