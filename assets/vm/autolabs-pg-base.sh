#!/usr/bin/env bash
# autolabs-pg-base: PostgreSQL base backups on database-vm, and a WAL archive bounded by them.
# Installed by `autolabs backup schedule` as /usr/local/sbin/autolabs-pg-base and run daily by
# autolabs-pg-base.timer, so the archive always has a recent base to replay from, even when
# the admin workstation is off.
#
#   autolabs-pg-base take  [--id YYYYMMDD-HHMMSS] [--keep-daily N] [--keep-weekly M]
#   autolabs-pg-base prune [--keep-daily N] [--keep-weekly M]
#   autolabs-pg-base keep  N M      ids on stdin → the ids to keep (the retention rule alone)
#
# take: pg_basebackup (tar, WAL fetched into it, label autolabs-<id>) compressed into
#   $BASE_DIR/<id>.tar.zst (.gz without zstd), then prune.
# prune: keeps base backups with Proxmox's prune rules (keep-daily, then keep-weekly; the same
#   rules as src/backup/retention.ts), deletes the others, and removes from the archive every
#   WAL segment older than the oldest kept base backup's start (pg_archivecleanup), with the
#   backup history files of the removed backups.
set -euo pipefail

ARCHIVE=${AUTOLABS_WAL_ARCHIVE:-/var/lib/postgresql/wal-archive}
BASE_DIR=${AUTOLABS_BASE_DIR:-/var/lib/postgresql/base-backups}
KEEP_DAILY=7
KEEP_WEEKLY=4
ID=

