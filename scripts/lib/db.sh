# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are read by the scripts that source this file
# Database access of the backup scripts (sourced after common.sh), in one of two modes:
#   compose  through the `postgres` container of the compose deployment (ENV_FILE, COMPOSE_FILE);
#            pg_dump and psql run inside it as POSTGRES_USER (default loyalty) on POSTGRES_DB (loyalty)
#   direct   straight against DATABASE_URL with this machine's pg_dump and psql (installs without
#            Docker, and the tests); PG_BIN picks a directory with another version of them

PG_CONTAINER_USER=${POSTGRES_USER:-loyalty}
PG_CONTAINER_DB=${POSTGRES_DB:-loyalty}
PG_SERVICE=${PG_SERVICE:-postgres}
DB_MODE=''

# db_select_mode [ENV_FILE COMPOSE_FILE]: compose mode when both files are given; otherwise direct
# mode when DATABASE_URL is set; otherwise compose mode with the default production files of the
# current directory (the runbook runs everything from the repository root).
db_select_mode() {
  local env_file=${1:-} compose_file=${2:-}
  if [[ -n $env_file || -n $compose_file ]]; then
    [[ -n $env_file && -n $compose_file ]] || die 'compose mode needs the env file and the compose file' 2
    [[ -f $env_file ]] || die "env file not found: $env_file"
    [[ -f $compose_file ]] || die "compose file not found: $compose_file"
    DB_MODE=compose
    ENV_FILE=$env_file
    COMPOSE_FILE=$compose_file
  elif [[ -n ${DATABASE_URL:-} ]]; then
    DB_MODE=direct
    [[ $DATABASE_URL =~ ^postgres(ql)?:// ]] || die 'DATABASE_URL must be a postgres:// URL' 2
  elif [[ -f .env.production && -f docker-compose.production.yml ]]; then
    DB_MODE=compose
    ENV_FILE=.env.production
    COMPOSE_FILE=docker-compose.production.yml
  else
    die 'no database: pass ENV_FILE COMPOSE_FILE (compose mode), or set DATABASE_URL (direct mode)' 2
  fi
  if [[ $DB_MODE == direct ]]; then
    require_command "$(pg_tool psql)" "$(pg_tool pg_dump)"
  else
    require_command docker
  fi
}

pg_tool() { printf '%s' "${PG_BIN:+$PG_BIN/}$1"; }

# url_with_db URL NAME: the connection URL with another database name.
url_with_db() {
  local url=$1 name=$2
  [[ $url =~ ^([a-zA-Z][a-zA-Z0-9+.-]*://[^/?]*)(/[^?]*)?(\?.*)?$ ]] || die "not a database URL: ${url%%@*}@..."
  printf '%s/%s%s' "${BASH_REMATCH[1]}" "$name" "${BASH_REMATCH[3]}"
}

# url_db_name URL: the database name of a connection URL.
url_db_name() {
  local url=$1 path
  path=${url#*://}
  path=${path#*/}
  [[ $path == "${url#*://}" ]] && path=''
  path=${path%%\?*}
  printf '%s' "$path"
}

# url_safe URL: the URL without its password, for messages.
url_safe() { printf '%s' "$1" | sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#'; }

# db_main_name: the application's database.
db_main_name() {
  if [[ $DB_MODE == direct ]]; then url_db_name "$DATABASE_URL"; else printf '%s' "$PG_CONTAINER_DB"; fi
}

# db_where: where the database is, for messages.
db_where() {
  if [[ $DB_MODE == direct ]]; then
    printf 'DATABASE_URL %s' "$(url_safe "$DATABASE_URL")"
  else
    printf "database %s in the %s container (%s)" "$PG_CONTAINER_DB" "$PG_SERVICE" "$COMPOSE_FILE"
  fi
}

# db_psql DB ARGS...: psql on database DB (stops at the first error, reads no ~/.psqlrc).
db_psql() {
  local db=$1
  shift
  if [[ $DB_MODE == direct ]]; then
    local url=$DATABASE_URL
    [[ $db == "$(db_main_name)" ]] || url=$(url_with_db "$DATABASE_URL" "$db")
    "$(pg_tool psql)" -X -q -v ON_ERROR_STOP=1 -d "$url" "$@"
  else
    compose exec -T "$PG_SERVICE" psql -X -q -v ON_ERROR_STOP=1 -U "$PG_CONTAINER_USER" -d "$db" "$@"
  fi
}

# db_query DB SQL: rows as `a|b|c` lines without headers.
db_query() { db_psql "$1" -tA -F '|' -c "$2" </dev/null; }

# db_dump: plain SQL dump of the application's database on stdout.
db_dump() {
  if [[ $DB_MODE == direct ]]; then
    "$(pg_tool pg_dump)" --no-owner --no-privileges -d "$DATABASE_URL"
  else
    compose exec -T "$PG_SERVICE" pg_dump -U "$PG_CONTAINER_USER" -d "$PG_CONTAINER_DB" --no-owner --no-privileges
  fi
}

# db_url_for DB: a DATABASE_URL the application can use for database DB (compose mode: the one of
# the env file, as seen from the app containers).
db_url_for() {
  local base
  if [[ $DB_MODE == direct ]]; then
    base=$DATABASE_URL
  else
    base=$(env_file_value "$ENV_FILE" DATABASE_URL) || return 1
  fi
  url_with_db "$base" "$1"
}

# --- checks shared by backup-verify.sh and restore.sh --------------------------------------------

# The main tables whose row counts are reported (absent tables, e.g. in old backups, show as -).
MAIN_TABLES=(merchants outlets api_keys customers balances purchases refunds point_lots ledger_entries
  outbox_events webhook_endpoints)

# db_row_counts DB: `table|count` lines.
db_row_counts() {
  local list='' t
  for t in "${MAIN_TABLES[@]}"; do list+="${list:+,}'$t'"; done
  db_query "$1" "/* loyalty:row_counts */
    select t, case when to_regclass('public.' || t) is null then '-'
      else (xpath('/row/c/text()', query_to_xml('select count(*) as c from public.' || quote_ident(t),
        false, true, '')))[1]::text end
    from unnest(array[$list]) with ordinality as x(t, i) order by i"
}

# db_ledger_check DB: `customers|violations|examples`. For every customer the ledger entries per
# bucket add up to the stored balance (available, pending), so do the remaining points of the lots,
# and nothing is negative.
db_ledger_check() {
  db_query "$1" "/* loyalty:ledger_check */
    with entries as (
      select customer_id,
        coalesce(sum(points) filter (where bucket = 'available'), 0) as available,
        coalesce(sum(points) filter (where bucket = 'pending'), 0) as pending
      from ledger_entries group by customer_id
    ), lots as (
      select customer_id,
        coalesce(sum(remaining) filter (where state = 'active'), 0) as available,
        coalesce(sum(remaining) filter (where state = 'pending'), 0) as pending
      from point_lots group by customer_id
    ), checked as (
      select c.id,
        coalesce(b.available, 0) as b_available, coalesce(b.pending, 0) as b_pending,
        coalesce(e.available, 0) as e_available, coalesce(e.pending, 0) as e_pending,
        coalesce(l.available, 0) as l_available, coalesce(l.pending, 0) as l_pending
      from customers c
      left join balances b on b.customer_id = c.id
      left join entries e on e.customer_id = c.id
      left join lots l on l.customer_id = c.id
    ), bad as (
      select * from checked
      where b_available <> e_available or b_pending <> e_pending or b_available < 0 or b_pending < 0
        or b_available <> l_available or b_pending <> l_pending
    )
    select (select count(*) from checked), (select count(*) from bad),
      coalesce((select string_agg(format('customer %s: balance %s/%s, entries %s/%s, lots %s/%s', id,
        b_available, b_pending, e_available, e_pending, l_available, l_pending), '; ')
        from (select * from bad order by id limit 3) x), '')"
}

# db_applied_migrations DB: names in kysely_migration, one a line; returns 4 when the table is missing.
db_applied_migrations() {
  local exists
  exists=$(db_query "$1" "/* loyalty:has_migrations */ select to_regclass('public.kysely_migration') is not null") ||
    return 1
  [[ $exists == t ]] || return 4
  db_query "$1" '/* loyalty:migrations */ select name from kysely_migration order by name'
}

# dump_migrations: the migrations recorded in a plain SQL dump read on stdin (the rows of its
# kysely_migration table), one name a line. Reads the whole stream (no early exit under pipefail).
dump_migrations() {
  awk '
    /^COPY (public\.)?"?kysely_migration"? \(/ {
      n = split(substr($0, index($0, "(") + 1), cols, /, */)
      for (i = 1; i <= n; i++) {
        c = cols[i]
        gsub(/"/, "", c)
        sub(/\).*/, "", c)
        if (c == "name") col = i
      }
      copying = 1
      next
    }
    copying && /^\\\.$/ { copying = 0; next }
    copying && col { split($0, f, "\t"); print f[col] }
  '
}

# code_migrations: the migrations this release knows (`npm run db:status -- --json`: in compose mode
# in the api image, as the migration step runs it), one name a line.
code_migrations() {
  local json
  if [[ $DB_MODE == compose ]]; then
    json=$(compose run --rm --no-deps -T api npm run -s db:status -- --json </dev/null) || return 1
  elif has_node_deps; then
    json=$(cd "$ROOT_DIR" && npm run -s db:status -- --json </dev/null) || return 1
  else
    echo 'node_modules missing: run "npm ci" first' >&2
    return 1
  fi
  # {"migrations":[{"name":...},...],"pending":[...],"unknown":[...]}: only the known ones.
  printf '%s\n' "$json" | sed -nE 's/.*"migrations":\[([^]]*)\].*/\1/p' |
    grep -oE '"name":"[^"]+"' | sed -E 's/^"name":"(.*)"$/\1/'
}

# print_row_counts FILE: the `table|count` lines as an indented table.
print_row_counts() {
  local table count
  printf '  %-20s %10s\n' TABLE ROWS
  while IFS='|' read -r table count; do
    [[ -n $table ]] && printf '  %-20s %10s\n' "$table" "$count"
  done <"$1"
}
