/**
 * What point-in-time recovery runs on database-vm (bash, `set -euo pipefail`): base backups,
 * the WAL archive, restore and verification. Non-secret parameters are positional ($1…).
 * The archive is the folder the database stage's archive_command copies into.
 */
import {fileURLToPath} from 'node:url'

export const WAL_ARCHIVE_DIR = '/var/lib/postgresql/wal-archive'
export const VM_BASE_DIR = '/var/lib/postgresql/base-backups'

/** The script database-vm runs by itself (assets/vm/), and where `backup schedule` installs it. */
export const PG_BASE_SCRIPT_FILE = fileURLToPath(new URL('../../assets/vm/autolabs-pg-base.sh', import.meta.url))
export const PG_BASE_SCRIPT_PATH = '/usr/local/sbin/autolabs-pg-base'
export const PG_BASE_UNIT = 'autolabs-pg-base'

const STRICT = 'set -euo pipefail'

/**
 * A base backup as one tar on stdout (`-D - -Ft`): WAL fetched into it (`-X fetch`), so it is
 * consistent on its own; an immediate checkpoint; labelled ($1) so its backup history file in the
 * archive can be found. Nothing is written on the VM.
 */
export const PG_BASEBACKUP = `${STRICT}
cd /
exec runuser -u postgres -- pg_basebackup -D - -Ft -X fetch -c fast -l "$1"`

/** The same, compressed on the VM; dd prints the raw size on stderr. */
export const PG_BASEBACKUP_ZSTD = `${STRICT}
cd /
runuser -u postgres -- pg_basebackup -D - -Ft -X fetch -c fast -l "$1" | dd bs=256k | zstd -q -3 -T0 -c`

/**
 * The backup history file labelled $1 in the archive ($2), once archived (waits up to $3 s):
 * "file <name>" then its content. Exit 3 when it does not appear (archiving off or failing).
 */
export const PG_BACKUP_HISTORY = `${STRICT}
label=$1
archive=$2
cd /
mode=$(runuser -u postgres -- psql -X -At -c "SELECT current_setting('archive_mode')")
[ "$mode" != off ] || { echo "autolabs: archive_mode is off (services.postgres.walArchiving): no WAL archive to replay this base backup forward" >&2; exit 3; }
for _ in $(seq 1 "$3"); do
  for f in "$archive"/*.backup; do
    [ -f "$f" ] || continue
    if grep -qx "LABEL: $label" "$f"; then
      echo "file $(basename "$f")"
      cat -- "$f"
      exit 0
    fi
  done
  sleep 1
done
echo "autolabs: no backup history file labelled $label in $archive after $3 s (is WAL archiving on? see pg_stat_archiver)" >&2
exit 3`

/** Files in the archive ($1): "<name> <bytes>" per line; nothing when the folder is missing. */
export const WAL_LIST = `${STRICT}
[ -d "$1" ] || exit 0
find "$1" -maxdepth 1 -type f ! -name '*.partial' -printf '%f %s\\n'`

/** One file of the archive to stdout ($1 = archive, $2 = name). */
export const WAL_CAT = `${STRICT}
case $2 in */* | .*) echo "autolabs: bad WAL file name $2" >&2; exit 2 ;; esac
exec cat -- "$1/$2"`

/** Stores stdin as archive file $2 in $1 (owned by postgres, like archive_command's copies), unless present. */
export const WAL_PUT = `${STRICT}
case $2 in */* | .*) echo "autolabs: bad WAL file name $2" >&2; exit 2 ;; esac
install -d -m 0700 -o postgres -g postgres "$1"
[ -e "$1/$2" ] && { cat >/dev/null; exit 0; }
umask 077
cat >"$1/$2.autolabs-upload"
chown postgres:postgres "$1/$2.autolabs-upload"
mv -- "$1/$2.autolabs-upload" "$1/$2"`

/**
 * Closes the WAL segment in progress so that everything committed so far reaches the archive
 * ($1), and waits (up to $2 s) until the archiver has copied it. Prints "wal <segment>", or
 * "down" when PostgreSQL is not running (nothing to switch).
 */
