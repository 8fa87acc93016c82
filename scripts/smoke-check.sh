#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Smoke check of the API's operations endpoints: /health, /ready, /live and /metrics.
#
#   BASE_URL=https://api.example.com METRICS_TOKEN=... scripts/smoke-check.sh
#
# Variables:
#   BASE_URL        the API (default http://localhost:3000)
#   METRICS_TOKEN   sent as X-Metrics-Token; when set, /metrics must also refuse a request without it
#   HTTP_MAX_TIME   seconds one request may take (default 15); HTTP_CONNECT_TIMEOUT (default 5)
#
# /metrics must carry the runbook's metrics: http_requests_total, http_request_duration_seconds,
# http_slow_requests_total, loyalty_outbox_pending, loyalty_outbox_dead_total.
# Prints a table (step, result, HTTP status, ms, detail); exit 0 only when every step passes.
set -euo pipefail
PROG=smoke-check.sh
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

case ${1:-} in -h | --help)
  usage_text
  exit 0
  ;;
esac
require_command curl

BASE_URL=${BASE_URL:-http://localhost:3000}
BASE_URL=${BASE_URL%/}
METRICS_TOKEN=${METRICS_TOKEN:-}
REQUIRED_METRICS=(http_requests_total http_request_duration_seconds http_slow_requests_total
  loyalty_outbox_pending loyalty_outbox_dead_total)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
body="$work/body"

# no_answer STEP: the row of a request that got no HTTP answer.
no_answer() { table_row "$1" FAIL 000 "$HTTP_MS" "$HTTP_ERROR"; }

# field NAME: a top-level string or number field of the JSON body (no JSON tool needed here).
field() { { grep -oE "\"$1\":(\"[^\"]*\"|[0-9.]+|null)" "$body" | head -n 1 | cut -d: -f2- | tr -d '"'; } || true; }

echo "Smoke check of $BASE_URL (metrics token: $([[ -n $METRICS_TOKEN ]] && echo given || echo none))"
echo
table_header

# /health
http_call GET "$BASE_URL/health" "$body"
if [[ $HTTP_STATUS == 000 ]]; then
  no_answer health
elif [[ $HTTP_STATUS == 200 && $(field status) == ok ]]; then
  table_row health PASS "$HTTP_STATUS" "$HTTP_MS" "ok, up $(field uptimeSeconds)s, version $(field version)"
else
  table_row health FAIL "$HTTP_STATUS" "$HTTP_MS" "expected 200 {status:ok}: $(head -c 160 "$body")"
fi

# /ready: Postgres decides; Redis is reported
http_call GET "$BASE_URL/ready" "$body"
if [[ $HTTP_STATUS == 000 ]]; then
  no_answer ready
else
  checks="postgres $(field postgres), redis $(field redis)"
  if [[ $HTTP_STATUS == 200 ]]; then
    table_row ready PASS "$HTTP_STATUS" "$HTTP_MS" "$checks"
  else
    table_row ready FAIL "$HTTP_STATUS" "$HTTP_MS" "not ready: $checks"
  fi
fi

# /live
http_call GET "$BASE_URL/live" "$body"
if [[ $HTTP_STATUS == 000 ]]; then
  no_answer live
elif [[ $HTTP_STATUS == 200 ]]; then
  table_row live PASS "$HTTP_STATUS" "$HTTP_MS" 'alive'
else
  table_row live FAIL "$HTTP_STATUS" "$HTTP_MS" "expected 200: $(head -c 160 "$body")"
fi

# /metrics (with the token when given)
metrics_args=()
if [[ -n $METRICS_TOKEN ]]; then
  header_file "$work/metrics.headers" "X-Metrics-Token: $METRICS_TOKEN"
  metrics_args=(-H "@$work/metrics.headers")
fi
http_call GET "$BASE_URL/metrics" "$body" "${metrics_args[@]}"
if [[ $HTTP_STATUS == 000 ]]; then
  no_answer metrics
elif [[ $HTTP_STATUS == 200 ]]; then
  missing=()
  for name in "${REQUIRED_METRICS[@]}"; do
    grep -qE "^(# TYPE )?${name}([ {]|$)" "$body" || missing+=("$name")
  done
  if ((${#missing[@]} == 0)); then
    pending=$(awk '$1 == "loyalty_outbox_pending" { print $2 }' "$body")
    dead=$(awk '$1 == "loyalty_outbox_dead_total" { print $2 }' "$body")
    table_row metrics PASS "$HTTP_STATUS" "$HTTP_MS" \
      "${#REQUIRED_METRICS[@]} runbook metrics present; outbox pending ${pending:-?}, dead total ${dead:-?}"
  else
    table_row metrics FAIL "$HTTP_STATUS" "$HTTP_MS" "missing: ${missing[*]}"
  fi
elif [[ $HTTP_STATUS == 401 || $HTTP_STATUS == 403 ]]; then
  if [[ -n $METRICS_TOKEN ]]; then
    table_row metrics FAIL "$HTTP_STATUS" "$HTTP_MS" 'METRICS_TOKEN refused: the token is wrong'
  else
    table_row metrics FAIL "$HTTP_STATUS" "$HTTP_MS" 'the server requires a token: set METRICS_TOKEN'
  fi
else
  table_row metrics FAIL "$HTTP_STATUS" "$HTTP_MS" "expected 200: $(head -c 160 "$body")"
fi

# /metrics without the token must be refused when a token protects it
if [[ -n $METRICS_TOKEN ]]; then
  http_call GET "$BASE_URL/metrics" "$body"
  if [[ $HTTP_STATUS == 000 ]]; then
    no_answer metrics-no-token
  elif [[ $HTTP_STATUS == 401 || $HTTP_STATUS == 403 ]]; then
    table_row metrics-no-token PASS "$HTTP_STATUS" "$HTTP_MS" 'refused without X-Metrics-Token'
  else
    table_row metrics-no-token FAIL "$HTTP_STATUS" "$HTTP_MS" \
      'served WITHOUT the token: is METRICS_TOKEN set on the server?'
  fi
else
  table_row metrics-no-token SKIP - - 'METRICS_TOKEN not given'
fi

table_summary "smoke check of $BASE_URL"
