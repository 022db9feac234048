#!/usr/bin/env bash
# Stage "database" (database-vm): PostgreSQL, Redis, SeaweedFS (S3).
# Parameters (env file): VM_IP VM_SUBNET APT_PROXY PG_VERSION PG_WAL_ARCHIVE(true|false) PG_MAX_CONNECTIONS
# PG_DATABASES ("autolabs zitadel gitlab") PG_USER__<db, "-" as "_"> PG_PASSWORD__<db> REDIS_VERSION
# REDIS_PASSWORD SEAWEEDFS_VERSION SEAWEEDFS_SHA256 S3_PORT S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKETS
#
# Each database is owned by its own login role, PG_USER__<db> (default "<db>_user", the design
# document's autolabs_user, zitadel_user, gitlab_user).
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

pg_conf_dir() { printf '/etc/postgresql/%s/main' "$PG_VERSION"; }
pg_unit() { printf 'postgresql@%s-main' "$PG_VERSION"; }
PGDG_KEY=/etc/apt/keyrings/pgdg.asc
PGDG_LIST=/etc/apt/sources.list.d/pgdg.list
WAL_ARCHIVE_DIR=/var/lib/postgresql/wal-archive

pg_password_of() {
  local var="PG_PASSWORD__${1//-/_}"
  [[ -n ${!var:-} ]] || die "no password for database '$1' in the parameters ($var)"
  printf '%s' "${!var}"
}
pg_user_of() {
  local var="PG_USER__${1//-/_}"
  [[ -n ${!var:-} ]] || die "no user for database '$1' in the parameters ($var)"
  printf '%s' "${!var}"
}
# "db user" pairs, one per line: what pg_hba_ok and pg_hba_text work on.
pg_db_users() {
  local db
  for db in $PG_DATABASES; do printf '%s %s\n' "$db" "$(pg_user_of "$db")"; done
}

psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$@"; }
pg_setting() { psql_admin -tA -c "SELECT setting FROM pg_settings WHERE name = '$1'" 2>/dev/null; }

# --- postgres_repo: the distribution's package when its major is the configured one -------
check_postgres_repo() {
  ensure_apt_lists
  [[ -n $(apt_candidate "postgresql-$PG_VERSION") ]]
}
do_postgres_repo() {
  local codename url=https://apt.postgresql.org/pub/repos/apt
  if check_postgres_repo; then
    log "postgresql-$PG_VERSION comes from the configured sources; no other source needed"
    return 0
  fi
  codename=$(os_codename)
  log "postgresql-$PG_VERSION is not in this distribution's sources: adding the PostgreSQL project's ($url)"
  require_reachable "$url/dists/$codename-pgdg/Release"
  install -d -m 0755 /etc/apt/keyrings
  fetch https://www.postgresql.org/media/keys/ACCC4CF8.asc "$PGDG_KEY"
  chmod 0644 "$PGDG_KEY"
  write_file "$PGDG_LIST" "deb [signed-by=$PGDG_KEY] $url $codename-pgdg main" 0644
  apt_update
}

