#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Smoke check of the integration API as a POS uses it: a customer's one-time code, resolve, quote
# and, when allowed, a small purchase and its full refund that leave the balance where it began.
#
#   BASE_URL=https://api.example.com INTEGRATION_API_KEY=... SMOKE_USER_TOKEN=... \
#   SMOKE_OUTLET_ID=... SMOKE_ALLOW_MUTATIONS=0 scripts/smoke-integrations.sh
#
# Variables:
#   BASE_URL               the API (default http://localhost:3000)
#   INTEGRATION_API_KEY    the merchant's API key (sent as X-Api-Key); required
#   SMOKE_USER_TOKEN       a customer's user token: POST /api/v1/client/code gets a one-time code
#   SMOKE_CUSTOMER_ID      the customer when there is no code (no token, or /code failed) ...
#   SMOKE_PHONE            ... or its phone (E.164)
#   SMOKE_ALLOW_MUTATIONS  1 adds a purchase (earning points, orderId smoke-<time>-<random>, with an
#                          Idempotency-Key) and its full refund; needs one of the three ids below.
#                          Default 0: read-only steps only (code, resolve, quote)
#   SMOKE_OUTLET_ID, SMOKE_DEVICE_ID, SMOKE_MANAGER_ID   POS context sent with every call
#   SMOKE_RECEIPT_TOTAL    receipt total of the quote and the purchase, minor units (default 10000)
#   SMOKE_MAX_MS_<STEP>    latency threshold of a step in ms; a slower step fails the run. Defaults:
#                          CODE 1500, RESOLVE 1500 (also used by the final balance check),
#                          QUOTE 1500, PURCHASE 3000, REFUND 3000, GET_PURCHASE 1500.
#                          SMOKE_MAX_MS_DEFAULT replaces every default at once
#   HTTP_MAX_TIME          seconds one request may take (default 15)
#
# Use a dedicated smoke customer: the last step compares its balance with the one at the start.
# Prints a table (step, result, HTTP status, ms, detail); exit 0 only when every step passes,
# 1 when one fails, 2 when the variables are wrong.
set -euo pipefail
PROG=smoke-integrations.sh
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
API=$BASE_URL/api/v1/integration
[[ -n ${INTEGRATION_API_KEY:-} ]] || die 'INTEGRATION_API_KEY is required' 2
if [[ -z ${SMOKE_USER_TOKEN:-}${SMOKE_CUSTOMER_ID:-}${SMOKE_PHONE:-} ]]; then
  die 'no customer: set SMOKE_USER_TOKEN (a code from /api/v1/client/code), SMOKE_CUSTOMER_ID or SMOKE_PHONE' 2
fi
case ${SMOKE_ALLOW_MUTATIONS:-0} in
  1 | true | yes | on) mutations=1 ;;
  0 | false | no | off | '') mutations=0 ;;
  *) die "SMOKE_ALLOW_MUTATIONS must be 0 or 1, not '$SMOKE_ALLOW_MUTATIONS'" 2 ;;
esac
ctx=''
[[ -n ${SMOKE_OUTLET_ID:-} ]] && ctx+=",\"outletId\":$(json_str "$SMOKE_OUTLET_ID")"
[[ -n ${SMOKE_DEVICE_ID:-} ]] && ctx+=",\"deviceId\":$(json_str "$SMOKE_DEVICE_ID")"
[[ -n ${SMOKE_MANAGER_ID:-} ]] && ctx+=",\"managerId\":$(json_str "$SMOKE_MANAGER_ID")"
if ((mutations)) && [[ -z $ctx ]]; then
  die 'SMOKE_ALLOW_MUTATIONS=1 needs SMOKE_OUTLET_ID, SMOKE_DEVICE_ID or SMOKE_MANAGER_ID' 2
fi
total=${SMOKE_RECEIPT_TOTAL:-10000}
if ! is_uint "$total" || ((total == 0)); then
  die 'SMOKE_RECEIPT_TOTAL must be a positive number of minor units' 2
fi

declare -A MAX_MS=([CODE]=1500 [RESOLVE]=1500 [QUOTE]=1500 [PURCHASE]=3000 [REFUND]=3000 [GET_PURCHASE]=1500)
for key in "${!MAX_MS[@]}"; do
  var="SMOKE_MAX_MS_$key"
  value=${!var:-${SMOKE_MAX_MS_DEFAULT:-${MAX_MS[$key]}}}
  is_uint "$value" || die "$var must be a whole number of milliseconds, not '$value'" 2
  MAX_MS[$key]=$value
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
body="$work/body"
header_file "$work/key.headers" "X-Api-Key: $INTEGRATION_API_KEY"

