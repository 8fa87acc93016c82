#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Backs up the application's database as gzipped plain SQL plus a SHA-256 checksum file.
#
#   scripts/backup.sh .env.production docker-compose.production.yml   # compose: pg_dump in the postgres container
#   DATABASE_URL=postgres://... BACKUP_DIR=dir scripts/backup.sh      # direct: this machine's pg_dump
#
# Writes BACKUP_DIR/backup_YYYYMMDD_HHMMSS.sql.gz and backup_YYYYMMDD_HHMMSS.sql.gz.sha256
# (`sha256sum -c` format), then applies the retention. Prints the backup's path on stdout (the
# only line there; everything else goes to stderr), exit 0 only when the backup is complete.
#
# Variables:
#   BACKUP_DIR              where backups go (default ./backups)
#   BACKUP_RETENTION_DAYS   backups older than this many days are deleted (default 14; 0 keeps all)
#   BACKUP_KEEP_MIN         ...but the newest N are always kept (default 7)
#   POSTGRES_USER / POSTGRES_DB   user and database inside the container (default loyalty / loyalty)
#   PG_BIN                  directory of the pg_dump to use in direct mode (default: the one on PATH)
set -euo pipefail
PROG=backup.sh
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=lib/db.sh
source "$LIB_DIR/db.sh"

usage() {
  usage_text >&2
  exit 2
}

case ${1:-} in -h | --help) usage ;; esac
(($# == 0 || $# == 2)) || usage
db_select_mode "${1:-}" "${2:-}"
require_command gzip sha256sum

BACKUP_DIR=${BACKUP_DIR:-./backups}
BACKUP_RETENTION_DAYS=${BACKUP_RETENTION_DAYS:-14}
BACKUP_KEEP_MIN=${BACKUP_KEEP_MIN:-7}
is_uint "$BACKUP_RETENTION_DAYS" || die 'BACKUP_RETENTION_DAYS must be a whole number of days' 2
is_uint "$BACKUP_KEEP_MIN" || die 'BACKUP_KEEP_MIN must be a whole number' 2

mkdir -p "$BACKUP_DIR"
BACKUP_DIR=$(cd "$BACKUP_DIR" && pwd)

stamp=$(date +%Y%m%d_%H%M%S)
name="backup_${stamp}.sql.gz"
n=1
while [[ -e $BACKUP_DIR/$name ]]; do
  n=$((n + 1))
  name="backup_${stamp}_${n}.sql.gz"
done
file="$BACKUP_DIR/$name"
partial="$BACKUP_DIR/.${name}.partial"
partial_sum="$BACKUP_DIR/.${name}.sha256.partial"
# Nothing half-written is ever left behind: both files are written under hidden names and renamed
# into place only once complete; any failure (a full disk included) removes what was written.
trap 'rm -f "$partial" "$partial_sum"' EXIT

# write_failed WHAT: dies explaining why writing WHAT failed, naming a full disk when it is one
# (the message pg_dump or gzip printed, e.g. "No space left on device", is just above).
write_failed() {
  local free_kib
  free_kib=$(df -Pk "$BACKUP_DIR" 2>/dev/null | awk 'NR == 2 { print $4 }') || free_kib=''
  if [[ $free_kib =~ ^[0-9]+$ ]] && ((free_kib < 1024)); then
    die "disk full: no space left on device in $BACKUP_DIR (${free_kib} KiB free) while writing $1; no backup was written"
  fi
  die "could not write $1 to $BACKUP_DIR (see the error above); no backup was written"
}

started=$SECONDS
echo "backup: dumping $(db_where) -> $file" >&2
# Whether pg_dump or the write to disk failed decides the message; a full disk fails gzip's write.
set +e
db_dump | gzip -c >"$partial"
statuses=("${PIPESTATUS[@]}")
set -e
dump_status=${statuses[0]}
gzip_status=${statuses[1]:-1}
if ((gzip_status != 0)); then
  write_failed 'the dump'
elif ((dump_status != 0)); then
  die "pg_dump failed; no backup was written (see the error above)"
fi
# pg_dump ends a complete plain dump with this line; anything else means it stopped half-way.
if ! gzip -dc "$partial" | tail -n 5 | grep -q 'PostgreSQL database dump complete'; then
  die 'the dump is incomplete (no "dump complete" trailer); no backup was written'
fi
chmod 600 "$partial"
checksum=$(sha256sum <"$partial" | cut -d' ' -f1)
printf '%s  %s\n' "$checksum" "$name" >"$partial_sum" || write_failed 'the checksum file'
mv "$partial" "$file"
if ! mv "$partial_sum" "$file.sha256"; then
  rm -f "$file"
  die "could not put the checksum file in place; no backup was written"
fi
size=$(du -h "$file" | cut -f1)
echo "backup: done in $((SECONDS - started))s, $size, sha256 $(cut -c1-16 "$file.sha256")..." >&2

# Retention: the newest BACKUP_KEEP_MIN always stay; older ones go once past BACKUP_RETENTION_DAYS.
if ((BACKUP_RETENTION_DAYS > 0)); then
  now=$(date +%s)
  max_age=$((BACKUP_RETENTION_DAYS * 86400))
  index=0
  removed=0
  while IFS= read -r old; do
    index=$((index + 1))
    ((index > BACKUP_KEEP_MIN)) || continue
    mtime=$(stat -c %Y "$old")
    if ((now - mtime > max_age)); then
      rm -f "$old" "$old.sha256"
      removed=$((removed + 1))
      echo "backup: retention: removed $(basename "$old")" >&2
    fi
  done < <(find "$BACKUP_DIR" -maxdepth 1 -type f -name 'backup_*.sql.gz' -printf '%T@ %p\n' |
    sort -rn | cut -d' ' -f2-)
  echo "backup: retention: kept backups of the last $BACKUP_RETENTION_DAYS days (at least" \
    "$BACKUP_KEEP_MIN), removed $removed" >&2
fi

printf '%s\n' "$file"
