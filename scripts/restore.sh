#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Restores a backup over the application's database, then migrates and checks it.
#
#   scripts/restore.sh backups/backup_20240101_030000.sql.gz [--yes]                # compose (default files)
#   scripts/restore.sh FILE [--yes] .env.production docker-compose.production.yml   # compose
#   DATABASE_URL=postgres://... scripts/restore.sh FILE --yes                       # direct
#
# Order: verify the file (checksum when FILE.sha256 exists, gzip -t, complete dump, and no
# migration this release does not know: a backup of a newer release is refused), ask (type "yes";
# --yes skips the question; without a terminal and without --yes it refuses), take a safety backup
# of the current database (RESTORE_SKIP_SAFETY_BACKUP=1 skips it, e.g. when the database is
# broken), stop api and worker (compose), replace schema public with the dump in one transaction,
# migrate (npm run db:migrate), check the ledger invariants, start api and worker, smoke-check.
#
# Variables: BASE_URL (smoke check; default http://localhost:3000 in compose mode, none in direct
# mode), METRICS_TOKEN (default: from the env file), RESTORE_WAIT_SECONDS (wait for /ready, 90),
# BACKUP_DIR (safety backup, and where FILE is looked up when it does not exist as given).
set -euo pipefail
PROG=restore.sh
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/db.sh
source "$LIB_DIR/db.sh"

usage() {
  usage_text >&2
  exit 2
}

assume_yes=0
args=()
for arg in "$@"; do
  case $arg in
    -y | --yes) assume_yes=1 ;;
    -h | --help) usage ;;
    -*) die "unknown option: $arg" 2 ;;
    *) args+=("$arg") ;;
  esac