# api METHOD URL [JSON] [curl args...]: a call of the integration API with the key.
api() {
  local method=$1 url=$2 data=${3:-}
  shift 3 || shift $#
  local args=(-H "@$work/key.headers" "$@")
  [[ -n $data ]] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
  http_call "$method" "$url" "$body" "${args[@]}"
}

# api_idempotent METHOD URL JSON KEY: a mutation; without an answer (timeout, reset) it is sent once
# more with the same Idempotency-Key, which replays the first outcome instead of doing it twice.
api_idempotent() {
  api "$1" "$2" "$3" -H "Idempotency-Key: $4"
  [[ $HTTP_STATUS == 000 ]] && api "$1" "$2" "$3" -H "Idempotency-Key: $4"
  return 0
}

# error_of_body: "code: message" of an error answer, or its first bytes.
error_of_body() {
  local parsed
  if parsed=$(json_get "$body" error.code error.message 2>/dev/null) && [[ -n ${parsed//$'\n'/} ]]; then
    printf '%s' "${parsed/$'\n'/: }"
  else
    head -c 120 "$body"
  fi
}

# judge STEP KEY EXPECTED_STATUS DETAIL [PROBLEM]: one table row. FAIL without an answer, with
# another status, with a PROBLEM found in the answer, or slower than SMOKE_MAX_MS_<KEY>.
# Sets ANSWERED=1 when the answer itself was right (usable by the next steps, even if slow).
judge() {
  local step=$1 key=$2 expected=$3 detail=$4 problem=${5:-} limit=${MAX_MS[$2]}
  ANSWERED=0
  if [[ $HTTP_STATUS == 000 ]]; then
    table_row "$step" FAIL 000 "$HTTP_MS" "$HTTP_ERROR"
  elif [[ $HTTP_STATUS != "$expected" ]]; then
    table_row "$step" FAIL "$HTTP_STATUS" "$HTTP_MS" "expected $expected: $(error_of_body)"
  elif [[ -n $problem ]]; then
    table_row "$step" FAIL "$HTTP_STATUS" "$HTTP_MS" "$problem"
  else
    ANSWERED=1
    if ((HTTP_US > limit * 1000)); then
      table_row "$step" FAIL "$HTTP_STATUS" "$HTTP_MS" "too slow: over SMOKE_MAX_MS_$key=$limit ms; $detail"
    else
      table_row "$step" PASS "$HTTP_STATUS" "$HTTP_MS" "$detail"
    fi
  fi
}

# fields PATH...: fills the array F with values of the JSON answer.
fields() { mapfile -t F < <(json_get "$body" "$@" 2>/dev/null || true); }

echo "Integration smoke of $BASE_URL (mutations: $( ((mutations)) && echo on || echo off), receipt total $total)"
echo
table_header

# 1. code: the customer's one-time code, as the Mini App would get it
ref=''
ref_desc=''
use_fallback() {
  if [[ -n ${SMOKE_CUSTOMER_ID:-} ]]; then
    ref="\"customerId\":$(json_str "$SMOKE_CUSTOMER_ID")" ref_desc=customerId
  elif [[ -n ${SMOKE_PHONE:-} ]]; then
    ref="\"phone\":$(json_str "$SMOKE_PHONE")" ref_desc=phone
  fi
}
if [[ -n ${SMOKE_USER_TOKEN:-} ]]; then
  header_file "$work/user.headers" "Authorization: Bearer $SMOKE_USER_TOKEN"
  http_call POST "$BASE_URL/api/v1/client/code" "$body" -H "@$work/user.headers"
  code=''
  problem=''
  if [[ $HTTP_STATUS == 200 ]]; then
    fields code ttlSeconds
    code=${F[0]:-}
    [[ $code =~ ^[0-9]{6}$ ]] || problem="the answer has no 6-digit code: $(head -c 120 "$body")"
  fi
  judge code CODE 200 "code ******, valid ${F[1]:-?}s" "$problem"
  if ((ANSWERED)); then
    ref="\"code\":\"$code\"" ref_desc=code
  else
    use_fallback
  fi
else
  use_fallback
  table_row code SKIP - - "SMOKE_USER_TOKEN not set: the customer is named by $ref_desc"
fi

# 2. resolve
customer_id=''
start_available=''
start_pending=''
if [[ -z $ref ]]; then
  table_row resolve SKIP - - 'no customer: no code, and neither SMOKE_CUSTOMER_ID nor SMOKE_PHONE is set'
else
  api POST "$API/customers/resolve" "{$ref$ctx}"
  problem=''
  F=()
  if [[ $HTTP_STATUS == 200 ]]; then
    fields customer.id balance.available balance.pending tier.name
    customer_id=${F[0]:-} start_available=${F[1]:-} start_pending=${F[2]:-}
    [[ -n $customer_id && -n $start_available ]] || problem="unexpected answer: $(head -c 120 "$body")"
  fi
  judge resolve RESOLVE 200 \
    "customer ${customer_id:0:8}... by $ref_desc: available $start_available, pending $start_pending, tier ${F[3]:-none}" \
    "$problem"
  ((ANSWERED)) || customer_id=''
fi

# 3. quote (writes nothing)
if [[ -z $ref ]]; then
  table_row quote SKIP - - 'no customer'
else
  api POST "$API/purchases/quote" "{\"customer\":{$ref},\"receipt\":{\"total\":$total}$ctx}"
  problem=''
  F=()
  if [[ $HTTP_STATUS == 200 ]]; then
    fields earnPoints maxRedeemPoints payable
    is_uint "${F[0]:-x}" || problem="unexpected answer: $(head -c 120 "$body")"
  fi
  judge quote QUOTE 200 "receipt $total earns ${F[0]:-?} points, up to ${F[1]:-?} redeemable" "$problem"
fi

# 4-7. purchase, full refund, the purchase as stored, balance back where it began
if ((!mutations)); then
  for step in purchase refund get-purchase balance; do
    table_row "$step" SKIP - - 'read-only run (SMOKE_ALLOW_MUTATIONS=1 enables it)'
  done
elif [[ -z $customer_id ]]; then
  for step in purchase refund get-purchase balance; do
    table_row "$step" SKIP - - 'no starting balance (resolve failed)'
  done
else
  order_id="smoke-$(date +%Y%m%d%H%M%S)-$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
  api_idempotent POST "$API/purchases" \
    "{\"customer\":{$ref},\"receipt\":{\"total\":$total},\"orderId\":\"$order_id\"$ctx}" "$order_id-purchase"
  purchase_id=''
  problem=''
  F=()
  if [[ $HTTP_STATUS == 201 ]]; then
    fields purchase.id purchase.earnedPoints purchase.status
    purchase_id=${F[0]:-}
    [[ -n $purchase_id ]] || problem="unexpected answer: $(head -c 120 "$body")"
  fi
  judge purchase PURCHASE 201 "order $order_id: earned ${F[1]:-?} points, ${F[2]:-?}" "$problem"

  if [[ -z $purchase_id ]]; then
    table_row refund SKIP - - 'no purchase'
    table_row get-purchase SKIP - - 'no purchase'
  else
    # The refund runs whenever the purchase exists, so a failed check never leaves points behind.
    api_idempotent POST "$API/purchases/$purchase_id/refunds" "{${ctx#,}}" "$order_id-refund"
    problem=''
    F=()
    if [[ $HTTP_STATUS == 201 ]]; then
      fields refund.amount refund.returnedPoints refund.revokedPoints refund.unrecoveredPoints
      [[ ${F[0]:-} == "$total" ]] || problem="refunded ${F[0]:-?} instead of the whole $total"
    fi
    judge refund REFUND 201 \
      "refunded $total: revoked ${F[2]:-?}, returned ${F[1]:-?}, unrecovered ${F[3]:-?} points" "$problem"

    api GET "$API/purchases/$purchase_id" ''
    problem=''
    F=()
    if [[ $HTTP_STATUS == 200 ]]; then
      fields purchase.status purchase.refundedAmount purchase.refunds
      if [[ ${F[0]:-} != refunded || ${F[1]:-} != "$total" ]]; then
        problem="expected status refunded with $total refunded, got ${F[0]:-?} with ${F[1]:-?}"
      fi
    fi
    judge get-purchase GET_PURCHASE 200 "status ${F[0]:-?}, refunded ${F[1]:-?} of $total" "$problem"
  fi

  api POST "$API/customers/resolve" "{\"customerId\":\"$customer_id\"$ctx}"
  problem=''
  F=()
  if [[ $HTTP_STATUS == 200 ]]; then
    fields balance.available balance.pending
    if [[ ${F[0]:-} != "$start_available" || ${F[1]:-} != "$start_pending" ]]; then
      problem="balance changed: available $start_available -> ${F[0]:-?}, pending $start_pending -> ${F[1]:-?}"
    fi
  fi
  judge balance RESOLVE 200 "back where it began: available ${F[0]:-?}, pending ${F[1]:-?}" "$problem"
fi

table_summary "integration smoke of $BASE_URL"
