#!/usr/bin/env bash
# Stage "gitlab" (gitlab-vm): Docker Engine, GitLab CE via Docker Compose, Container Registry,
# GitLab Runner (runner-token flow).
# Parameters (env file): VM_IP APT_PROXY GITLAB_VERSION GITLAB_EXTERNAL_URL GITLAB_SSH_PORT
# GITLAB_REGISTRY_PORT GITLAB_SHM_SIZE GITLAB_ROOT_PASSWORD GITLAB_EXTERNAL_DB(true|false)
# DB_HOST GITLAB_DB_NAME GITLAB_DB_USER GITLAB_DB_PASSWORD DB_LOGIN_SECONDS RUNNER_VERSION
# GITLAB_READY_SECONDS
# GITLAB_TLS_CERT GITLAB_TLS_KEY GITLAB_TLS_CA (PEM text, empty for http or Let's Encrypt;
# checked by autolabs before deploy) GITLAB_LETSENCRYPT(true|false)
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

GITLAB_HOME=${GITLAB_HOME:-/srv/gitlab}
DOCKER_KEY=/etc/apt/keyrings/docker.asc
DOCKER_LIST=/etc/apt/sources.list.d/docker.list
RUNNER_KEY=/etc/apt/keyrings/gitlab-runner.asc
RUNNER_LIST=/etc/apt/sources.list.d/gitlab-runner.list
RUNNER_CONFIG=/etc/gitlab-runner/config.toml
# What the running GitLab container was last created from (see compose_digest).
UP_STAMP=$GITLAB_HOME/.autolabs-up.sha256
# The administrator's certificate, as the container sees them (/etc/gitlab is $GITLAB_HOME/config).
TLS_CRT=ssl/autolabs.crt
TLS_KEY=ssl/autolabs.key
TLS_CA=trusted-certs/autolabs-ca.crt

registry_addr() { printf '%s:%s' "$VM_IP" "$GITLAB_REGISTRY_PORT"; }
own_cert() { [[ -n ${GITLAB_TLS_CERT:-} ]]; }
own_ca() { [[ -n ${GITLAB_TLS_CA:-} ]]; }