done
((${#args[@]} == 1 || ${#args[@]} == 3)) || usage
file=${args[0]}
if [[ ! -f $file && -f ${BACKUP_DIR:-./backups}/$file ]]; then file=${BACKUP_DIR:-./backups}/$file; fi
[[ -f $file ]] || die "backup file not found: ${args[0]}"
file=$(cd "$(dirname "$file")" && pwd)/$(basename "$file")
db_select_mode "${args[1]:-}" "${args[2]:-}"
require_command gzip sha256sum
RESTORE_WAIT_SECONDS=${RESTORE_WAIT_SECONDS:-90}
main_db=$(db_main_name)
[[ -n $main_db ]] || die 'DATABASE_URL names no database' 2

# --- 1. the file must be intact before anything is touched ---------------------------------------
section "Checking $file"
if [[ -f $file.sha256 ]]; then
  expected=$(awk 'NR == 1 { print $1 }' "$file.sha256")
  actual=$(sha256sum "$file" | awk '{ print $1 }')
  [[ $expected == "$actual" ]] || die "checksum mismatch: $(basename "$file").sha256 says $expected, the file is $actual. Nothing was changed."
  info "checksum: ok (sha256 ${actual:0:16}...)"
else
  warn "no $(basename "$file").sha256 next to the file: the checksum cannot be checked"
fi
gzip -t "$file" 2>/dev/null || die "gzip -t failed: the file is damaged. Nothing was changed."
gzip -dc "$file" | tail -n 5 | grep -q 'PostgreSQL database dump complete' ||
  die 'the dump is incomplete (no "dump complete" trailer). Nothing was changed.'
info 'archive: ok (gzip -t, complete dump)'

# A backup of a newer release holds migrations this code does not know: restoring it would leave a
# schema this release cannot vouch for, so it is refused before anything is touched.
known=$(code_migrations) || die "cannot list this release's migrations (npm run db:status). Nothing was changed."
[[ -n $known ]] || die "npm run db:status listed no migrations. Nothing was changed."
in_backup=$(gzip -dc "$file" | dump_migrations)
newer=$(comm -23 <(printf '%s\n' "$in_backup" | grep . | sort -u) <(printf '%s\n' "$known" | sort -u) | paste -sd ' ' -)
if [[ -n $newer ]]; then
  die "the backup was made by a newer release: this release does not know its migrations $newer. Deploy that release (or a later one) first, then restore. Nothing was changed."
fi
info "migrations: $(printf '%s\n' "$in_backup" | grep -c .) in the backup, all known to this release"

# --- 2. confirmation ------------------------------------------------------------------------------
target=$(db_where)
if ((!assume_yes)); then
  if [[ ! -t 0 ]]; then
    die "refusing to overwrite $target without confirmation: no terminal to ask on; pass --yes"
  fi
  printf '\n%sThis REPLACES every table of %s with %s.%s\n' "$C_BOLD" "$target" "$(basename "$file")" "$C_RESET"
  read -r -p 'Type "yes" to continue: ' answer
  [[ $answer == yes ]] || die 'not confirmed; nothing was changed'
fi

# --- 3. safety backup of what is there now --------------------------------------------------------
if [[ ${RESTORE_SKIP_SAFETY_BACKUP:-0} == 1 ]]; then
  warn 'RESTORE_SKIP_SAFETY_BACKUP=1: the current database is not backed up first'
else
  section 'Safety backup of the current database'
  safety_args=()
  [[ $DB_MODE == compose ]] && safety_args=("$ENV_FILE" "$COMPOSE_FILE")
  # The newest backups are kept by the retention anyway; this one must not push the restored file out.
  if ! safety=$(BACKUP_RETENTION_DAYS=0 "$SCRIPTS_DIR/backup.sh" "${safety_args[@]}"); then
    die 'the safety backup failed; nothing was changed (RESTORE_SKIP_SAFETY_BACKUP=1 restores without it)'
  fi
  info "safety backup: $safety"
fi

# --- 4. stop the writers ----------------------------------------------------------------------------
if [[ $DB_MODE == compose ]]; then
  section 'Stopping api and worker'
  compose stop api worker
else
  warn 'direct mode: stop the application processes using this database before restoring'
fi

started_app=0
restart_app() {
  if [[ $DB_MODE == compose && $started_app == 0 ]]; then
    started_app=1
    section 'Starting api and worker'
    compose up -d api worker
  fi
}
on_exit() {
  local rc=$?
  if ((rc != 0)); then
    banner "RESTORE FAILED (exit $rc). Read the messages above." \
      "${safety:+The database as it was before: $safety}"
    # In compose mode the stopped services come back either way (on the old or the restored data).
    restart_app || true
  fi
}
trap on_exit EXIT

# --- 5. restore: schema public is replaced in one transaction (a failure keeps the old data) -------
section "Restoring $(basename "$file") into $target"
t=$SECONDS
{
  printf 'set client_min_messages = warning;\ndrop schema if exists public cascade;\ncreate schema public;\n'
  gzip -dc "$file"
} | db_psql "$main_db" --single-transaction >/dev/null
info "restored in $((SECONDS - t))s"

# --- 6. migrate ---------------------------------------------------------------------------------------
section 'Migrating (npm run db:migrate)'
if [[ $DB_MODE == compose ]]; then
  compose run --rm --no-deps -T api npm run -s db:migrate </dev/null
elif has_node_deps; then
  (cd "$ROOT_DIR" && npm run -s db:migrate) </dev/null
else
  die 'node_modules missing: run "npm ci", then "npm run db:migrate" with this DATABASE_URL'
fi

# --- 7. checks on the restored data --------------------------------------------------------------------
section 'Checking the restored database'
result=$(db_ledger_check "$main_db")
IFS='|' read -r customers violations examples <<<"$result"
[[ $violations == 0 ]] || die "ledger invariants broken after the restore ($violations of $customers customers): $examples"
info "ledger: $customers customers, entries = balance = lots per bucket, none negative"
counts_file=$(mktemp)
db_row_counts "$main_db" >"$counts_file"
print_row_counts "$counts_file"
rm -f "$counts_file"

# --- 8. start and smoke-check ----------------------------------------------------------------------------
restart_app
base_url=${BASE_URL:-}
[[ $DB_MODE == compose && -z $base_url ]] && base_url=http://localhost:3000
if [[ -n $base_url ]]; then
  section "Smoke check of $base_url"
  if [[ -z ${METRICS_TOKEN:-} && $DB_MODE == compose ]]; then
    METRICS_TOKEN=$(env_file_value "$ENV_FILE" METRICS_TOKEN || true)
  fi
  export METRICS_TOKEN
  wait_for_ready "$base_url" "$RESTORE_WAIT_SECONDS" || warn "$base_url/ready did not answer 200 within ${RESTORE_WAIT_SECONDS}s"
  BASE_URL=$base_url "$SCRIPTS_DIR/smoke-check.sh"
else
  info 'No BASE_URL: smoke check skipped (start the application and run scripts/smoke-check.sh)'
fi

trap - EXIT
echo
info "${C_GREEN}Restore of $(basename "$file") into $target complete.${C_RESET}"