log() { printf 'autolabs-pg-base: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# rule KEEP KEYS: one prune rule over the ids (newest first) not marked by an earlier rule: keeps
# the newest id of each of the first KEEP periods not already covered by a kept id.
rule() {
  local keep=$1 i k n=0
  local -n keys=$2
  local -A covered=() seen=()
  ((keep > 0)) || return 0
  for i in "${!ids[@]}"; do [[ ${mark[i]:-} == keep ]] && covered[${keys[i]}]=1; done
  for i in "${!ids[@]}"; do
    [[ -z ${mark[i]:-} ]] || continue
    k=${keys[i]}
    [[ -z ${covered[$k]:-} ]] || continue
    if [[ -z ${seen[$k]:-} ]]; then
      ((n < keep)) || break
      seen[$k]=1
      n=$((n + 1))
      mark[i]=keep
    else
      mark[i]=remove
    fi
  done
}

# keep_ids DAILY WEEKLY < ids: the ids to keep, newest first. Days are UTC days, weeks ISO weeks.
keep_ids() {
  local daily=$1 weekly=$2 i day
  local -a ids=() days=() weeks=() mark=()
  mapfile -t ids < <(grep -E '^[0-9]{8}-[0-9]{6}$' | sort -r -u)
  ((${#ids[@]} > 0)) || return 0
  if ((daily == 0 && weekly == 0)); then
    printf '%s\n' "${ids[@]}"
    return 0
  fi
  # shellcheck disable=SC2034 # days and weeks are read through rule()'s nameref
  for i in "${!ids[@]}"; do
    day="${ids[i]:0:4}-${ids[i]:4:2}-${ids[i]:6:2}"
    days[i]=$day
    weeks[i]=$(date -u -d "$day" +%G-W%V)
  done
  rule "$daily" days
  rule "$weekly" weeks
  for i in "${!ids[@]}"; do [[ ${mark[i]:-} != keep ]] || printf '%s\n' "${ids[i]}"; done
}

pg_bin() {
  local d
  d=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -name "$1" -path '*/bin/*' 2>/dev/null | sort -V | tail -n 1)
  [[ -n $d ]] || die "$1 not found under /usr/lib/postgresql"
  printf '%s' "$d"
}

base_ids() {
  find "$BASE_DIR" -maxdepth 1 -type f \( -name '*.tar.zst' -o -name '*.tar.gz' \) -printf '%f\n' 2>/dev/null |
    sed -n 's/^\([0-9]\{8\}-[0-9]\{6\}\)\.tar\.\(zst\|gz\)$/\1/p'
}

# history_of ID: the archive's backup history file (<segment>.<offset>.backup) labelled autolabs-ID.
history_of() {
  local f
  for f in "$ARCHIVE"/*.backup; do
    [[ -f $f ]] || continue
    if grep -qx "LABEL: autolabs-$1" "$f"; then
      printf '%s' "$f"
      return 0
    fi
  done
  return 1
}

prune() {
  local keep oldest hist cut f name id
  keep=$(base_ids | keep_ids "$KEEP_DAILY" "$KEEP_WEEKLY")
  for id in $(base_ids); do
    grep -qx "$id" <<<"$keep" && continue
    log "removing base backup $id (retention keep-daily $KEEP_DAILY, keep-weekly $KEEP_WEEKLY)"
    rm -f -- "$BASE_DIR/$id.tar.zst" "$BASE_DIR/$id.tar.gz" "$BASE_DIR/$id.sha256"
    if hist=$(history_of "$id"); then rm -f -- "$hist"; fi
  done
  oldest=$(tail -n 1 <<<"$keep")
  [[ -n $oldest ]] || {
    log "no base backup on this VM: the WAL archive is not pruned"
    return 0
  }
  hist=$(history_of "$oldest") || {
    log "no backup history file labelled autolabs-$oldest in $ARCHIVE: the WAL archive is not pruned"
    return 0
  }
  cut=$(basename "$hist")
  # Segments (any timeline) before the oldest kept base backup's start can never be replayed.
  "$(pg_bin pg_archivecleanup)" "$ARCHIVE" "$cut"
  for f in "$ARCHIVE"/*.backup; do
    [[ -f $f ]] || continue
    name=$(basename "$f")
    [[ ${name:8:16} < ${cut:8:16} ]] && rm -f -- "$f"
  done
  log "kept $(wc -l <<<"$keep") base backups (oldest $oldest); archive pruned before ${cut:0:24}"
}

take() {
  local id=${ID:-$(date -u +%Y%m%d-%H%M%S)} f sum i ext=gz
  local -a comp=(gzip -c)
  [[ $id =~ ^[0-9]{8}-[0-9]{6}$ ]] || die "--id must look like 20261201-020000 (got $id)"
  if command -v zstd >/dev/null 2>&1; then
    comp=(zstd -q -3 -T0 -c)
    ext=zst
  fi
  install -d -m 0700 -o postgres -g postgres "$BASE_DIR"
  rm -f -- "$BASE_DIR"/*.partial
  f="$BASE_DIR/$id.tar.$ext"
  cd /
  runuser -u postgres -- pg_basebackup -D - -Ft -X fetch -c fast -l "autolabs-$id" | "${comp[@]}" >"$f.partial"
  sum=$(sha256sum "$f.partial" | cut -d' ' -f1)
  printf '%s  %s\n' "$sum" "$id.tar.$ext" >"$BASE_DIR/$id.sha256"
  mv -- "$f.partial" "$f"
  log "base backup $id: $(stat -c %s "$f") bytes"
  # The history file is archived just after the backup ends; prune needs it for the oldest.
  for ((i = 0; i < 60; i++)); do
    history_of "$id" >/dev/null && break
    sleep 1
  done
  history_of "$id" >/dev/null || log "backup history file of $id not archived yet (is WAL archiving on?)"
  prune
}

main() {
  local cmd=${1:-}
  shift || true
  while (($# > 0)); do
    case $1 in
      --id) ID=${2:?--id needs a value} && shift 2 ;;
      --keep-daily) KEEP_DAILY=${2:?} && shift 2 ;;
      --keep-weekly) KEEP_WEEKLY=${2:?} && shift 2 ;;
      *) break ;;
    esac
  done
  [[ $KEEP_DAILY =~ ^[0-9]+$ && $KEEP_WEEKLY =~ ^[0-9]+$ ]] || die "--keep-daily and --keep-weekly take whole numbers"
  case $cmd in
    take) take ;;
    prune) prune ;;
    keep) keep_ids "${1:?keep DAILY WEEKLY}" "${2:?keep DAILY WEEKLY}" ;;
    *) die "usage: autolabs-pg-base take|prune [--id ID] [--keep-daily N] [--keep-weekly M] | keep N M" ;;
  esac
}

main "$@"