# --- the external URL: scheme, host and port (the scheme's default when none is given) ------
url_authority() {
  local a=${1#*://}
  a=${a%%[/?#]*}
  printf '%s' "${a##*@}"
}
url_scheme() { printf '%s' "${1%%://*}"; }
url_host() {
  local a
  a=$(url_authority "$1")
  printf '%s' "${a%%:*}"
}
url_port() {
  local a
  a=$(url_authority "$1")
  if [[ $a == *:* ]]; then
    printf '%s' "${a##*:}"
  elif [[ $(url_scheme "$1") == https ]]; then
    printf 443
  else
    printf 80
  fi
}
# The string value of top-level key $1 of the JSON object on stdin; nothing for anything else
# (not JSON, not an object, no such key, not a string) — nested keys of the same name never count.
json_top_string() {
  python3 -c 'import json,sys
try:
    v = json.load(sys.stdin).get(sys.argv[1])
except Exception:
    v = None
print(v if isinstance(v, str) else "")' "$1"
}
api_url() { printf '%s/api/v4' "${GITLAB_EXTERNAL_URL%/}"; }

# --- docker_repo --------------------------------------------------------------------------
# The one-line form of what Docker's install docs now write as docker.sources (same key path,
# URI per distribution, suite = the release codename, which Ubuntu also sets as VERSION_CODENAME).
docker_repo_line() {
  printf 'deb [arch=%s signed-by=%s] https://download.docker.com/linux/%s %s stable' \
    "$(dpkg --print-architecture)" "$DOCKER_KEY" "$(os_id)" "$(os_codename)"
}
check_docker_repo() { [[ -s $DOCKER_KEY ]] && file_is "$DOCKER_LIST" "$(docker_repo_line)"; }
do_docker_repo() {
  local base
  base="https://download.docker.com/linux/$(os_id)"
  require_reachable "$base/gpg"
  install -d -m 0755 /etc/apt/keyrings
  fetch "$base/gpg" "$DOCKER_KEY"
  chmod 0644 "$DOCKER_KEY"
  write_file "$DOCKER_LIST" "$(docker_repo_line)" 0644
  apt_update
}

# --- docker_install -----------------------------------------------------------------------
docker_packages() {
  printf '%s\n' docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin
  # apparmor is only a Recommends of docker-ce (skipped by --no-install-recommends): without its
  # parser a kernel with AppArmor on runs every container unconfined (moby#44900).
  if [[ $(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || true) == Y ]]; then echo apparmor; fi
}
check_docker_install() {
  local pkgs
  mapfile -t pkgs < <(docker_packages)
  pkg_installed "${pkgs[@]}" && unit_active docker && docker compose version >/dev/null 2>&1
}
do_docker_install() {
  local pkgs
  mapfile -t pkgs < <(docker_packages)
  apt_install "${pkgs[@]}"
  systemctl enable --now docker
}

# --- registry_trust: the registry speaks plain HTTP inside the VM network ------------------
DAEMON_JSON=/etc/docker/daemon.json
daemon_json_text() { printf '{\n  "insecure-registries": ["%s"],\n  "log-driver": "local"\n}' "$(registry_addr)"; }
check_registry_trust() {
  file_is "$DAEMON_JSON" "$(daemon_json_text)" || return 1
  # Captured, not piped into grep -q: under pipefail an early grep exit can fail the pipe (SIGPIPE).
  local cfg
  cfg=$(docker info --format '{{json .RegistryConfig.IndexConfigs}}' 2>/dev/null) || return 1
  [[ $cfg == *"\"$(registry_addr)\""* ]]
}
do_registry_trust() {
  write_file "$DAEMON_JSON" "$(daemon_json_text)" 0644
  systemctl restart docker
}

# --- gitlab_compose -----------------------------------------------------------------------
omnibus_config() {
  cat <<RUBY
external_url '$GITLAB_EXTERNAL_URL'
gitlab_rails['gitlab_shell_ssh_port'] = $GITLAB_SSH_PORT
registry_external_url 'http://$(registry_addr)'
gitlab_rails['initial_root_password'] = File.read('/run/secrets/gitlab_root_password').strip
RUBY
  # An https external_url turns Let's Encrypt on by default, which fails on a closed network:
  # it runs only when asked for; otherwise nginx serves the administrator's certificate.
  if [[ $(url_scheme "$GITLAB_EXTERNAL_URL") == https ]]; then
    if [[ ${GITLAB_LETSENCRYPT:-false} == true ]]; then
      printf "letsencrypt['enable'] = true\n"
    else
      printf "letsencrypt['enable'] = false\n"
      printf "nginx['ssl_certificate'] = '/etc/gitlab/%s'\n" "$TLS_CRT"
      printf "nginx['ssl_certificate_key'] = '/etc/gitlab/%s'\n" "$TLS_KEY"
    fi
  fi
  if [[ ${GITLAB_EXTERNAL_DB:-true} == true ]]; then
    cat <<RUBY
postgresql['enable'] = false
gitlab_rails['db_adapter'] = 'postgresql'
gitlab_rails['db_encoding'] = 'unicode'
gitlab_rails['db_host'] = '$DB_HOST'
gitlab_rails['db_port'] = 5432
gitlab_rails['db_database'] = '${GITLAB_DB_NAME:-gitlab}'
gitlab_rails['db_username'] = '${GITLAB_DB_USER:-gitlab_user}'
gitlab_rails['db_password'] = File.read('/run/secrets/gitlab_db_password').strip
# The registry's metadata database would live in the bundled PostgreSQL, which is off: keep
# the registry's own (filesystem) metadata, the documented state before enabling the database.
registry['database'] = { 'enabled' => false }
RUBY
  fi
}
# Published ports. Omnibus nginx listens on the external URL's port: a URL such as
# http://host:8929 needs that port published too (GitLab's Docker docs map it 1:1).
compose_ports() {
  local web
  web=$(url_port "$GITLAB_EXTERNAL_URL")
  printf "      - '%s'\n" 80:80 443:443
  if [[ $web != 80 && $web != 443 ]]; then printf "      - '%s:%s'\n" "$web" "$web"; fi
  printf "      - '%s:22'\n      - '%s:%s'" "$GITLAB_SSH_PORT" "$GITLAB_REGISTRY_PORT" "$GITLAB_REGISTRY_PORT"
}
compose_text() {
  local host
  host=$(url_host "$GITLAB_EXTERNAL_URL")
  cat <<YAML
# Managed by autolabs.
name: gitlab
services:
  gitlab:
    image: gitlab/gitlab-ce:$GITLAB_VERSION
    container_name: gitlab
    restart: always
    hostname: '$host'
    shm_size: '$GITLAB_SHM_SIZE'
    ports:
$(compose_ports)
    volumes:
      - '$GITLAB_HOME/config:/etc/gitlab'
      - '$GITLAB_HOME/logs:/var/log/gitlab'
      - '$GITLAB_HOME/data:/var/opt/gitlab'
    environment:
      GITLAB_OMNIBUS_CONFIG: |
$(omnibus_config | sed 's/^/        /')
    secrets:
      - gitlab_root_password
      - gitlab_db_password
secrets:
  gitlab_root_password:
    file: ./secrets/root_password
  gitlab_db_password:
    file: ./secrets/db_password
YAML
}
# The certificate files match the parameters: present with this content, or absent. (PEM text
# ends with a newline, which file_is's $(cat) drops: compare without it.)
tls_file_is() {
  if [[ -n $2 ]]; then file_is "$GITLAB_HOME/config/$1" "$(printf '%s' "$2")"; else [[ ! -e $GITLAB_HOME/config/$1 ]]; fi
}
check_tls_files() {
  tls_file_is "$TLS_CRT" "${GITLAB_TLS_CERT:-}" && tls_file_is "$TLS_KEY" "${GITLAB_TLS_KEY:-}" && tls_file_is "$TLS_CA" "${GITLAB_TLS_CA:-}"
}
# Write file $1 (under config/) with content $2 and mode $3, or remove it when $2 is empty.
tls_file_put() {
  if [[ -n $2 ]]; then write_file "$GITLAB_HOME/config/$1" "$2" "$3"; else rm -f "$GITLAB_HOME/config/$1"; fi
}
do_tls_files() {
  tls_file_put "$TLS_CRT" "${GITLAB_TLS_CERT:-}" 0644
  tls_file_put "$TLS_KEY" "${GITLAB_TLS_KEY:-}" 0600
  tls_file_put "$TLS_CA" "${GITLAB_TLS_CA:-}" 0644
}
check_gitlab_compose() {
  file_is "$GITLAB_HOME/docker-compose.yml" "$(compose_text)" &&
    file_is "$GITLAB_HOME/secrets/root_password" "$GITLAB_ROOT_PASSWORD" &&
    file_is "$GITLAB_HOME/secrets/db_password" "${GITLAB_DB_PASSWORD:-}" &&
    check_tls_files
}
do_gitlab_compose() {
  install -d -m 0755 "$GITLAB_HOME" "$GITLAB_HOME/config" "$GITLAB_HOME/logs" "$GITLAB_HOME/data"
  install -d -m 0700 "$GITLAB_HOME/secrets"
  write_file "$GITLAB_HOME/secrets/root_password" "$GITLAB_ROOT_PASSWORD" 0600
  write_file "$GITLAB_HOME/secrets/db_password" "${GITLAB_DB_PASSWORD:-}" 0600
  do_tls_files
  write_file "$GITLAB_HOME/docker-compose.yml" "$(compose_text)" 0644
}

# --- database_login -----------------------------------------------------------------------
# GitLab's first start migrates its database: the database must exist and take GitLab's login
# from this VM (role, password, pg_hba, database-vm's firewall) before gitlab_up. The deploy
# waits for database/postgres_databases on database-vm first (DEPENDENCIES in
# src/steps/stages.ts); this step proves the result from where GitLab will connect.
gitlab_db_psql() {
  PGPASSWORD=${GITLAB_DB_PASSWORD:-} PGCONNECT_TIMEOUT=5 psql -X -q -h "$DB_HOST" -p 5432 \
    -U "$GITLAB_DB_USER" -d "$GITLAB_DB_NAME" -tA -c 'SELECT 1'
}
gitlab_db_login_ok() { [[ $(gitlab_db_psql 2>/dev/null) == 1 ]]; }
check_database_login() {
  [[ ${GITLAB_EXTERNAL_DB:-true} == true ]] || return 0
  command -v psql >/dev/null 2>&1 && gitlab_db_login_ok
}
do_database_login() {
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client
  # A database just created may still be restarting (WAL archiving): a short, bounded wait.
  WAIT_SECONDS=${DB_LOGIN_SECONDS:-60} wait_until gitlab_db_login_ok && return 0
  local err
  err=$(gitlab_db_psql 2>&1 | grep -v '^WARNING' | tail -n 1) || true
  die "GitLab's database $GITLAB_DB_NAME on $DB_HOST:5432 does not accept user $GITLAB_DB_USER from this VM ($VM_IP): ${err:-no answer}. Deploy database-vm first (autolabs deploy --only database) and check that services.postgres.databases lists $GITLAB_DB_NAME."
}

# --- gitlab_up ----------------------------------------------------------------------------
compose() { docker compose --project-directory "$GITLAB_HOME" -f "$GITLAB_HOME/docker-compose.yml" "$@"; }
# The Compose file and the database password the container reads at start. `compose up` sees a
# changed Compose file but not a changed secret file (and a bind-mounted file replaced by a new
# one stays the old one inside the container until it is recreated).
compose_digest() {
  # (Before the first gitlab_compose the files are missing: a digest nothing matches, no error.)
  # A renewed certificate needs a new nginx too: its files count.
  local c=$GITLAB_HOME/config
  { cat "$GITLAB_HOME/docker-compose.yml" "$GITLAB_HOME/secrets/db_password" "$c/$TLS_CRT" "$c/$TLS_KEY" "$c/$TLS_CA" 2>/dev/null || true; } |
    sha256sum | cut -d' ' -f1
}
check_gitlab_up() {
  [[ $(docker inspect -f '{{.Config.Image}} {{.State.Running}}' gitlab 2>/dev/null) == "gitlab/gitlab-ce:$GITLAB_VERSION true" ]] &&
    file_is "$UP_STAMP" "$(compose_digest)"
}
do_gitlab_up() {
  local out recreate=()
  if ! out=$(compose pull 2>&1); then
    die "cannot pull gitlab/gitlab-ce:$GITLAB_VERSION from Docker Hub: $(tail -n 2 <<<"$out" | tr '\n' ' ') $(https_hint)"
  fi
  if ! file_is "$UP_STAMP" "$(compose_digest)"; then recreate=(--force-recreate); fi
  compose up -d --remove-orphans "${recreate[@]}"
  write_file "$UP_STAMP" "$(compose_digest)" 0600
}

# --- gitlab_ready -------------------------------------------------------------------------
# /-/readiness answers only addresses in monitoring_whitelist (default 127.0.0.0/8, ::1/128);
# any other client gets 404. So ask from inside the container, to 127.0.0.1 on the port nginx
# listens on (the external URL's). Over HTTPS the request carries the URL's host name
# (--resolve), so the certificate is verified as clients will verify it.
readiness_curl_args() {
  local scheme host port
  scheme=$(url_scheme "$GITLAB_EXTERNAL_URL")
  host=$(url_host "$GITLAB_EXTERNAL_URL")
  port=$(url_port "$GITLAB_EXTERNAL_URL")
  if [[ $scheme == https ]]; then
    # A certificate from a private CA is verified against that CA, not skipped.
    if own_ca; then printf '%s\n' --cacert "/etc/gitlab/$TLS_CA"; fi
    printf '%s\n' --resolve "$host:$port:127.0.0.1" "https://$host:$port/-/readiness"
  else
    printf '%s\n' "http://127.0.0.1:$port/-/readiness"
  fi
}
# Ready when the top-level "status" is "ok" (a failing check also answers 503, which curl -f
# already refuses); the checks' own "status" keys must not count.
readiness_ok() { [[ $(json_top_string status <<<"$1") == ok ]]; }
gitlab_ready() {
  local args body
  mapfile -t args < <(readiness_curl_args)
  body=$(docker exec gitlab curl -fsS --max-time 5 "${args[@]}" 2>/dev/null) || return 1
  readiness_ok "$body"
}
check_gitlab_ready() { gitlab_ready; }
do_gitlab_ready() {
  local limit=${GITLAB_READY_SECONDS:-1200}
  log "waiting for GitLab to become ready (at most ${limit}s; the first start takes several minutes)"
  WAIT_SECONDS=$limit wait_until gitlab_ready ||
    die "GitLab did not become ready within ${limit}s: $(docker logs --tail 5 gitlab 2>&1 | tr '\n' ' ')"
}

# --- runner_install -----------------------------------------------------------------------
# The line packages.gitlab.com's own script.deb.sh writes (…/runner/gitlab-runner/<os>/ <codename>
# main); the key is the ASCII-armoured …/gpgkey, which apt reads directly from a .asc file.
runner_repo_line() {
  printf 'deb [signed-by=%s] https://packages.gitlab.com/runner/gitlab-runner/%s/ %s main' "$RUNNER_KEY" "$(os_id)" "$(os_codename)"
}
# The Debian version of upstream release $1 in `apt-cache madison` output on stdin ("19.6.0" ->
# "19.6.0-1"); not a longer release that merely starts with the same digits (19.6.01, 119.6.0).
madison_version() {
  awk -v want="$1" '$3 == want || index($3, want "-") == 1 {print $3; exit}'
}
# "Version:      19.6.0" from `gitlab-runner --version` on stdin.
runner_cli_version() { awk '$1 == "Version:" {print $2; exit}'; }
RUNNER_PACKAGES=(gitlab-runner gitlab-runner-helper-images)
check_runner_install() {
  pkg_installed gitlab-runner || return 1
  # Captured, not piped into grep -q: under pipefail an early grep exit can fail the pipe (SIGPIPE).
  local out held
  out=$(gitlab-runner --version 2>/dev/null) || return 1
  [[ $(runner_cli_version <<<"$out") == "$RUNNER_VERSION" ]] || return 1
  held=$(apt-mark showhold)
  grep -qx gitlab-runner <<<"$held" && unit_active gitlab-runner
}
do_runner_install() {
  local base=https://packages.gitlab.com/runner/gitlab-runner
  require_reachable "$base/gpgkey"
  install -d -m 0755 /etc/apt/keyrings
  fetch "$base/gpgkey" "$RUNNER_KEY"
  chmod 0644 "$RUNNER_KEY"
  write_file "$RUNNER_LIST" "$(runner_repo_line)" 0644
  apt_update
  local v
  v=$({ apt-cache madison gitlab-runner 2>/dev/null || true; } | madison_version "$RUNNER_VERSION")
  [[ -n $v ]] || die "gitlab-runner $RUNNER_VERSION is not offered by $base (services.gitlab.runnerVersion)"
  apt-mark unhold "${RUNNER_PACKAGES[@]}" >/dev/null 2>&1 || true
  local pkgs=("gitlab-runner=$v")
  # Since 17.7 the helper images are a package of their own, installed at the same version
  # (GitLab's docs pin both: apt install gitlab-runner=V gitlab-runner-helper-images=V).
  if [[ $({ apt-cache madison gitlab-runner-helper-images 2>/dev/null || true; } | madison_version "$RUNNER_VERSION") == "$v" ]]; then
    pkgs+=("gitlab-runner-helper-images=$v")
  fi
  apt_install "${pkgs[@]}"
  # Held together: an unattended upgrade of one without the other would split the versions.
  if pkg_installed gitlab-runner-helper-images; then
    apt-mark hold "${RUNNER_PACKAGES[@]}" >/dev/null
  else
    apt-mark hold gitlab-runner >/dev/null
  fi
  # The package's postinst installs the service; make sure it runs and starts at boot.
  systemctl enable --now gitlab-runner
}

# --- runner_register: the runner-token flow (GitLab >= 16; registration tokens are gone) ---
# True when config.toml ($1) holds a [[runners]] entry for URL $2.
runner_config_has_url() {
  [[ -f $1 ]] || return 1
  # Sub-tables ([runners.docker], indented or not) stay inside the entry; any other table ends it.
  awk -v want="url = \"$2\"" '/^\[\[runners\]\]/ {inr = 1; next} /^\[/ && !/^\[runners\./ {inr = 0}
    inr { line = $0; sub(/^[ \t]+/, "", line); sub(/[ \t]+$/, "", line); if (line == want) found = 1 }
    END {exit !found}' "$1"
}
# `gitlab-runner verify` output: "Verifying runner... is valid" for a runner authentication token
# (glrt-); "is not valid" or an error otherwise (gitlab-runner network/gitlab.go VerifyRunner).
runner_verify_ok() { grep -q 'Verifying runner\.\.\. *is valid' <<<"$1"; }
check_runner_register() {
  runner_config_has_url "$RUNNER_CONFIG" "$GITLAB_EXTERNAL_URL" || return 1
  local out
  out=$(timeout 60 gitlab-runner verify 2>&1) || return 1
  runner_verify_ok "$out"
}

RUNNER_PAT_NAME=autolabs-runner-registration
# Ruby for `gitlab-rails runner`: a token for root with only create_runner that expires
# tomorrow, generated by GitLab and printed on one marked line. It leaves the container on
# docker exec's stdout: never on a command line, never in a file another user could read.
# Tokens of an earlier, interrupted run are revoked first.
registration_pat_ruby() {
  cat <<RUBY
user = User.find_by_username('root') or abort('autolabs: GitLab has no user root')
user.personal_access_tokens.active.where(name: '$RUNNER_PAT_NAME').each(&:revoke!)
pat = user.personal_access_tokens.create!(name: '$RUNNER_PAT_NAME', scopes: ['create_runner'], expires_at: 1.day.from_now.to_date)
puts "AUTOLABS_PAT=#{pat.token}"
RUBY
}
# Lines starting with marker $1 go to stdout without the marker; all others to stderr (the log).
take_marked() {
  local line
  while IFS= read -r line || [[ -n $line ]]; do
    if [[ $line == "$1"* ]]; then printf '%s' "${line#"$1"}"; else printf '%s\n' "$line" >&2; fi
  done
}
# The runner authentication token in the answer of POST /user/runners ({"id":…,"token":"glrt-…"}).
runner_token_from_json() { json_top_string token; }
REG_WORK=''
reg_cleanup() {
  if [[ -n $REG_WORK ]]; then rm -rf "$REG_WORK"; fi
}
do_runner_register() {
  # Safe to re-run: a runner that verifies is not registered a second time.
  if check_runner_register; then return 0; fi
  # Runners GitLab no longer knows (it was reinstalled, the runner deleted) leave config.toml;
  # an unreachable GitLab removes nothing.
  if [[ -f $RUNNER_CONFIG ]]; then timeout 60 gitlab-runner verify --delete >&2 || true; fi
  local pat
  pat=$(docker exec gitlab timeout 900 gitlab-rails runner "$(registration_pat_ruby)" | take_marked AUTOLABS_PAT=) ||
    die "gitlab-rails could not create the runner registration token (see the output above)"
  [[ -n $pat ]] || die "gitlab-rails did not print the runner registration token"
  # The token reaches curl in a 0600 header file (curl -H @file), not on its command line.
  REG_WORK=$(mktemp -d "$AUTOLABS_STATE_DIR/.runner.XXXXXX")
  trap reg_cleanup EXIT
  printf 'PRIVATE-TOKEN: %s\n' "$pat" >"$REG_WORK/header"
  chmod 0600 "$REG_WORK/header"
  local resp token
  # An instance runner needs an administrator (root) and the create_runner scope.
  # A private CA (tls.caFile) is trusted by these calls and by the runner, never skipped.
  local tls_curl=() tls_runner=()
  if own_ca; then
    tls_curl=(--cacert "$GITLAB_HOME/config/$TLS_CA")
    tls_runner=(--tls-ca-file "$GITLAB_HOME/config/$TLS_CA")
  fi
  resp=$(curl "${CURL_OPTS[@]}" "${tls_curl[@]}" -H "@$REG_WORK/header" -X POST "$(api_url)/user/runners" \
    --data-urlencode 'runner_type=instance_type' --data-urlencode 'description=autolabs docker runner' \
    --data-urlencode 'run_untagged=true') || die "POST $(api_url)/user/runners failed"
  token=$(runner_token_from_json <<<"$resp")
  [[ $token == glrt-* ]] || die "GitLab did not return a runner authentication token (glrt-…) from POST $(api_url)/user/runners"
  # --token and --url come from CI_SERVER_TOKEN / CI_SERVER_URL, so the token is not in ps.
  # With a glrt- token, tags, run-untagged, locked etc. belong to the server (set above);
  # the register command refuses them.
  CI_SERVER_TOKEN=$token CI_SERVER_URL=$GITLAB_EXTERNAL_URL timeout 120 gitlab-runner register --non-interactive \
    --executor docker --docker-image alpine:3 --description 'autolabs docker runner' "${tls_runner[@]}" >&2
  # Any token can revoke itself (GitLab >= 15.3); tomorrow it expires anyway.
  curl "${CURL_OPTS[@]}" "${tls_curl[@]}" -H "@$REG_WORK/header" -X DELETE "$(api_url)/personal_access_tokens/self" >/dev/null ||
    warn "could not revoke the one-day registration token $RUNNER_PAT_NAME; it expires tomorrow"
  reg_cleanup
  REG_WORK=''
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then stage_main "$@"; fi
