/**
 * The commands backups run on the VMs (bash, `set -euo pipefail`), kept in one place so that
 * tests and docs/day-two.md can point at them. Non-secret parameters are positional ($1…).
 */

/** The narrow slice of SshSession (src/ssh/session.ts) that backups use. */
export interface BackupShell {
  exec(
    script: string,
    opts?: {
      stdin?: string | Buffer | NodeJS.ReadableStream
      stdout?: NodeJS.WritableStream
      args?: string[]
      sudo?: boolean
      timeoutMs?: number
      label?: string
      logFile?: string
    },
  ): Promise<{code: number; stdout: string; stderr: string}>
  close(): Promise<void>
}

const STRICT = 'set -euo pipefail'

/** Whether the VM has zstd, server version, pg_dumpall version, then one database per line. */
export const PG_INFO = `${STRICT}
cd /
if command -v zstd >/dev/null 2>&1; then echo zstd=yes; else echo zstd=no; fi
runuser -u postgres -- psql -X -At -c "SELECT current_setting('server_version')"
pg_dumpall --version | awk '{print $NF}'
runuser -u postgres -- psql -X -At -c "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1"`

/**
 * The whole cluster as SQL on stdout, nothing written on the VM. --clean --if-exists makes
 * the dump replace what exists when restored (see restoreFilter()).
 */
export const PG_DUMPALL = `${STRICT}
cd /
exec runuser -u postgres -- pg_dumpall --clean --if-exists`

/**
 * The same, compressed on the VM before it crosses the network (zstd streams: no file on the
 * VM, ~100× less to encrypt and transfer for typical dumps). dd counts the raw bytes and prints
 * them on stderr when done ("N bytes … copied").
 */
export const PG_DUMPALL_ZSTD = `${STRICT}
cd /
runuser -u postgres -- pg_dumpall --clean --if-exists | dd bs=256k | zstd -q -3 -T0 -c`

/** Replays a filtered dump (stdin) into the running cluster; stops at the first error. */
export const PG_RESTORE = `${STRICT}
cd /
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres >/dev/null`

/**
 * Verification: a throw-away cluster of the server's own major version in /var/tmp (unix
 * socket only, no TCP), the dump (stdin) replayed into it, then dumped again to stdout for
 * comparison. Removed on exit whatever happens.
 */
export const PG_VERIFY_SCRATCH = `${STRICT}
cd /
major=$(runuser -u postgres -- psql -X -At -c "SELECT current_setting('server_version_num')::int / 10000")
bin=/usr/lib/postgresql/$major/bin
[ -x "$bin/initdb" ] || { echo "autolabs: $bin/initdb not found: cannot build a scratch cluster" >&2; exit 3; }
dir=$(mktemp -d /var/tmp/autolabs-verify.XXXXXX)
chown postgres: "$dir"
cleanup() {
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf -- "$dir"
}
trap cleanup EXIT
runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres -A peer --no-sync >/dev/null
runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -w -t 120 -l "$dir/server.log" \\
  -o "-c listen_addresses='' -c unix_socket_directories='$dir' -p 54329 -c fsync=off -c full_page_writes=off" start >/dev/null
if ! runuser -u postgres -- "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p 54329 -d postgres >/dev/null; then
  echo "autolabs: the dump did not replay into a scratch cluster (above)" >&2
  exit 4
fi
runuser -u postgres -- "$bin/pg_dumpall" -h "$dir" -p 54329 --clean --if-exists`

const ETCD_PKI = '/etc/kubernetes/pki/etcd'

/**
 * etcd snapshot with the kubeadm certificates. $1 = snapshot file (under /var/lib/etcd so the
 * etcd container sees it too). Uses the host's etcdctl if installed, else the one inside the
 * etcd static pod (crictl). Prints the etcd version on stdout.
 */
export const ETCD_SNAPSHOT = `${STRICT}
f=$1
pki=${ETCD_PKI}
tls=(--endpoints=https://127.0.0.1:2379 --cacert="$pki/ca.crt" --cert="$pki/server.crt" --key="$pki/server.key")
install -d -m 0700 "$(dirname "$f")"
rm -f -- "$f"
if command -v etcdctl >/dev/null 2>&1; then
  ETCDCTL_API=3 etcdctl "\${tls[@]}" snapshot save "$f" >&2
  ETCDCTL_API=3 etcdctl "\${tls[@]}" endpoint status -w json 2>/dev/null | grep -o '"version":"[^"]*"' | head -n 1 | cut -d'"' -f4
elif command -v crictl >/dev/null 2>&1; then
  id=$(crictl ps --name '^etcd$' -q | head -n 1)
  [ -n "$id" ] || { echo "autolabs: no running etcd container and no etcdctl on this host" >&2; exit 3; }
  crictl exec "$id" etcdctl "\${tls[@]}" snapshot save "$f" >&2
  crictl exec "$id" etcd --version | awk '/etcd Version/ {print $3}'
else
  echo "autolabs: neither etcdctl nor crictl found: cannot take an etcd snapshot" >&2
  exit 3
fi
chmod 0600 "$f"`