export const PG_SWITCH_WAL = `${STRICT}
cd /
psql() { runuser -u postgres -- psql -X -At -v ON_ERROR_STOP=1 "$@"; }
if ! runuser -u postgres -- pg_isready -q; then echo down; exit 0; fi
# With nothing written since the last switch, this names the segment before (already archived).
seg=$(psql -c "SELECT pg_walfile_name(pg_switch_wal())")
for _ in $(seq 1 "$2"); do
  done_wal=$(psql -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
  if [ -f "$1/$seg" ] || { [[ $done_wal =~ ^[0-9A-F]{24}$ ]] && ! [[ \${done_wal:8:16} < \${seg:8:16} ]]; }; then
    echo "wal $seg"
    exit 0
  fi
  sleep 1
done
echo "autolabs: WAL segment $seg was not archived within $2 s: $(psql -c "SELECT 'last failure ' || coalesce(last_failed_wal, '-') || ' at ' || coalesce(last_failed_time::text, '-') FROM pg_stat_archiver")" >&2
exit 3`

/**
 * Point-in-time restore. stdin: the base backup as a plain tar. $1 = PostgreSQL major (the
 * cluster "main" of it; empty: the only cluster), $2 = stamp for the folder names, $3 = the
 * recovery target time (ISO, UTC) or empty for the end of the archive, $4 = the archive.
 *
 * The base backup goes into a new data directory beside the current one; PostgreSQL stops;
 * the current directory is kept as <data>.autolabs-before-<stamp>; the server starts in
 * archive recovery (restore_command copies from the archive) and promotes at the target. If it
 * does not come up, the previous data directory is put back and started: nothing is lost.
 * Prints "old-data <path>" and "replayed-to <time>".
 */
export const PG_PITR_RESTORE = `${STRICT}
cd /
ver=$1
stamp=$2
target=$3
archive=$4
if [ -z "$ver" ]; then
  ver=$(pg_lsclusters -h | awk '$2 == "main" {print $1}')
  [ "$(wc -w <<<"$ver")" = 1 ] || { echo "autolabs: expected one PostgreSQL cluster named main, found: $ver" >&2; exit 3; }
fi
data=$(pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" {print $6}')
[ -n "$data" ] || { echo "autolabs: no PostgreSQL $ver cluster main on this VM (pg_lsclusters)" >&2; exit 3; }
unit="postgresql@$ver-main"
conf="/etc/postgresql/$ver/main/conf.d/90-autolabs-recovery.conf"
log="/var/log/postgresql/postgresql-$ver-main.log"
new="$data.autolabs-restore-$stamp"
old="$data.autolabs-before-$stamp"
rm -rf -- "$new"
install -d -m 0700 -o postgres -g postgres "$new"
runuser -u postgres -- tar -x -C "$new"
[ -f "$new/PG_VERSION" ] || { rm -rf -- "$new"; echo "autolabs: the base backup did not unpack into a data directory (no PG_VERSION)" >&2; exit 4; }
# pg_basebackup's own manifest is for pg_verifybackup, not for a running cluster.
rm -f -- "$new/backup_manifest"
runuser -u postgres -- touch "$new/recovery.signal"
install -d -m 0755 -o postgres -g postgres "$(dirname "$conf")"
{
  echo "# Managed by autolabs: point-in-time restore $stamp (removed once the server is promoted)."
  echo "restore_command = 'cp $archive/%f \\"%p\\"'"
  echo "recovery_target_timeline = 'latest'"
  if [ -n "$target" ]; then
    echo "recovery_target_time = '$target'"
    echo "recovery_target_action = 'promote'"
  fi
} >"$conf"
chown postgres:postgres "$conf"
lines_before=$(wc -l <"$log" 2>/dev/null || echo 0)
systemctl stop "$unit"
mv -- "$data" "$old"
mv -- "$new" "$data"
promoted() { [ "$(PGCONNECT_TIMEOUT=5 timeout 10 runuser -u postgres -- psql -X -At -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; }
rollback() {
  echo "autolabs: the restored server did not come up; putting the previous data directory back" >&2
  tail -n +"$((lines_before + 1))" "$log" 2>/dev/null | tail -n 15 >&2 || true
  systemctl stop "$unit" || true
  rm -f -- "$conf"
  mv -- "$data" "$data.autolabs-failed-$stamp"
  mv -- "$old" "$data"
  systemctl start "$unit"
  exit 5
}
# A long replay may outlast the start-up wait of pg_ctlcluster: the server itself decides.
timeout 300 systemctl start "$unit" || true
ok=
for _ in $(seq 1 7200); do
  if promoted; then ok=1; break; fi
  pid=$(head -n 1 "$data/postmaster.pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
[ -n "$ok" ] || rollback
rm -f -- "$conf"
echo "old-data $old"
echo "replayed-to $(tail -n +"$((lines_before + 1))" "$log" 2>/dev/null | sed -n 's/.*last completed transaction was at log time \\(.*\\)$/\\1/p' | tail -n 1)"`

