#!/usr/bin/env bash
# Stage "gitlab" (gitlab-vm): Docker Engine, GitLab CE via Docker Compose, Container Registry,
# GitLab Runner (runner-token flow).
# Parameters (env file): VM_IP APT_PROXY GITLAB_VERSION GITLAB_EXTERNAL_URL GITLAB_SSH_PORT
# GITLAB_REGISTRY_PORT GITLAB_SHM_SIZE GITLAB_ROOT_PASSWORD GITLAB_EXTERNAL_DB(true|false)
# DB_HOST GITLAB_DB_PASSWORD RUNNER_VERSION GITLAB_READY_SECONDS
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

GITLAB_HOME=${GITLAB_HOME:-/srv/gitlab}
DOCKER_KEY=/etc/apt/keyrings/docker.asc
DOCKER_LIST=/etc/apt/sources.list.d/docker.list
RUNNER_KEY=/etc/apt/keyrings/gitlab-runner.asc
RUNNER_LIST=/etc/apt/sources.list.d/gitlab-runner.list
RUNNER_CONFIG=/etc/gitlab-runner/config.toml

registry_addr() { printf '%s:%s' "$VM_IP" "$GITLAB_REGISTRY_PORT"; }

# --- docker_repo --------------------------------------------------------------------------
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
DOCKER_PACKAGES=(docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin)
check_docker_install() { pkg_installed "${DOCKER_PACKAGES[@]}" && unit_active docker && docker compose version >/dev/null 2>&1; }
do_docker_install() {
  apt_install "${DOCKER_PACKAGES[@]}"
  systemctl enable --now docker
}