/** Streams a root-owned file to stdout, then removes it ($1 = file, $2 = "keep" to keep it). */
export const CAT_AND_REMOVE = `${STRICT}
cat -- "$1"
if [ "\${2:-}" != keep ]; then rm -f -- "$1"; fi`

/**
 * etcd restore from a snapshot uploaded to $1. Stops etcd (kubeadm: moves the static pod's
 * manifest away; packaged etcd: systemctl), restores into a new data dir with the member's own
 * name and peer URL, keeps the old data dir next to it, and starts etcd again.
 * Prints "old-data <path>" on stdout.
 */
export const ETCD_RESTORE = `${STRICT}
snap=$1
stamp=$2
manifest=/etc/kubernetes/manifests/etcd.yaml
flag() { grep -oE -- "--$1=[^[:space:]\\"]+" "$manifest" | head -n 1 | cut -d= -f2-; }
if [ -f "$manifest" ]; then
  mode=kubeadm
  data=$(flag data-dir); data=\${data:-/var/lib/etcd}
  name=$(flag name); peer=$(flag initial-advertise-peer-urls); cluster=$(flag initial-cluster)
elif systemctl cat etcd >/dev/null 2>&1; then
  mode=systemd
  if [ -f /etc/default/etcd ]; then set -a; . /etc/default/etcd; set +a; fi
  data=\${ETCD_DATA_DIR:-/var/lib/etcd/default}
  name=\${ETCD_NAME:-default}; peer=\${ETCD_INITIAL_ADVERTISE_PEER_URLS:-http://localhost:2380}; cluster=\${ETCD_INITIAL_CLUSTER:-}
else
  echo "autolabs: no etcd found (neither $manifest nor an etcd systemd unit)" >&2
  exit 3
fi
name=\${name:-default}; peer=\${peer:-http://localhost:2380}; cluster=\${cluster:-$name=$peer}
command -v etcdutl >/dev/null 2>&1 && tool=(etcdutl) || tool=(env ETCDCTL_API=3 etcdctl)
command -v "\${tool[-1]}" >/dev/null 2>&1 || { echo "autolabs: etcdctl/etcdutl is needed on this VM to restore (apt-get install etcd-client)" >&2; exit 3; }
new="$data.autolabs-restore-$stamp"
old="$data.autolabs-before-$stamp"
rm -rf -- "$new"
"\${tool[@]}" snapshot restore "$snap" --data-dir "$new" --name "$name" --initial-cluster "$cluster" --initial-advertise-peer-urls "$peer" >&2
if [ "$mode" = kubeadm ]; then
  mv -- "$manifest" "/etc/kubernetes/etcd.yaml.autolabs-stopped"
  for _ in $(seq 1 60); do crictl ps --name '^etcd$' -q 2>/dev/null | grep -q . || break; sleep 1; done
else
  systemctl stop etcd
fi
if [ -d "$data" ]; then mv -- "$data" "$old"; fi
mv -- "$new" "$data"
if [ "$mode" = kubeadm ]; then
  chmod 0700 "$data"
  mv -- "/etc/kubernetes/etcd.yaml.autolabs-stopped" "$manifest"
else
  owner=$(stat -c %U:%G "$(dirname "$data")")
  [ "$owner" = root:root ] || chown -R "$owner" "$data"
  chmod 0700 "$data"
  systemctl start etcd
fi
rm -f -- "$snap"
echo "old-data $old"`

/**
 * GitLab's own backup inside its container ($1 = backup name), then the file's path on the VM
 * on stdout, with the GitLab version. The config files beside it are copied separately.
 */
export const GITLAB_BACKUP = `${STRICT}
name=$1
home=\${2:-/srv/gitlab}
docker exec gitlab gitlab-backup create BACKUP="$name" STRATEGY=copy >&2
f="$home/data/backups/\${name}_gitlab_backup.tar"
[ -f "$f" ] || { echo "autolabs: gitlab-backup did not produce $f" >&2; exit 3; }
echo "file $f"
echo "version $(docker exec gitlab cat /opt/gitlab/embedded/service/gitlab-rails/VERSION)"`

export const GITLAB_HOME = '/srv/gitlab'

/**
 * Keeps a copy of the encrypted workspace archive (stdin) on a VM: $1 = folder, $2 = file name,
 * $3 = how many copies to keep (the oldest beyond are removed). Root-only, written atomically.
 */
export const WORKSPACE_COPY = `${STRICT}
dir=$1
install -d -m 0700 -o root -g root "$dir"
tmp=$(mktemp "$dir/.incoming.XXXXXX")
cat > "$tmp"
chmod 0600 "$tmp"
mv -f -- "$tmp" "$dir/$2"
find "$dir" -maxdepth 1 -type f -name '*.tar.age' -printf '%f\\n' | sort -r | tail -n +"$(( $3 + 1 ))" | while read -r old; do rm -f -- "$dir/$old"; done
echo "kept $dir/$2"`
