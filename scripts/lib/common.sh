# shellcheck shell=bash
# shellcheck disable=SC2034 # the variables set here are read by the scripts that source this file
# Shared helpers of the operations scripts (sourced, never run): messages, result tables, HTTP calls,
# JSON fields, env files and docker compose. Callers set `set -euo pipefail` and PROG before sourcing.

: "${PROG:=$(basename "$0")}"
LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPTS_DIR="$(dirname "$LIB_DIR")"
ROOT_DIR="$(dirname "$SCRIPTS_DIR")"
export LIB_DIR SCRIPTS_DIR ROOT_DIR

# --- messages ------------------------------------------------------------------------------------

if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
  C_RED=$'\e[31m' C_GREEN=$'\e[32m' C_YELLOW=$'\e[33m' C_BOLD=$'\e[1m' C_RESET=$'\e[0m'
else
  C_RED='' C_GREEN='' C_YELLOW='' C_BOLD='' C_RESET=''
fi

info() { printf '%s\n' "$*"; }
warn() { printf '%sWARNING:%s %s\n' "$C_YELLOW" "$C_RESET" "$*" >&2; }
# die MESSAGE [EXIT_CODE]: exit 1 by default; 2 is used for usage errors.
die() {
  printf '%s%s: %s%s\n' "$C_RED" "$PROG" "$1" "$C_RESET" >&2
  exit "${2:-1}"
}
# section TITLE: a visible heading between the steps of a long script.
section() { printf '\n%s==> %s%s\n' "$C_BOLD" "$*" "$C_RESET"; }

# banner LINE...: a loud framed message (automatic rollback, failed release).
banner() {
  local line
  printf '%s' "$C_RED$C_BOLD"
  printf '%s\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'
  for line in "$@"; do printf '!!! %s\n' "$line"; done
  printf '%s\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!'
  printf '%s' "$C_RESET"
}

# usage_text: the comment block at the top of the running script (its documentation).
usage_text() {
  awk 'NR == 1 { next } /^# shellcheck/ { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

require_command() {
  local cmd
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is required but was not found on PATH"
  done
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# --- result tables -------------------------------------------------------------------------------
# One row per step: STEP RESULT HTTP MS DETAIL. RESULT is PASS, FAIL, WARN or SKIP; counters below
# decide the exit code (0 only when nothing failed).

TABLE_STEP_WIDTH=${TABLE_STEP_WIDTH:-16}
TABLE_WITH_HTTP=${TABLE_WITH_HTTP:-1}
COUNT_PASS=0
COUNT_FAIL=0
COUNT_WARN=0
COUNT_SKIP=0

_table_line() {
  local step=$1 result=$2 http=$3 ms=$4 detail=$5 color=${6:-}
  if ((TABLE_WITH_HTTP)); then
    printf "%-${TABLE_STEP_WIDTH}s  %s%-6s%s  %-4s  %7s  %s\n" "$step" "$color" "$result" "$C_RESET" "$http" "$ms" "$detail"
  else
    printf "%-${TABLE_STEP_WIDTH}s  %s%-6s%s  %7s  %s\n" "$step" "$color" "$result" "$C_RESET" "$ms" "$detail"
  fi
}

table_header() {
  _table_line STEP RESULT HTTP MS DETAIL
  _table_line "$(printf '%*s' "$TABLE_STEP_WIDTH" '' | tr ' ' '-')" ------ ---- ------- ------
}

# table_row STEP RESULT [HTTP] [MS] [DETAIL]
table_row() {
  local step=$1 result=$2 http=${3:--} ms=${4:--} detail=${5:-} color=''
  case $result in
    PASS) COUNT_PASS=$((COUNT_PASS + 1)) color=$C_GREEN ;;
    FAIL) COUNT_FAIL=$((COUNT_FAIL + 1)) color=$C_RED ;;
    WARN) COUNT_WARN=$((COUNT_WARN + 1)) color=$C_YELLOW ;;
    SKIP) COUNT_SKIP=$((COUNT_SKIP + 1)) ;;
  esac
  _table_line "$step" "$result" "$http" "$ms" "$detail" "$color"
}