# --- registry_trust: the registry speaks plain HTTP inside the VM network ------------------
DAEMON_JSON=/etc/docker/daemon.json
daemon_json_text() { printf '{\n  "insecure-registries": ["%s"],\n  "log-driver": "local"\n}' "$(registry_addr)"; }
check_registry_trust() {
  file_is "$DAEMON_JSON" "$(daemon_json_text)" && docker info --format '{{json .RegistryConfig.IndexConfigs}}' 2>/dev/null | grep -q "$(registry_addr)"
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
  if [[ ${GITLAB_EXTERNAL_DB:-true} == true ]]; then
    cat <<RUBY
postgresql['enable'] = false
gitlab_rails['db_adapter'] = 'postgresql'
gitlab_rails['db_encoding'] = 'unicode'
gitlab_rails['db_host'] = '$DB_HOST'
gitlab_rails['db_port'] = 5432
gitlab_rails['db_database'] = 'gitlab'
gitlab_rails['db_username'] = 'gitlab'
gitlab_rails['db_password'] = File.read('/run/secrets/gitlab_db_password').strip
RUBY
  fi
}
compose_text() {
  local host=${GITLAB_EXTERNAL_URL#*://}
  host=${host%%[:/]*}
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
      - '80:80'
      - '443:443'
      - '$GITLAB_SSH_PORT:22'
      - '$GITLAB_REGISTRY_PORT:$GITLAB_REGISTRY_PORT'
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
check_gitlab_compose() {
  file_is "$GITLAB_HOME/docker-compose.yml" "$(compose_text)" &&
    file_is "$GITLAB_HOME/secrets/root_password" "$GITLAB_ROOT_PASSWORD" &&
    file_is "$GITLAB_HOME/secrets/db_password" "${GITLAB_DB_PASSWORD:-}"
}
do_gitlab_compose() {
  install -d -m 0755 "$GITLAB_HOME" "$GITLAB_HOME/config" "$GITLAB_HOME/logs" "$GITLAB_HOME/data"
  install -d -m 0700 "$GITLAB_HOME/secrets"
  write_file "$GITLAB_HOME/secrets/root_password" "$GITLAB_ROOT_PASSWORD" 0600
  write_file "$GITLAB_HOME/secrets/db_password" "${GITLAB_DB_PASSWORD:-}" 0600
  write_file "$GITLAB_HOME/docker-compose.yml" "$(compose_text)" 0644
}

# --- gitlab_up ----------------------------------------------------------------------------
compose() { docker compose --project-directory "$GITLAB_HOME" -f "$GITLAB_HOME/docker-compose.yml" "$@"; }
check_gitlab_up() {
  [[ $(docker inspect -f '{{.Config.Image}} {{.State.Running}}' gitlab 2>/dev/null) == "gitlab/gitlab-ce:$GITLAB_VERSION true" ]]
}
do_gitlab_up() {
  local out
  if ! out=$(compose pull 2>&1); then
    die "cannot pull gitlab/gitlab-ce:$GITLAB_VERSION from Docker Hub: $(tail -n 2 <<<"$out" | tr '\n' ' ') $(https_hint)"
  fi
  compose up -d --remove-orphans
}

# --- gitlab_ready -------------------------------------------------------------------------
gitlab_ready() { docker exec gitlab curl -fsS --max-time 5 http://localhost/-/readiness 2>/dev/null | grep -q '"status":"ok"'; }
check_gitlab_ready() { gitlab_ready; }
do_gitlab_ready() {
  local limit=${GITLAB_READY_SECONDS:-1200}
  log "waiting for GitLab to become ready (at most ${limit}s; the first start takes several minutes)"
  WAIT_SECONDS=$limit wait_until gitlab_ready ||
    die "GitLab did not become ready within ${limit}s: $(docker logs --tail 5 gitlab 2>&1 | tr '\n' ' ')"
}

# --- runner_install -----------------------------------------------------------------------
runner_repo_line() {
  printf 'deb [signed-by=%s] https://packages.gitlab.com/runner/gitlab-runner/%s/ %s main' "$RUNNER_KEY" "$(os_id)" "$(os_codename)"
}
check_runner_install() {
  pkg_installed gitlab-runner && gitlab-runner --version 2>/dev/null | grep -q "Version: *$RUNNER_VERSION" &&
    apt-mark showhold | grep -qx gitlab-runner
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
  v=$(apt-cache madison gitlab-runner | awk -v want="$RUNNER_VERSION" '$3 ~ "^"want {print $3; exit}')
  [[ -n $v ]] || die "gitlab-runner $RUNNER_VERSION is not offered by $base (services.gitlab.runnerVersion)"
  apt-mark unhold gitlab-runner >/dev/null 2>&1 || true
  local pkgs=("gitlab-runner=$v")
  # Since 17.7 the helper images are a package of their own, pinned to the same version.
  if apt-cache madison gitlab-runner-helper-images 2>/dev/null | awk '{print $3}' | grep -qx "$v"; then
    pkgs+=("gitlab-runner-helper-images=$v")
  fi
  apt_install "${pkgs[@]}"
  apt-mark hold gitlab-runner >/dev/null
}

# --- runner_register: the runner-token flow (GitLab >= 17) --------------------------------
check_runner_register() {
  [[ -f $RUNNER_CONFIG ]] && grep -q "url = \"$GITLAB_EXTERNAL_URL\"" "$RUNNER_CONFIG" &&
    gitlab-runner verify 2>&1 | grep -q 'is valid'
}
do_runner_register() {
  # Safe to re-run: a runner that verifies is not registered a second time.
  if check_runner_register; then return 0; fi
  local pat work
  pat="glpat-$(head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20)"
  work=$(mktemp -d "$GITLAB_HOME/config/.autolabs.XXXXXX")
  # gitlab-rails runs as the container's git user: it must be able to read these two files.
  chmod 0755 "$work"
  # A short-lived token with only create_runner, made inside GitLab (never on a command line).
  printf '%s' "$pat" >"$work/pat"
  cat >"$work/pat.rb" <<RUBY
token = File.read('/etc/gitlab/$(basename "$work")/pat').strip
user = User.find_by_username('root')
pat = user.personal_access_tokens.build(name: 'autolabs-runner-registration', scopes: [:create_runner], expires_at: 1.day.from_now)
pat.set_token(token)
pat.save!
RUBY
  chmod 0644 "$work/pat" "$work/pat.rb"
  docker exec gitlab gitlab-rails runner "/etc/gitlab/$(basename "$work")/pat.rb" >&2 ||
    die "could not create the registration token inside GitLab"
  printf 'PRIVATE-TOKEN: %s\n' "$pat" >"$work/header"
  local resp token
  resp=$(curl "${CURL_OPTS[@]}" -H "@$work/header" -X POST "$GITLAB_EXTERNAL_URL/api/v4/user/runners" \
    --data-urlencode 'runner_type=instance_type' --data-urlencode 'description=autolabs docker runner' \
    --data-urlencode 'run_untagged=true') || die "POST $GITLAB_EXTERNAL_URL/api/v4/user/runners failed"
  token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' <<<"$resp")
  [[ $token == glrt-* ]] || die "GitLab did not return a runner authentication token (glrt-…)"
  # --token is read from CI_SERVER_TOKEN so it is not visible in ps.
  CI_SERVER_TOKEN=$token CI_SERVER_URL=$GITLAB_EXTERNAL_URL gitlab-runner register --non-interactive \
    --executor docker --docker-image alpine:3 --description 'autolabs docker runner' >&2
  curl "${CURL_OPTS[@]}" -H "@$work/header" -X DELETE "$GITLAB_EXTERNAL_URL/api/v4/personal_access_tokens/self" >/dev/null || true
  rm -rf "$work"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then stage_main "$@"; fi
