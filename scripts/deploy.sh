#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Releases, rolls back and shows the state of the compose deployment.
#
#   scripts/deploy.sh production status     containers, current release, migrations, outbox
#   scripts/deploy.sh production deploy     preflight, backup, build, migrate, restart, smoke check
#   scripts/deploy.sh production rollback   back to the previous successful release
#
# <environment> picks .env.<environment>, docker-compose.<environment>.yml and the release history
# .releases/<environment>.log (timestamp, tag, commit, result, note), all in the repository root.
# deploy:
#   1. preflight: the env file exists and passes the app's own check (npm run cli -- config:check
#      with the file's variables: on this machine when node_modules is there, otherwise inside the
#      new image right after the build) and has no change-me left, docker compose config -q, free
#      disk space, pg_isready in the postgres container. A failed preflight changes nothing.
#   2. backup (scripts/backup.sh)   3. docker build -t loyalty-platform:<git short commit>
#   4. migrations with the new image: docker compose run --rm api npm run db:migrate
#   5. api and worker restarted on the new image (IMAGE_TAG)   6. wait for /ready, smoke check of
#   the API, and a heartbeat (worker_heartbeats) from a worker started by the restart, all within
#   DEPLOY_WAIT_SECONDS. A failed smoke check (API or worker) puts api and worker back on the
#   previous successful release by itself, says so and exits 1. Migrations are never reverted: each must work with the release before it.
#   On success loyalty-platform:latest points at the release (a plain `docker compose up -d` keeps it).
#
# Variables: BASE_URL (smoke check; default http://localhost:3000), METRICS_TOKEN (default: from
# the env file), IMAGE_NAME (loyalty-platform), DEPLOY_TAG (default: git short commit, with -dirty
# when tracked files have changes), DEPLOY_WAIT_SECONDS (wait for /ready and for the worker's
# heartbeat after a restart, 90), DEPLOY_MIN_FREE_MB (2048), BACKUP_DIR (./backups), ENV_FILE,
# COMPOSE_FILE, RELEASE_LOG.
set -euo pipefail
PROG=deploy.sh
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/db.sh
source "$LIB_DIR/db.sh"

usage() {
  usage_text >&2
  exit 2
}

(($# == 2)) || usage
environment=$1
action=$2
[[ $environment =~ ^[a-z0-9][a-z0-9_-]*$ ]] || die "bad environment name: $environment" 2
case $action in status | deploy | rollback) ;; *) usage ;; esac