# now_ms: milliseconds since the epoch (step durations of the non-HTTP scripts).
now_ms() { date +%s%3N; }

# table_summary WHAT: prints the verdict line; returns 1 when a step failed.
table_summary() {
  local what=$1 total=$((COUNT_PASS + COUNT_FAIL + COUNT_WARN + COUNT_SKIP))
  local counts="$COUNT_PASS passed, $COUNT_FAIL failed, $COUNT_WARN warnings, $COUNT_SKIP skipped"
  echo
  if ((COUNT_FAIL > 0)); then
    printf '%sFAIL%s: %s: %s of %s steps failed (%s)\n' "$C_RED" "$C_RESET" "$what" "$COUNT_FAIL" \
      "$total" "$counts"
    return 1
  fi
  printf '%sPASS%s: %s (%s)\n' "$C_GREEN" "$C_RESET" "$what" "$counts"
}

# --- HTTP ----------------------------------------------------------------------------------------

HTTP_CONNECT_TIMEOUT=${HTTP_CONNECT_TIMEOUT:-5}
HTTP_MAX_TIME=${HTTP_MAX_TIME:-15}

# http_call METHOD URL OUT_FILE [curl args...]
# Sets HTTP_STATUS (000 when no answer), HTTP_US (microseconds), HTTP_MS (rounded) and HTTP_ERROR
# (empty, or why there was no answer: connection refused, timeout, ...). Never fails by itself.
http_call() {
  local method=$1 url=$2 out=$3 written rc=0 err
  shift 3
  err=$(mktemp)
  written=$(curl -sS -X "$method" -o "$out" -w '%{http_code} %{time_total}' \
    --connect-timeout "$HTTP_CONNECT_TIMEOUT" --max-time "$HTTP_MAX_TIME" "$@" "$url" 2>"$err") || rc=$?
  HTTP_STATUS=${written%% *}
  [[ $HTTP_STATUS =~ ^[0-9]{3}$ ]] || HTTP_STATUS=000
  HTTP_US=$(awk -v t="${written#* }" 'BEGIN { if (t + 0 != t) t = 0; printf "%d", t * 1000000 }')
  HTTP_MS=$(((HTTP_US + 500) / 1000))
  HTTP_ERROR=''
  if ((rc != 0)); then
    case $rc in
      6) HTTP_ERROR='cannot resolve host' ;;
      7) HTTP_ERROR='connection refused' ;;
      28) HTTP_ERROR="timeout after ${HTTP_MAX_TIME}s" ;;
      35 | 51 | 53 | 54 | 58 | 59 | 60 | 77 | 80 | 82 | 83 | 90 | 91) HTTP_ERROR='TLS error' ;;
      52) HTTP_ERROR='empty reply from server' ;;
      56) HTTP_ERROR='connection reset' ;;
      *) HTTP_ERROR="curl error $rc" ;;
    esac
    local message
    message=$(head -n 1 "$err" | sed -E 's/^curl: \([0-9]+\) //; s/ after [0-9]+ ms.*//')
    [[ -n $message ]] && HTTP_ERROR="$HTTP_ERROR: $message"
  fi
  rm -f "$err"
}

# wait_for_ready BASE_URL SECONDS: polls /ready until it answers 200; returns 1 on timeout.
wait_for_ready() {
  local base=$1 seconds=$2 deadline out
  deadline=$((SECONDS + seconds))
  out=$(mktemp)
  while :; do
    HTTP_MAX_TIME=5 http_call GET "$base/ready" "$out"
    if [[ $HTTP_STATUS == 200 ]]; then
      rm -f "$out"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      rm -f "$out"
      return 1
    fi
    sleep 1
  done
}

# header_file FILE HEADER...: writes request headers to a private file for `curl -H @FILE`, so
# tokens and API keys do not show up in the process list.
header_file() {
  local file=$1
  shift
  (umask 077 && printf '%s\n' "$@" >"$file")
}

# --- JSON ----------------------------------------------------------------------------------------