# --- postgres_install ---------------------------------------------------------------------
pg_cluster_exists() { pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" '$1 == v && $2 == "main" {f = 1} END {exit !f}'; }
check_postgres_install() {
  pkg_installed "postgresql-$PG_VERSION" "postgresql-client-$PG_VERSION" && pg_cluster_exists && unit_active "$(pg_unit)"
}
do_postgres_install() {
  apt_install "postgresql-$PG_VERSION" "postgresql-client-$PG_VERSION"
  pg_cluster_exists || pg_createcluster "$PG_VERSION" main
  systemctl enable --now "$(pg_unit)"
}

# --- postgres_config: listen address, scram, pg_hba ---------------------------------------
pg_conf_text() {
  printf "# Managed by autolabs.\nlisten_addresses = 'localhost,%s'\npassword_encryption = 'scram-sha-256'\nmax_connections = %s" "$VM_IP" "${PG_MAX_CONNECTIONS:-400}"
}
pg_hba_text() {
  local db
  printf '# Managed by autolabs: local peer for the postgres superuser; every database only for\n'
  printf '# its own user, from the VM subnet, with scram-sha-256.\n'
  printf 'local   all             postgres                                peer\n'
  # pg_basebackup (autolabs backup now, the base backup timer) connects for replication as postgres.
  printf 'local   replication     postgres                                peer\n'
  printf 'local   all             all                                     peer\n'
  printf 'host    all             all             127.0.0.1/32            scram-sha-256\n'
  printf 'host    all             all             ::1/128                 scram-sha-256\n'
  while read -r db user; do
    printf 'host    %-15s %-15s %-23s scram-sha-256\n' "$db" "$user" "$VM_SUBNET"
  done < <(pg_db_users)
}

# pg_hba_ok FILE SUBNET DB:USER...: every database reachable by its own user from SUBNET with
# scram, and no network rule weaker than that (another address, trust/md5/password).
pg_hba_ok() {
  local file=$1 subnet=$2
  shift 2
  [[ -r $file ]] || return 1
  awk -v subnet="$subnet" -v pairs="$*" '
    BEGIN { n = split(pairs, want, " "); for (i = 1; i <= n; i++) { split(want[i], du, ":"); need[du[1]] = 1; owner[du[1]] = du[2] } }
    /^[[:space:]]*(#|$)/ { next }
    $1 ~ /^host/ {
      addr = $4; method = $5
      if (method != "scram-sha-256") bad = 1
      if (addr != subnet && addr != "127.0.0.1/32" && addr != "::1/128") bad = 1
      if (addr == subnet && ($2 in need) && $3 == owner[$2]) delete need[$2]
      next
    }
    $1 == "local" { if ($4 == "trust") bad = 1; next }
    { bad = 1 }
    END { for (d in need) bad = 1; exit bad }
  ' "$file"
}

check_postgres_config() {
  local dir
  dir=$(pg_conf_dir)
  file_is "$dir/conf.d/10-autolabs.conf" "$(pg_conf_text)" || return 1
  pg_hba_ok "$dir/pg_hba.conf" "$VM_SUBNET" "$(pg_db_users | tr ' ' ':' | tr '\n' ' ')" || return 1
  file_is "$dir/pg_hba.conf" "$(pg_hba_text)" || return 1
  # The running server uses it (a restart may still be pending after an interruption).
  [[ $(pg_setting password_encryption) == scram-sha-256 ]] &&
    [[ $(pg_setting listen_addresses) == "localhost,$VM_IP" ]] &&
    [[ $(pg_setting max_connections) == "${PG_MAX_CONNECTIONS:-400}" ]]
}
do_postgres_config() {
  local dir
  dir=$(pg_conf_dir)
  grep -Eq "^include_dir = 'conf.d'" "$dir/postgresql.conf" || printf "include_dir = 'conf.d'\n" >>"$dir/postgresql.conf"
  write_file "$dir/conf.d/10-autolabs.conf" "$(pg_conf_text)" 0644 postgres:postgres
  write_file "$dir/pg_hba.conf" "$(pg_hba_text)" 0640 postgres:postgres
  systemctl restart "$(pg_unit)"
  WAIT_SECONDS=60 wait_until runuser -u postgres -- pg_isready -q -h "$VM_IP" ||
    die "PostgreSQL does not answer on $VM_IP:5432 after its restart: $(tail -n 5 "/var/log/postgresql/postgresql-$PG_VERSION-main.log" 2>/dev/null | tr '\n' ' ')"
}

# --- postgres_wal_archive -----------------------------------------------------------------
wal_conf_text() {
  printf '# Managed by autolabs: WAL archiving (point-in-time recovery with the base backups).\n'
  printf "wal_level = replica\narchive_mode = on\narchive_command = 'test ! -f %s/%%f && cp %%p %s/%%f'" "$WAL_ARCHIVE_DIR" "$WAL_ARCHIVE_DIR"
}
check_postgres_wal_archive() {
  local f
  f="$(pg_conf_dir)/conf.d/20-autolabs-wal.conf"
  if [[ ${PG_WAL_ARCHIVE:-true} == true ]]; then
    file_is "$f" "$(wal_conf_text)" && [[ -d $WAL_ARCHIVE_DIR ]] && [[ $(pg_setting archive_mode) == on ]]
  else
    [[ ! -e $f ]] && [[ $(pg_setting archive_mode) == off ]]
  fi
}
do_postgres_wal_archive() {
  local f
  f="$(pg_conf_dir)/conf.d/20-autolabs-wal.conf"
  if [[ ${PG_WAL_ARCHIVE:-true} == true ]]; then
    install -d -m 0700 -o postgres -g postgres "$WAL_ARCHIVE_DIR"
    write_file "$f" "$(wal_conf_text)" 0644 postgres:postgres
  else
    rm -f "$f"
  fi
  systemctl restart "$(pg_unit)"
  WAIT_SECONDS=60 wait_until runuser -u postgres -- pg_isready -q || die "PostgreSQL did not come back after enabling WAL archiving"
}

# --- postgres_databases -------------------------------------------------------------------
# Log in over TCP as the database's own user: proves role, password, scram and pg_hba at once.
db_login_ok() {
  local db=$1 user pw
  user=$(pg_user_of "$db")
  pw=$(pg_password_of "$db")
  PGPASSWORD=$pw PGCONNECT_TIMEOUT=5 psql -X -q -h "$VM_IP" -U "$user" -d "$db" -tA \
    -c "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()" 2>/dev/null |
    grep -qx "$user"
}
check_postgres_databases() {
  local db
  for db in $PG_DATABASES; do db_login_ok "$db" || return 1; done
}

# psql's \set takes a single-quoted value: double the quotes, escape backslashes.
psql_quote() {
  local s=${1//\\/\\\\}
  printf "'%s'" "${s//\'/\'\'}"
}

do_postgres_databases() {
  local db user pw
  for db in $PG_DATABASES; do
    user=$(pg_user_of "$db")
    pw=$(pg_password_of "$db")
    # The password travels on psql's stdin (not argv); format() quotes identifiers and literals.
    # log_statement and error logging are off so the statement never reaches the server log.
    psql_admin -d postgres <<SQL
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
\\set db $(psql_quote "$db")
\\set user $(psql_quote "$user")
\\set pw $(psql_quote "$pw")
SELECT format('CREATE ROLE %I LOGIN', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') \\gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'user', :'pw') \\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db') \\gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'user') \\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \\gexec
SQL
    if [[ $db == gitlab ]]; then
      # GitLab needs these extensions and may not create them itself (no superuser).
      psql_admin -d gitlab -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE EXTENSION IF NOT EXISTS btree_gist; CREATE EXTENSION IF NOT EXISTS plpgsql;'
    fi
  done
}

# --- redis_install: the pinned Redis minor (REDIS_VERSION "7.2": any 7.2.x) -----------------
REDIS_LIST=/etc/apt/sources.list.d/redis.list
REDIS_KEY=/etc/apt/keyrings/redis.asc
REDIS_PIN=/etc/apt/preferences.d/autolabs-redis

# redis_version_matches VERSION: VERSION (a Debian version without its epoch, or redis-server's
# own) is REDIS_VERSION or a release of it ("7.2" takes 7.2.7-1rl1~bookworm1, not 7.0.15).
redis_version_matches() { [[ -n $1 && ($1 == "$REDIS_VERSION" || $1 == "$REDIS_VERSION".*) ]]; }
redis_installed_version() { redis-server --version 2>/dev/null | grep -Eo 'v=[0-9.]+' | cut -d= -f2 || true; }
redis_version_ok() { redis_version_matches "$(redis_installed_version)"; }
check_redis_install() { pkg_installed redis-server && redis_version_ok; }
do_redis_install() {
  ensure_apt_lists
  local cand
  cand=$(apt_candidate redis-server)
  cand=${cand#*:}
  if ! redis_version_matches "$cand"; then
    # Debian 12 and Ubuntu 24.04 ship 7.0.15, a line redis.io no longer supports.
    local url=https://packages.redis.io/deb codename
    codename=$(os_codename)
    log "this distribution offers redis-server ${cand:-none}; adding $url pinned to $REDIS_VERSION.x"
    require_reachable "$url/dists/$codename/Release"
    install -d -m 0755 /etc/apt/keyrings
    fetch https://packages.redis.io/gpg "$REDIS_KEY"
    chmod 0644 "$REDIS_KEY"
    write_file "$REDIS_LIST" "deb [signed-by=$REDIS_KEY] $url $codename main" 0644
    write_file "$REDIS_PIN" "$(printf 'Package: redis redis-server redis-tools\nPin: version 6:%s*\nPin-Priority: 1001' "$REDIS_VERSION")" 0644
    apt_update
  fi
  # Held by an earlier run: a held package is never upgraded, so a new pin (7.0 -> 7.2) needs
  # the hold lifted first; it is set again below.
  apt-mark unhold redis-server redis-tools >/dev/null 2>&1 || true
  apt_install redis-server redis-tools
  apt-mark hold redis-server redis-tools >/dev/null
  redis_version_ok || die "redis-server $(redis_installed_version) is installed, not the configured $REDIS_VERSION (services.redis.version): check apt-cache policy redis-server"
}

# --- redis_config: requirepass, bind the VM address, protected mode ------------------------
REDIS_CONF=/etc/redis/redis.conf
REDIS_AUTOLABS_CONF=/etc/redis/autolabs.conf
redis_conf_text() {
  printf '# Managed by autolabs (included last by redis.conf, so these settings win).\n'
  printf 'bind 127.0.0.1 %s\nprotected-mode yes\nport 6379\nrequirepass %s' "$VM_IP" "$REDIS_PASSWORD"
}

# redis_conf_ok FILE IP PASSWORD: bound to IP, protected mode on, requirepass is PASSWORD.
redis_conf_ok() {
  local file=$1 ip=$2 pw=$3
  [[ -r $file ]] || return 1
  awk -v ip="$ip" -v pw="$pw" '
    /^[[:space:]]*#/ { next }
    $1 == "bind" { b = 0; for (i = 2; i <= NF; i++) if ($i == ip) b = 1; bind = b }
    $1 == "protected-mode" { prot = ($2 == "yes") }
    $1 == "requirepass" { pass = ($2 == pw) }
    END { exit !(bind && prot && pass) }
  ' "$file"
}
redis_auth_ok() {
  [[ $(REDISCLI_AUTH=$REDIS_PASSWORD redis-cli --no-auth-warning -h "$VM_IP" ping 2>/dev/null) == PONG ]]
}
check_redis_config() {
  file_is "$REDIS_AUTOLABS_CONF" "$(redis_conf_text)" &&
    grep -qx "include $REDIS_AUTOLABS_CONF" "$REDIS_CONF" &&
    redis_conf_ok "$REDIS_AUTOLABS_CONF" "$VM_IP" "$REDIS_PASSWORD" &&
    redis_auth_ok
}
do_redis_config() {
  write_file "$REDIS_AUTOLABS_CONF" "$(redis_conf_text)" 0640 root:redis
  grep -qx "include $REDIS_AUTOLABS_CONF" "$REDIS_CONF" || printf '\ninclude %s\n' "$REDIS_AUTOLABS_CONF" >>"$REDIS_CONF"
  systemctl enable redis-server >/dev/null 2>&1
  systemctl restart redis-server
  WAIT_SECONDS=30 wait_until redis_auth_ok || die "Redis does not answer on $VM_IP:6379 with its password after the restart"
}

# --- seaweedfs_install: pinned release, checksum verified ---------------------------------
WEED_DIR=/opt/seaweedfs
WEED_LINK=/usr/local/bin/weed
weed_bin() { printf '%s/%s/weed' "$WEED_DIR" "$SEAWEEDFS_VERSION"; }
check_seaweedfs_install() {
  [[ -x $(weed_bin) ]] && [[ $(readlink -f "$WEED_LINK") == "$(weed_bin)" ]] &&
    "$(weed_bin)" version 2>/dev/null | grep -q "$SEAWEEDFS_VERSION"
}
do_seaweedfs_install() {
  local arch url tmp got md5 previous
  arch=$(dpkg --print-architecture)
  url="https://github.com/seaweedfs/seaweedfs/releases/download/$SEAWEEDFS_VERSION/linux_${arch}.tar.gz"
  require_reachable "$url"
  tmp=$(mktemp -d)
  fetch "$url" "$tmp/weed.tar.gz"
  if [[ -n ${SEAWEEDFS_SHA256:-} ]]; then
    got=$(sha256sum "$tmp/weed.tar.gz" | cut -d' ' -f1)
    [[ $got == "$SEAWEEDFS_SHA256" ]] || die "SeaweedFS download $url has SHA-256 $got, expected the pinned $SEAWEEDFS_SHA256: refusing it"
  else
    # SeaweedFS publishes an .md5 beside each archive and no SHA-256 (its release workflow,
    # go-release-action: md5sum on, sha256sum off). It comes from the same release page, so
    # it catches a damaged or truncated download, not a tampered release.
    fetch "$url.md5" "$tmp/weed.tar.gz.md5"
    got=$(md5sum "$tmp/weed.tar.gz" | cut -d' ' -f1)
    md5=$(awk '{print $1; exit}' "$tmp/weed.tar.gz.md5")
    [[ $got == "$md5" ]] || die "SeaweedFS download $url has MD5 $got, but the release's $url.md5 says ${md5:-nothing}: a damaged download; refusing it"
    warn "SeaweedFS $SEAWEEDFS_VERSION: no SHA-256 pinned in autolabs; the download matches the MD5 published on the same release page (this catches a damaged download, not a tampered release)"
  fi
  install -d -m 0755 "$WEED_DIR/$SEAWEEDFS_VERSION"
  tar -xzf "$tmp/weed.tar.gz" -C "$tmp"
  install -m 0755 "$tmp/weed" "$(weed_bin)"
  previous=$(readlink -f "$WEED_LINK" 2>/dev/null || true)
  if [[ -n $previous && $previous != "$(weed_bin)" ]]; then
    # An upgrade in place: the new release reads the old data directory (docs/versions.md,
    # "SeaweedFS upgrades"); seaweedfs_config restarts the service onto it.
    log "upgrading SeaweedFS in place: $previous -> $(weed_bin) (services.objectStorage.version $SEAWEEDFS_VERSION); the data in /var/lib/seaweedfs is kept, the old binary stays on disk"
  fi
  ln -sfn "$(weed_bin)" "$WEED_LINK"
  rm -rf "$tmp"
}

# --- seaweedfs_config: S3 with generated credentials as a systemd service -----------------
S3_CONFIG=/etc/seaweedfs/s3.json
WEED_UNIT=/etc/systemd/system/seaweedfs.service
s3_config_text() {
  printf '{"identities":[{"name":"autolabs","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}' \
    "$S3_ACCESS_KEY" "$S3_SECRET_KEY"
}
# SeaweedFS 4.44's defaults that 3.97 did not have, switched off (weed/command/server.go @4.44):
# -master.telemetry (on since 4.41) reports to telemetry.seaweedfs.com; -s3.port.iceberg (8181)
# and -s3.port.lance (9101) are listeners the firewall does not open ("0 to disable");
# -s3.autoCreateBucket creates a bucket on the first upload to a missing one (the platform's
# buckets are made by seaweedfs_buckets, a typo in a bucket name must fail).
weed_unit_text() {
  cat <<UNIT
# Managed by autolabs.
[Unit]
Description=SeaweedFS (S3 object storage)
After=network-online.target
Wants=network-online.target

[Service]
User=seaweedfs
Group=seaweedfs
ExecStart=/usr/local/bin/weed server -dir=/var/lib/seaweedfs -ip=$VM_IP -ip.bind=$VM_IP -volume.max=0 -master.telemetry=false -s3 -s3.port=$S3_PORT -s3.config=$S3_CONFIG -s3.port.iceberg=0 -s3.port.lance=0 -s3.autoCreateBucket=false
Restart=on-failure
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
UNIT
}
s3_answers() { curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$VM_IP:$S3_PORT/" | grep -Eq '^(200|403)$'; }
check_seaweedfs_config() {
  file_is "$S3_CONFIG" "$(s3_config_text)" && file_is "$WEED_UNIT" "$(weed_unit_text)" &&
    unit_active seaweedfs && s3_answers
}
do_seaweedfs_config() {
  id seaweedfs >/dev/null 2>&1 || useradd --system --home-dir /var/lib/seaweedfs --shell /usr/sbin/nologin seaweedfs
  install -d -m 0750 -o seaweedfs -g seaweedfs /var/lib/seaweedfs
  install -d -m 0750 -o root -g seaweedfs /etc/seaweedfs
  write_file "$S3_CONFIG" "$(s3_config_text)" 0640 root:seaweedfs
  write_file "$WEED_UNIT" "$(weed_unit_text)" 0644
  systemctl daemon-reload
  systemctl enable seaweedfs >/dev/null 2>&1
  systemctl restart seaweedfs
  WAIT_SECONDS=90 wait_until s3_answers || die "SeaweedFS's S3 endpoint does not answer on $VM_IP:$S3_PORT: $(journalctl -u seaweedfs -n 5 --no-pager 2>&1 | tr '\n' ' ')"
}

# --- seaweedfs_buckets: through the S3 API, signed with the generated keys -----------------
# Not `weed shell`: its piped output is no stable interface (3.97 printed its "> " prompt before
# each answer; 4.x prints none since upstream #8990, and s3.bucket.list gained columns). The S3
# API is what the platform uses, and a signed request that succeeds also proves the keys.
S3_REGION=us-east-1
# s3_call HEAD|PUT BUCKET: prints the HTTP status (then the body's S3 error code, if any); the
# keys reach curl in a config on stdin, never on its command line.
s3_call() {
  local method=(--request "$1") bucket=$2 body rc=0 code
  [[ $1 == HEAD ]] && method=(--head)
  body=$(mktemp)
  code=$(printf 'user = "%s:%s"\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" |
    curl --silent --show-error --connect-timeout 5 --max-time 30 --config - \
      --aws-sigv4 "aws:amz:$S3_REGION:s3" "${method[@]}" --output "$body" --write-out '%{http_code}' \
      "http://$VM_IP:$S3_PORT/$bucket") || rc=$?
  printf '%s %s' "${code:-000}" "$(grep -o '<Code>[^<]*</Code>' "$body" | sed 's/<[^>]*>//g' | head -n 1)"
  rm -f "$body"
  return "$rc"
}
bucket_exists() {
  local out
  out=$(s3_call HEAD "$1") || return 1
  [[ ${out%% *} == 200 ]]
}
check_seaweedfs_buckets() {
  local b
  for b in $S3_BUCKETS; do bucket_exists "$b" || return 1; done
}
do_seaweedfs_buckets() {
  local b out
  for b in $S3_BUCKETS; do
    bucket_exists "$b" && continue
    out=$(s3_call PUT "$b") || die "the S3 endpoint http://$VM_IP:$S3_PORT does not answer (creating bucket $b): is the seaweedfs service running?"
    case ${out%% *} in
      200) log "bucket $b created" ;;
      409) log "bucket $b exists already" ;;
      403) die "SeaweedFS refused the generated S3 keys (HTTP 403 ${out#* }) creating bucket $b: $S3_CONFIG must hold the access key from .autolabs/secrets.yaml (run autolabs deploy --force --only database to rewrite it)" ;;
      *) die "SeaweedFS could not create bucket $b: HTTP ${out%% *} ${out#* }" ;;
    esac
  done
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then stage_main "$@"; fi