/**
 * Verification of a base backup: stdin (plain tar) unpacked into a throw-away data directory in
 * /var/tmp, started on a unix socket only with archive recovery from the archive ($1) to its end,
 * then asked which databases it holds. Removed on exit whatever happens. Prints "consistent",
 * "replayed-to <time>" and "database <name>" lines; the server log's tail on failure.
 */
export const PG_PITR_VERIFY = `${STRICT}
cd /
archive=$1
major=$(runuser -u postgres -- psql -X -At -c "SELECT current_setting('server_version_num')::int / 10000")
bin=/usr/lib/postgresql/$major/bin
dir=$(mktemp -d /var/tmp/autolabs-verify-base.XXXXXX)
chown postgres: "$dir"
cleanup() {
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf -- "$dir"
}
trap cleanup EXIT
install -d -m 0700 -o postgres -g postgres "$dir/data"
runuser -u postgres -- tar -x -C "$dir/data"
cd "$dir/data"
rm -f -- backup_manifest postgresql.auto.conf
runuser -u postgres -- touch recovery.signal
printf 'local all all peer\\n' >pg_hba.conf
: >pg_ident.conf
cat >postgresql.conf <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = 54329
archive_mode = off
fsync = off
restore_command = 'cp $archive/%f "%p"'
recovery_target_timeline = 'latest'
CONF
chown postgres: pg_hba.conf pg_ident.conf postgresql.conf
cd /
if ! runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -w -t 3600 -l "$dir/server.log" start >/dev/null; then
  tail -n 15 "$dir/server.log" >&2
  exit 4
fi
for _ in $(seq 1 3600); do
  [ "$(runuser -u postgres -- "$bin/psql" -X -At -h "$dir" -p 54329 -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] && break
  sleep 1
done
grep -q 'consistent recovery state reached' "$dir/server.log" && echo consistent
echo "replayed-to $(sed -n 's/.*last completed transaction was at log time \\(.*\\)$/\\1/p' "$dir/server.log" | tail -n 1)"
runuser -u postgres -- "$bin/psql" -X -At -h "$dir" -p 54329 -d postgres -v ON_ERROR_STOP=1 \\
  -c "SELECT 'database ' || datname FROM pg_database WHERE NOT datistemplate ORDER BY 1"`

/**
 * Installs (or updates) the VM's own daily base backup: the script ($1 = its content), the
 * service ($2) and the timer ($3) whose OnCalendar is $4; enables the timer. Prints "unchanged" or
 * "changed", then "next <time>".
 */
export const PG_BASE_INSTALL = `${STRICT}
systemd-analyze calendar "$4" >/dev/null 2>&1 || { echo "autolabs: '$4' is not a systemd calendar event (OnCalendar=)" >&2; exit 2; }
changed=
put() {
  if [ -f "$1" ] && [ "$(cat -- "$1")" = "$2" ]; then return 0; fi
  printf '%s\\n' "$2" >"$1.autolabs-new"
  chmod "$3" "$1.autolabs-new"
  mv -- "$1.autolabs-new" "$1"
  changed=1
}
put ${PG_BASE_SCRIPT_PATH} "$1" 0755
put /etc/systemd/system/${PG_BASE_UNIT}.service "$2" 0644
put /etc/systemd/system/${PG_BASE_UNIT}.timer "$3" 0644
if [ -n "$changed" ]; then systemctl daemon-reload; fi
if ! systemctl is-enabled -q ${PG_BASE_UNIT}.timer || ! systemctl is-active -q ${PG_BASE_UNIT}.timer; then
  systemctl enable --now ${PG_BASE_UNIT}.timer >/dev/null 2>&1
  changed=1
elif [ -n "$changed" ]; then
  systemctl restart ${PG_BASE_UNIT}.timer
fi
if [ -n "$changed" ]; then echo changed; else echo unchanged; fi
systemctl list-timers ${PG_BASE_UNIT}.timer --no-pager --no-legend | awk '{print "next " $1 " " $2 " " $3}'`
