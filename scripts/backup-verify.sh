#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Proves that a backup can be restored: checksum, archive integrity, a restore into a scratch
# database, its migrations, row counts and the ledger invariants; the scratch database is dropped.
#
#   scripts/backup-verify.sh backups/backup_20240101_030000.sql.gz                # compose (default files)
#   scripts/backup-verify.sh FILE .env.production docker-compose.production.yml   # compose
#   DATABASE_URL=postgres://... scripts/backup-verify.sh FILE                      # direct
#
# The scratch database is created on the same server (compose: inside the postgres container;
# direct: on DATABASE_URL's server, which needs the CREATEDB right). A missing FILE.sha256 is a
# warning; a mismatch is a failure and the file is not restored. Exit 0 only when every step
# passes. A FILE that does not exist as given is looked up in BACKUP_DIR (default ./backups).
set -euo pipefail
PROG=backup-verify.sh
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/db.sh
source "$LIB_DIR/db.sh"

usage() {
  usage_text >&2
  exit 2
}

case ${1:-} in '' | -h | --help) usage ;; esac
(($# == 1 || $# == 3)) || usage
file=$1
if [[ ! -f $file && -f ${BACKUP_DIR:-./backups}/$file ]]; then file=${BACKUP_DIR:-./backups}/$file; fi
[[ -f $file ]] || die "backup file not found: $1"
db_select_mode "${2:-}" "${3:-}"
require_command gzip sha256sum

TABLE_WITH_HTTP=0
TABLE_STEP_WIDTH=12
work=$(mktemp -d)
scratch="loyalty_verify_$(date +%Y%m%d%H%M%S)_$$_${RANDOM}"
scratch_created=0

cleanup() {
  if ((scratch_created)); then
    db_query "$(db_main_name)" "drop database if exists \"$scratch\" with (force)" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# step_done STEP RESULT STARTED_MS DETAIL
step_done() { table_row "$1" "$2" - "$(($(now_ms) - $3))" "$4"; }

echo "Verifying $file ($(du -h "$file" | cut -f1), $(date -r "$file" '+%Y-%m-%d %H:%M:%S'))"
echo "Scratch database $scratch on $(db_where)"
echo
table_header

# 1. checksum (a mismatch means this is not the file backup.sh wrote: it is not restored)
t=$(now_ms)
sum_file="$file.sha256"
checksum_ok=1
if [[ -f $sum_file ]]; then
  expected=$(awk 'NR == 1 { print $1 }' "$sum_file")
  actual=$(sha256sum "$file" | awk '{ print $1 }')
  if [[ $expected == "$actual" ]]; then
    step_done checksum PASS "$t" "sha256 ${actual:0:16}... matches $(basename "$sum_file")"
  else
    checksum_ok=0
    step_done checksum FAIL "$t" "checksum mismatch: $(basename "$sum_file") says ${expected:0:16}..., file is ${actual:0:16}..."
  fi
else
  step_done checksum WARN "$t" "no $(basename "$sum_file") next to the file: not proven by a checksum"
fi

# 2. archive integrity and a complete dump
t=$(now_ms)
archive_ok=0
if gzip -t "$file" 2>"$work/gzip.err"; then
  if gzip -dc "$file" | tail -n 5 | grep -q 'PostgreSQL database dump complete'; then
    archive_ok=1
    step_done archive PASS "$t" "gzip -t ok, $(gzip -dc "$file" | wc -c | awk '{ printf "%.1f MB", $1 / 1048576 }') of SQL, dump complete"
  else
    step_done archive FAIL "$t" 'gzip is intact but the dump has no "dump complete" trailer (truncated dump)'
  fi
else
  step_done archive FAIL "$t" "gzip -t: $(tail -n 1 "$work/gzip.err" | sed 's/^gzip: //')"
fi

# 3. restore into a scratch database
restored=0
t=$(now_ms)
if ((!checksum_ok)); then
  step_done restore SKIP "$t" 'checksum mismatch: the file is not the one that was backed up'
elif ((archive_ok)); then
  if db_query "$(db_main_name)" "create database \"$scratch\"" >/dev/null 2>"$work/create.err"; then
    scratch_created=1
    if gzip -dc "$file" | db_psql "$scratch" >/dev/null 2>"$work/restore.err"; then
      restored=1
      step_done restore PASS "$t" "restored into $scratch"
    else
      step_done restore FAIL "$t" "psql: $(grep -m 1 -i 'error' "$work/restore.err" || tail -n 1 "$work/restore.err")"
    fi
  else
    step_done restore FAIL "$t" "cannot create the scratch database: $(tail -n 1 "$work/create.err")"
  fi
else
  step_done restore SKIP "$t" 'the archive is damaged'
fi

# 4. migrations: what the backup has applied vs what this code knows (`npm run db:status`)
t=$(now_ms)
if ((restored)); then
  rc=0
  db_applied_migrations "$scratch" >"$work/applied" 2>"$work/applied.err" || rc=$?
  if ((rc == 4)); then
    step_done migrations FAIL "$t" 'no kysely_migration table: not a backup of this application'
  elif ((rc != 0)); then
    step_done migrations FAIL "$t" "cannot read kysely_migration: $(tail -n 1 "$work/applied.err")"
  else
    applied_count=$(grep -c . "$work/applied" || true)
    latest=$(tail -n 1 "$work/applied")
    status_rc=0
    scratch_url=$(db_url_for "$scratch" 2>/dev/null) || status_rc=1
    if ((status_rc == 0)); then
      if [[ $DB_MODE == direct ]]; then
        if has_node_deps; then
          (cd "$ROOT_DIR" && DATABASE_URL=$scratch_url npm run -s db:status -- --json) \
            >"$work/status.json" 2>"$work/status.err" </dev/null || status_rc=$?
        else
          echo 'node_modules missing: npm ci first' >"$work/status.err"
          status_rc=1
        fi
      else
        compose exec -T -e "DATABASE_URL=$scratch_url" api npm run -s db:status -- --json \
          >"$work/status.json" 2>"$work/status.err" </dev/null || status_rc=$?
      fi
    fi
    known=''
    if ((status_rc == 0)); then
      known=$(node -e '
        const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        for (const m of s.migrations) console.log(m.name);' "$work/status.json" 2>/dev/null) || status_rc=1
    fi
    if ((status_rc != 0)); then
      reason=$(tail -n 1 "$work/status.err" 2>/dev/null || true)
      step_done migrations WARN "$t" "$applied_count applied, latest ${latest:-none}; not compared with this code (db:status: ${reason:-unavailable})"
    else
      unknown=$(comm -23 <(sort "$work/applied") <(printf '%s\n' "$known" | sort) | paste -sd ' ' -)
      pending=$(comm -13 <(sort "$work/applied") <(printf '%s\n' "$known" | sort) | grep . | paste -sd ' ' - || true)
      if [[ -n $unknown ]]; then
        step_done migrations FAIL "$t" "made by a newer release: this code does not know $unknown"
      elif [[ -n $pending ]]; then
        step_done migrations WARN "$t" "$applied_count applied, latest $latest; a restore will apply: $pending"
      else
        step_done migrations PASS "$t" "$applied_count applied, latest $latest (= this code's latest)"
      fi
    fi
  fi
else
  step_done migrations SKIP "$t" 'not restored'
fi

# 5. row counts of the main tables
t=$(now_ms)
counts_ok=0
if ((restored)); then
  if db_row_counts "$scratch" >"$work/counts" 2>"$work/counts.err"; then
    counts_ok=1
    total=$(awk -F'|' '$2 ~ /^[0-9]+$/ { s += $2 } END { print s + 0 }' "$work/counts")
    step_done rows PASS "$t" "$total rows in ${#MAIN_TABLES[@]} main tables (below)"
  else
    step_done rows FAIL "$t" "$(tail -n 1 "$work/counts.err")"
  fi
else
  step_done rows SKIP "$t" 'not restored'
fi

# 6. ledger invariants
t=$(now_ms)
if ((restored)); then
  if result=$(db_ledger_check "$scratch" 2>"$work/ledger.err"); then
    IFS='|' read -r customers violations examples <<<"$result"
    if [[ $violations == 0 ]]; then
      step_done ledger PASS "$t" "$customers customers: entries = balance = lots per bucket, none negative"
    else
      step_done ledger FAIL "$t" "$violations of $customers customers break the ledger: $examples"
    fi
  else
    step_done ledger FAIL "$t" "$(tail -n 1 "$work/ledger.err")"
  fi
else
  step_done ledger SKIP "$t" 'not restored'
fi

# 7. drop the scratch database
t=$(now_ms)
if ((scratch_created)); then
  if db_query "$(db_main_name)" "drop database if exists \"$scratch\" with (force)" >/dev/null 2>"$work/drop.err"; then
    scratch_created=0
    step_done cleanup PASS "$t" "dropped $scratch"
  else
    step_done cleanup WARN "$t" "could not drop $scratch: $(tail -n 1 "$work/drop.err")"
  fi
else
  step_done cleanup SKIP "$t" 'nothing to drop'
fi

if ((counts_ok)); then
  echo
  echo 'Row counts of the backup:'
  print_row_counts "$work/counts"
fi
table_summary "backup $(basename "$file")"