# json_get FILE PATH...: prints each dotted path's value on its own line (empty when missing;
# objects as JSON). Returns 3 when FILE is not JSON. Uses node, or jq when node is missing.
json_get() {
  local file=$1
  shift
  if command -v node >/dev/null 2>&1; then
    node -e '
      const fs = require("fs");
      let data;
      try { data = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch { process.exit(3); }
      for (const path of process.argv.slice(2)) {
        let v = data;
        for (const key of path.split(".")) v = v === null || v === undefined ? undefined : v[key];
        console.log(v === undefined || v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v));
      }' "$file" "$@"
  elif command -v jq >/dev/null 2>&1; then
    jq -e . "$file" >/dev/null 2>&1 || return 3
    local path
    for path in "$@"; do
      jq -r --arg p "$path" 'getpath($p | split(".") | map(tonumber? // .)) // "" |
        if type == "object" or type == "array" then tojson else tostring end' "$file"
    done
  else
    die 'node or jq is required to read JSON answers'
  fi
}

# json_str VALUE: VALUE as a JSON string literal.
json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/\\r}
  s=${s//$'\t'/\\t}
  printf '"%s"' "$s"
}

# --- env files -----------------------------------------------------------------------------------

# env_file_value FILE KEY: the last value of KEY in a KEY=VALUE env file (quotes removed), or
# nothing. The file is read, never sourced: values may contain any character.
env_file_value() {
  local file=$1 key=$2 line value='' found=1
  [[ -r $file ]] || return 1
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    if [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=(.*)$ ]] &&
      [[ ${BASH_REMATCH[2]} == "$key" ]]; then
      value=${BASH_REMATCH[3]}
      found=0
    fi
  done <"$file"
  ((found == 0)) || return 1
  value=${value#"${value%%[![:space:]]*}"}
  value=${value%"${value##*[![:space:]]}"}
  if ((${#value} >= 2)); then
    local first=${value:0:1} last=${value: -1}
    if [[ ($first == '"' || $first == "'") && $first == "$last" ]]; then
      value=${value:1:${#value}-2}
    fi
  fi
  printf '%s' "$value"
}

# env_file_pairs FILE: fills the array ENV_PAIRS with KEY=VALUE for every variable of the file.
env_file_pairs() {
  local file=$1 line key keys=()
  ENV_PAIRS=()
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%$'\r'}
    [[ $line =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*= ]] && keys+=("${BASH_REMATCH[2]}")
  done <"$file"
  for key in "${keys[@]}"; do
    ENV_PAIRS+=("$key=$(env_file_value "$file" "$key")")
  done
}

# --- docker compose ------------------------------------------------------------------------------

# compose ARGS...: docker compose with the deployment's env file and compose file. Without the
# compose plugin (Debian's docker.io has none), Debian's docker-compose (1.29) runs it instead: it
# knows no top-level `name:`, so it reads the file without that line and gets the name as -p (the
# same project), with the file's directory as the project directory (relative paths unchanged).
compose() {
  if [[ -z ${COMPOSE_V1:-} ]]; then
    if docker compose version >/dev/null 2>&1; then
      COMPOSE_V1=0
    elif command -v docker-compose >/dev/null 2>&1; then
      COMPOSE_V1=1
    else
      die 'neither the docker compose plugin nor docker-compose is installed'
    fi
  fi
  if ((COMPOSE_V1)); then
    local name
    name=$(sed -n 's/^name:[[:space:]]*//p' "$COMPOSE_FILE" | tr -d "\"' \r")
    docker-compose ${name:+-p "$name"} --project-directory "$(dirname "$COMPOSE_FILE")" \
      --env-file "$ENV_FILE" -f <(sed '/^name:/d' "$COMPOSE_FILE") "$@"
  else
    docker compose --env-file "$ENV_FILE" -f "$COMPOSE_FILE" "$@"
  fi
}

# has_node_deps: whether this checkout can run the app's npm scripts on the host.
has_node_deps() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && [[ -x $ROOT_DIR/node_modules/.bin/tsx ]]
}