ENV_FILE=${ENV_FILE:-$ROOT_DIR/.env.$environment}
COMPOSE_FILE=${COMPOSE_FILE:-$ROOT_DIR/docker-compose.$environment.yml}
RELEASE_LOG=${RELEASE_LOG:-$ROOT_DIR/.releases/$environment.log}
IMAGE_NAME=${IMAGE_NAME:-loyalty-platform}
BASE_URL=${BASE_URL:-http://localhost:3000}
BASE_URL=${BASE_URL%/}
DEPLOY_WAIT_SECONDS=${DEPLOY_WAIT_SECONDS:-90}
DEPLOY_MIN_FREE_MB=${DEPLOY_MIN_FREE_MB:-2048}
BACKUP_DIR=${BACKUP_DIR:-$ROOT_DIR/backups}
export BACKUP_DIR
DB_MODE=compose
is_uint "$DEPLOY_WAIT_SECONDS" || die 'DEPLOY_WAIT_SECONDS must be a whole number' 2
is_uint "$DEPLOY_MIN_FREE_MB" || die 'DEPLOY_MIN_FREE_MB must be a whole number' 2
require_command docker curl

TABLE_WITH_HTTP=0
TABLE_STEP_WIDTH=14

# --- release history ------------------------------------------------------------------------------

# release_record TAG COMMIT RESULT NOTE. RESULT: deployed, failed, auto_rollback,
# auto_rollback_failed, rollback, rollback_failed.
release_record() {
  mkdir -p "$(dirname "$RELEASE_LOG")"
  [[ -s $RELEASE_LOG ]] || printf '# timestamp\ttag\tcommit\tresult\tnote\n' >"$RELEASE_LOG"
  printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2" "$3" "${4:-}" >>"$RELEASE_LOG"
}

# releases_load: the stack of successful releases from the history (deployed pushes; a rollback
# pops back to the release below). Sets REL_TAGS/REL_COMMITS/REL_TIMES (last = current).
releases_load() {
  REL_TAGS=()
  REL_COMMITS=()
  REL_TIMES=()
  [[ -f $RELEASE_LOG ]] || return 0
  local ts tag commit result n
  while IFS=$'\t' read -r ts tag commit result _ || [[ -n $ts ]]; do
    [[ -z $ts || $ts == \#* ]] && continue
    n=${#REL_TAGS[@]}
    case $result in
      deployed)
        if ((n > 0)) && [[ ${REL_TAGS[n - 1]} == "$tag" ]]; then n=$((n - 1)); fi
        REL_TAGS[n]=$tag REL_COMMITS[n]=$commit REL_TIMES[n]=$ts
        ;;
      rollback | rollback_failed)
        if ((n > 0)); then
          unset 'REL_TAGS[n-1]' 'REL_COMMITS[n-1]' 'REL_TIMES[n-1]'
          n=$((n - 1))
        fi
        # The release rolled back to is current again from now on.
        if ((n > 0)) && [[ ${REL_TAGS[n - 1]} == "$tag" ]]; then n=$((n - 1)); fi
        REL_TAGS[n]=$tag REL_COMMITS[n]=$commit REL_TIMES[n]=$ts
        ;;
    esac
  done <"$RELEASE_LOG"
}

# --- helpers ----------------------------------------------------------------------------------------

# take_lock: one deploy or rollback at a time (a lock on the release history itself).
take_lock() {
  mkdir -p "$(dirname "$RELEASE_LOG")"
  if command -v flock >/dev/null 2>&1; then
    exec 9>>"$RELEASE_LOG"
    flock -n 9 || die "another deploy or rollback of $environment is running (lock on $RELEASE_LOG)"
  fi
}

metrics_token() {
  if [[ -z ${METRICS_TOKEN:-} ]]; then
    METRICS_TOKEN=$(env_file_value "$ENV_FILE" METRICS_TOKEN || true)
  fi
  export METRICS_TOKEN
}

# restart_on TAG: api and worker recreated on IMAGE_NAME:TAG (postgres and redis are left alone).
# RESTARTED_AT (epoch seconds, taken just before) lets the smoke check tell the new worker's
# heartbeat from the old one's.
restart_on() {
  RESTARTED_AT=$(date +%s)
  IMAGE_TAG=$1 compose up -d --no-deps api worker
}

# worker_alive_count: workers that started since RESTARTED_AT and beat within the last 60 s
# (worker_heartbeats, read in the postgres container; the database clock judges "recent").
worker_alive_count() {
  db_query "$PG_CONTAINER_DB" "/* loyalty:worker_heartbeat */ select count(*) from worker_heartbeats
    where started_at >= to_timestamp($RESTARTED_AT) and last_seen_at > now() - interval '60 seconds'"
}

# wait_for_worker: a worker of the new containers must report healthy (its heartbeat) within
# DEPLOY_WAIT_SECONDS of the restart; returns 1 when none does.
wait_for_worker() {
  local deadline=$((RESTARTED_AT + DEPLOY_WAIT_SECONDS)) alive
  while :; do
    alive=$(worker_alive_count 2>/dev/null || echo 0)
    if [[ $alive =~ ^[0-9]+$ ]] && ((alive > 0)); then
      info "worker: $alive worker(s) of this release report healthy (heartbeat in worker_heartbeats)"
      return 0
    fi
    if (($(date +%s) >= deadline)); then
      warn "no worker started by this release reported a heartbeat within ${DEPLOY_WAIT_SECONDS}s of the restart (docker compose logs worker)"
      return 1
    fi
    sleep 1
  done
}

# smoke: waits for /ready, runs the smoke check of the API, then waits for the worker's heartbeat.
# Returns 0 when both pass; SMOKE_FAILURE says which did not.
smoke() {
  metrics_token
  SMOKE_FAILURE=''
  if ! wait_for_ready "$BASE_URL" "$DEPLOY_WAIT_SECONDS"; then
    warn "$BASE_URL/ready did not answer 200 within ${DEPLOY_WAIT_SECONDS}s"
  fi
  if ! BASE_URL=$BASE_URL "$SCRIPTS_DIR/smoke-check.sh"; then
    SMOKE_FAILURE='smoke check failed'
    return 1
  fi
  if ! wait_for_worker; then
    SMOKE_FAILURE='worker not healthy'
    return 1
  fi
}

# config_check_host: `npm run cli -- config:check` with exactly the env file's variables.
config_check_host() {
  env_file_pairs "$ENV_FILE"
  (cd "$ROOT_DIR" && env -i "PATH=$PATH" "HOME=${HOME:-/tmp}" "${ENV_PAIRS[@]}" npm run -s cli -- config:check) \
    </dev/null
}

# --- deploy -------------------------------------------------------------------------------------------

cmd_deploy() {
  take_lock
  releases_load
  local previous='' previous_commit='' commit tag started=$SECONDS out t
  if ((${#REL_TAGS[@]} > 0)); then
    previous=${REL_TAGS[-1]} previous_commit=${REL_COMMITS[-1]}
  fi

  section "Preflight ($environment)"
  table_header
  local config_in_image=0 out_file
  out_file=$(mktemp)
  t=$(now_ms)
  if [[ ! -f $ENV_FILE ]]; then
    table_row env-file FAIL - "$(($(now_ms) - t))" "$ENV_FILE is missing: copy .env.production.example and fill it in"
  elif ! has_node_deps; then
    config_in_image=1
    table_row env-file SKIP - "$(($(now_ms) - t))" 'no node_modules here: checked inside the new image after the build'
  elif config_check_host >"$out_file" 2>&1; then
    table_row env-file PASS - "$(($(now_ms) - t))" "config:check ok: $(grep -m 1 '^warnings:' "$out_file" || echo 'no warnings')"
  else
    local problems
    problems=$(grep -E '^\s+- ' "$out_file" | sed -E 's/^\s+- //' | awk 'NR > 1 { printf "; " } { printf "%s", $0 }' || true)
    [[ -n $problems ]] || problems=$(tail -n 1 "$out_file")
    table_row env-file FAIL - "$(($(now_ms) - t))" "config:check of $(basename "$ENV_FILE") failed: $problems"
  fi

  t=$(now_ms)
  local placeholders=''
  [[ -f $ENV_FILE ]] && placeholders=$(grep -oE '^[A-Za-z_][A-Za-z0-9_]*=.*change-me' "$ENV_FILE" | cut -d= -f1 | paste -sd ' ' - || true)
  if [[ -z $placeholders ]]; then
    table_row placeholders PASS - "$(($(now_ms) - t))" 'no change-me values left'
  else
    table_row placeholders FAIL - "$(($(now_ms) - t))" "change-me values left in $(basename "$ENV_FILE"): $placeholders"
  fi

  t=$(now_ms)
  if [[ -f $ENV_FILE ]] && compose config -q >"$out_file" 2>&1; then
    table_row compose-file PASS - "$(($(now_ms) - t))" "docker compose config -q: $COMPOSE_FILE is valid"
  else
    table_row compose-file FAIL - "$(($(now_ms) - t))" "docker compose config -q: $(tail -n 1 "$out_file")"
  fi

  t=$(now_ms)
  mkdir -p "$BACKUP_DIR"
  local free_kb free_mb
  free_kb=$(df -Pk "$ROOT_DIR" "$BACKUP_DIR" | awk 'NR > 1 { if (min == "" || $4 < min) min = $4 } END { print min + 0 }')
  free_mb=$((free_kb / 1024))
  if ((free_mb >= DEPLOY_MIN_FREE_MB)); then
    table_row disk PASS - "$(($(now_ms) - t))" "$free_mb MB free (needs $DEPLOY_MIN_FREE_MB)"
  else
    table_row disk FAIL - "$(($(now_ms) - t))" "only $free_mb MB free, needs $DEPLOY_MIN_FREE_MB (old backups? docker image prune?)"
  fi

  t=$(now_ms)
  if [[ -f $ENV_FILE ]] && compose exec -T postgres pg_isready -U "$PG_CONTAINER_USER" -d "$PG_CONTAINER_DB" >"$out_file" 2>&1 </dev/null; then
    table_row database PASS - "$(($(now_ms) - t))" "$(tail -n 1 "$out_file")"
  else
    table_row database FAIL - "$(($(now_ms) - t))" "pg_isready: $(tail -n 1 "$out_file")"
  fi

  t=$(now_ms)
  require_command git
  if commit=$(git -C "$ROOT_DIR" rev-parse --short HEAD 2>"$out_file"); then
    tag=${DEPLOY_TAG:-$commit}
    if [[ -z ${DEPLOY_TAG:-} ]] && ! git -C "$ROOT_DIR" diff-index --quiet HEAD -- 2>/dev/null; then
      tag="$commit-dirty"
    fi
    if [[ $tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
      table_row release PASS - "$(($(now_ms) - t))" "$IMAGE_NAME:$tag (commit $commit), running now: ${previous:-nothing recorded}"
    else
      table_row release FAIL - "$(($(now_ms) - t))" "not a valid image tag: $tag"
    fi
  else
    commit='' tag=''
    table_row release FAIL - "$(($(now_ms) - t))" "git rev-parse: $(tail -n 1 "$out_file")"
  fi
  [[ $tag == *-dirty ]] && warn "the working tree has uncommitted changes: the image is tagged $tag"
  rm -f "$out_file"
  if ((COUNT_FAIL > 0)); then
    table_summary 'preflight' || true
    die 'preflight failed: nothing was changed'
  fi

  section 'Backup'
  local backup_file
  if ! backup_file=$("$SCRIPTS_DIR/backup.sh" "$ENV_FILE" "$COMPOSE_FILE"); then
    release_record "$tag" "$commit" failed 'backup failed'
    die 'backup failed: nothing was changed'
  fi
  info "backup: $backup_file"

  section "Build $IMAGE_NAME:$tag"
  # BuildKit (RUN --mount caches in the Dockerfile): the default since Docker 23, opt-in on 20.10.
  # DEPLOY_BUILD_NETWORK (e.g. host): the network of the build's RUN steps (default: Docker's).
  if ! DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-1} docker build ${DEPLOY_BUILD_NETWORK:+--network "$DEPLOY_BUILD_NETWORK"} \
    -t "$IMAGE_NAME:$tag" --build-arg "GIT_COMMIT=$commit" -f "$ROOT_DIR/Dockerfile" "$ROOT_DIR"; then
    release_record "$tag" "$commit" failed 'build failed'
    die "build failed: nothing was changed (${previous:-the current release} keeps running)"
  fi
  if ((config_in_image)); then
    section 'Config check in the new image'
    if ! IMAGE_TAG=$tag compose run --rm --no-deps -T api npm run -s cli -- config:check </dev/null; then
      release_record "$tag" "$commit" failed 'config:check failed'
      die "$ENV_FILE does not pass config:check: nothing was changed"
    fi
  fi

  section 'Migrations (npm run db:migrate in the new image)'
  if ! IMAGE_TAG=$tag compose run --rm --no-deps -T api npm run -s db:migrate </dev/null; then
    release_record "$tag" "$commit" failed 'migrations failed'
    die "migrations failed (each runs in a transaction); api and worker still run ${previous:-the current release}; backup: $backup_file"
  fi

  section "Restart api and worker on $IMAGE_NAME:$tag"
  local restarted=1
  restart_on "$tag" || restarted=0

  if ((restarted)) && section "Smoke check of $BASE_URL" && smoke; then
    docker tag "$IMAGE_NAME:$tag" "$IMAGE_NAME:latest"
    release_record "$tag" "$commit" deployed "backup $(basename "$backup_file")"
    echo
    info "${C_GREEN}${C_BOLD}Deployed $IMAGE_NAME:$tag (commit $commit) in $((SECONDS - started))s.${C_RESET}"
    return 0
  fi

  local why=${SMOKE_FAILURE:-smoke check failed}
  ((restarted)) || why='restart failed'
  release_record "$tag" "$commit" failed "$why"
  if [[ -z $previous ]]; then
    banner "RELEASE $tag FAILED: ${why^^}." \
      'There is no previous successful release in the history to roll back to:' \
      "api and worker still run $IMAGE_NAME:$tag. Fix forward or restore a backup ($backup_file)."
    exit 1
  fi
  banner "RELEASE $tag FAILED: ${why^^}. ROLLING BACK AUTOMATICALLY TO $previous."
  section "Automatic rollback: api and worker back on $IMAGE_NAME:$previous"
  if restart_on "$previous" && section "Smoke check of $BASE_URL after the rollback" && smoke; then
    docker tag "$IMAGE_NAME:$previous" "$IMAGE_NAME:latest" || true
    release_record "$previous" "$previous_commit" auto_rollback "release $tag: $why"
    banner "ROLLED BACK AUTOMATICALLY: api and worker run $IMAGE_NAME:$previous again (release $tag failed)." \
      "Migrations of $tag stay applied. Backup taken before the release: $backup_file"
  else
    release_record "$previous" "$previous_commit" auto_rollback_failed "release $tag: $why"
    banner "AUTOMATIC ROLLBACK TO $previous FAILED TOO (restart or smoke check)." \
      "Check: scripts/deploy.sh $environment status; logs: docker compose logs api --tail=200" \
      "Backup taken before the release: $backup_file"
  fi
  exit 1
}

# --- rollback ------------------------------------------------------------------------------------------

cmd_rollback() {
  take_lock
  releases_load
  local n=${#REL_TAGS[@]}
  ((n >= 2)) || die "no previous successful release to roll back to (history: $RELEASE_LOG)"
  local current=${REL_TAGS[n - 1]} target=${REL_TAGS[n - 2]} target_commit=${REL_COMMITS[n - 2]}
  if ! docker image inspect "$IMAGE_NAME:$target" >/dev/null 2>&1; then
    die "image $IMAGE_NAME:$target is not on this machine; rebuild it: git checkout $target_commit && docker build -t $IMAGE_NAME:$target ."
  fi
  section "Rollback: $current -> $target (commit $target_commit, released ${REL_TIMES[n - 2]})"
  warn 'migrations are not reverted: the schema stays at the newest release'
  if restart_on "$target" && smoke; then
    docker tag "$IMAGE_NAME:$target" "$IMAGE_NAME:latest"
    release_record "$target" "$target_commit" rollback "from $current"
    echo
    info "${C_GREEN}${C_BOLD}Rolled back: api and worker run $IMAGE_NAME:$target.${C_RESET}"
    return 0
  fi
  release_record "$target" "$target_commit" rollback_failed "from $current"
  banner "ROLLBACK TO $target FAILED ITS SMOKE CHECK." \
    "Check: scripts/deploy.sh $environment status"
  exit 1
}

# --- status ----------------------------------------------------------------------------------------------

cmd_status() {
  local failed=0 out
  section "Containers ($COMPOSE_FILE)"
  compose ps </dev/null || failed=1

  section "Release ($RELEASE_LOG)"
  releases_load
  local n=${#REL_TAGS[@]}
  if ((n > 0)); then
    info "current:  $IMAGE_NAME:${REL_TAGS[n - 1]}  commit ${REL_COMMITS[n - 1]}  since ${REL_TIMES[n - 1]}"
    if ((n > 1)); then
      info "previous: $IMAGE_NAME:${REL_TAGS[n - 2]}  commit ${REL_COMMITS[n - 2]}  (scripts/deploy.sh $environment rollback)"
    else
      info 'previous: none'
    fi
    info 'history (latest last):'
    grep -v '^#' "$RELEASE_LOG" | tail -n 5 | awk -F'\t' '{ printf "  %-20s  %-24s  %-10s  %-20s  %s\n", $1, $2, $3, $4, $5 }'
  else
    info 'no release recorded yet (scripts/deploy.sh records every deploy and rollback)'
  fi

  section 'Migrations (npm run db:status in the api container)'
  compose exec -T api npm run -s db:status </dev/null || {
    warn 'db:status failed: is the api container running?'
    failed=1
  }

  section 'Outbox'
  if out=$(db_query "$PG_CONTAINER_DB" "/* loyalty:outbox_counts */ select
      count(*) filter (where status = 'pending'), count(*) filter (where status = 'processing'),
      count(*) filter (where status = 'dead'),
      coalesce((select value from counters where name = 'outbox_dead_total'), 0),
      coalesce((select enabled from runtime_switches where name = 'outbox_paused'), false),
      (select count(*) from merchants where outbox_paused_at is not null)
    from outbox_events" 2>&1); then
    local pending processing dead dead_total paused paused_merchants
    IFS='|' read -r pending processing dead dead_total paused paused_merchants <<<"$out"
    printf '  %-28s %s\n' 'pending (waiting to send)' "$pending" 'processing (being sent)' "$processing" \
      'dead (gave up, replayable)' "$dead" 'dead ever (dead_total)' "$dead_total" \
      'delivery paused globally' "$([[ $paused == t ]] && echo yes || echo no)" \
      'merchants paused' "$paused_merchants"
  else
    warn "outbox query in the postgres container failed ($out); trying $BASE_URL/metrics"
    metrics_token
    local body headers=()
    body=$(mktemp)
    if [[ -n $METRICS_TOKEN ]]; then
      header_file "$body.h" "X-Metrics-Token: $METRICS_TOKEN"
      headers=(-H "@$body.h")
    fi
    http_call GET "$BASE_URL/metrics" "$body" "${headers[@]}"
    if [[ $HTTP_STATUS == 200 ]]; then
      grep -E '^loyalty_outbox_(pending|dead_total) ' "$body" | sed 's/^/  /'
    else
      warn "metrics unavailable (HTTP $HTTP_STATUS${HTTP_ERROR:+, $HTTP_ERROR})"
      failed=1
    fi
    rm -f "$body" "$body.h"
  fi
  return "$failed"
}

case $action in
  deploy) cmd_deploy ;;
  rollback) cmd_rollback ;;
  status) cmd_status ;;
esac
