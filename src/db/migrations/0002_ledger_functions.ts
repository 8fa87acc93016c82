import { type Kysely, sql } from 'kysely';

// The ledger's write paths as SQL functions: each is one round trip and one transaction, so a
// customer's balance row is locked only for the few milliseconds the write takes.
//
// Lock order, everywhere: purchase row (refunds only) -> balance row -> that customer's lots ->
// code row. Taking the balance row first serialises every change of one customer, so lot and
// balance updates below never race.
//
// Business errors are raised as SQLSTATE P0001 with the error code as the message and a JSON
// object of details in DETAIL; src/modules/ledger/ledger.errors.ts turns them into AppErrors.

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
-- Timestamps in answers as ISO 8601 UTC with milliseconds, the same as JavaScript's toISOString().
create function loyalty_iso(p_ts timestamptz) returns text
language sql immutable as $fn$
  select to_char(p_ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$fn$;

-- Pro-rata share of points for a cumulative refunded amount; exact at the end (refunded = total).
create function loyalty_pro_rata(p_points bigint, p_refunded bigint, p_total bigint) returns bigint
language sql immutable as $fn$
  select case when p_refunded >= p_total then p_points
              else floor(p_points::numeric * p_refunded / p_total)::bigint end
$fn$;

-- Takes up to p_points from the customer's active lots, soonest expiry first. The caller holds the
-- balance row lock. Returns what it took (less than asked only when the lots hold less).
create function loyalty_take_points(p_customer uuid, p_points bigint) returns bigint
language plpgsql as $fn$
declare
  v_left bigint := p_points;
  v_take bigint;
  r record;
begin
  if p_points <= 0 then return 0; end if;
  for r in
    select id, remaining from point_lots
    where customer_id = p_customer and state = 'active' and remaining > 0
    order by expires_at nulls last, id
    for update
  loop
    v_take := least(r.remaining, v_left);
    update point_lots set remaining = remaining - v_take where id = r.id;
    v_left := v_left - v_take;
    exit when v_left = 0;
  end loop;
  return p_points - v_left;
end $fn$;

-- Adds an active lot, its ledger entry and the balance change. Caller holds the balance lock.
create function loyalty_add_points(p_merchant uuid, p_customer uuid, p_points bigint, p_kind text,
  p_source text, p_lifetime_days integer, p_purchase uuid, p_refund uuid, p_reason text) returns void
language plpgsql as $fn$
declare
  v_lot bigint;
begin
  if p_points <= 0 then return; end if;
  insert into point_lots (merchant_id, customer_id, source, purchase_id, refund_id, points, remaining,
                          state, available_at, expires_at)
  values (p_merchant, p_customer, p_source, p_purchase, p_refund, p_points, p_points, 'active', now(),
          case when p_lifetime_days is null then null else now() + make_interval(days => p_lifetime_days) end)
  returning id into v_lot;
  insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, purchase_id, refund_id, lot_id, reason)
  values (p_merchant, p_customer, p_kind, 'available', p_points, p_purchase, p_refund, v_lot, p_reason);
  update balances set available = available + p_points, updated_at = now() where customer_id = p_customer;
end $fn$;

create function loyalty_balance_json(p_customer uuid) returns jsonb
language sql stable as $fn$
  select jsonb_build_object('available', available, 'pending', pending) from balances where customer_id = p_customer
$fn$;

-- Idempotency inside the operation's own transaction. A transaction-scoped advisory lock on
-- (merchant, key) lets exactly one request with a key run; a second one at the same time gets
-- idempotency_key_in_use at once instead of waiting. Once the first committed, the stored result
-- is replayed (same body) or the key is refused (other body). Returns the stored result or null.
create function loyalty_idempotency_begin(p_merchant uuid, p_key text, p_hash text) returns jsonb
language plpgsql as $fn$
declare
  v_hash text;
  v_result jsonb;
begin
  if p_key is null then return null; end if;
  if not pg_try_advisory_xact_lock(hashtextextended(p_merchant::text || '/' || p_key, 0)) then
    raise exception 'idempotency_key_in_use' using detail = '{}';
  end if;
  select request_hash, result into v_hash, v_result from idempotency_keys
  where merchant_id = p_merchant and key = p_key;
  if not found then return null; end if;
  if v_hash <> p_hash then
    raise exception 'idempotency_key_reuse' using detail = '{}';
  end if;
  return v_result || jsonb_build_object('replayed', true);
end $fn$;

-- Commits a purchase whose figures the application computed from the programme rules.
-- p: merchantId, customerId, orderId, code?, idempotencyKey?, outletId?, deviceId?, managerId?,
--    total, eligibleAmount, discount, earnPoints, redeemPoints, earnRateBp, tier?, receipt,
--    pendingDays, lifetimeDays?
create function loyalty_commit_purchase(p jsonb) returns jsonb
language plpgsql as $fn$
declare
  v_merchant uuid := (p->>'merchantId')::uuid;
  v_customer uuid := (p->>'customerId')::uuid;
  v_redeem bigint := (p->>'redeemPoints')::bigint;
  v_earn bigint := (p->>'earnPoints')::bigint;
  v_pending_days integer := (p->>'pendingDays')::integer;
  v_lifetime integer := (p->>'lifetimeDays')::integer;
  v_purchase uuid := gen_random_uuid();
  v_available bigint;
  v_taken bigint;
  v_lot bigint;
  v_available_at timestamptz;
  v_is_pending boolean := (p->>'pendingDays')::integer > 0;
  v_created timestamptz;
  v_result jsonb;
begin
  v_result := loyalty_idempotency_begin(v_merchant, p->>'idempotencyKey', p->>'requestHash');
  if v_result is not null then return v_result; end if;

  select available into v_available from balances
  where customer_id = v_customer and merchant_id = v_merchant for update;
  if not found then
    raise exception 'customer_not_found' using detail = '{}';
  end if;
  if v_available < v_redeem then
    raise exception 'insufficient_points'
      using detail = jsonb_build_object('available', v_available, 'requested', v_redeem)::text;
  end if;

  if p->>'code' is not null then
    update customer_codes set consumed_at = now(), purchase_id = v_purchase
    where merchant_id = v_merchant and code = p->>'code' and customer_id = v_customer
      and consumed_at is null and expires_at > now();
    if not found then
      raise exception 'code_not_found' using detail = '{}';
    end if;
  end if;

  insert into purchases (id, merchant_id, customer_id, order_id, outlet_id, device_id, manager_id, total,
                         eligible_amount, discount, earned_points, redeemed_points, earn_rate_bp, tier, receipt)
  values (v_purchase, v_merchant, v_customer, p->>'orderId', (p->>'outletId')::uuid, (p->>'deviceId')::uuid,
          (p->>'managerId')::uuid, (p->>'total')::bigint, (p->>'eligibleAmount')::bigint,
          (p->>'discount')::bigint, v_earn, v_redeem, (p->>'earnRateBp')::integer, p->>'tier', p->'receipt')
  returning created_at into v_created;

  if v_redeem > 0 then
    v_taken := loyalty_take_points(v_customer, v_redeem);
    if v_taken <> v_redeem then
      raise exception 'ledger invariant broken: lots hold less than the available balance of %', v_customer;
    end if;
    insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, purchase_id)
    values (v_merchant, v_customer, 'redeem', 'available', -v_redeem, v_purchase);
  end if;

  if v_earn > 0 then
    v_available_at := now() + make_interval(days => v_pending_days);
    insert into point_lots (merchant_id, customer_id, source, purchase_id, points, remaining, state,
                            available_at, expires_at)
    values (v_merchant, v_customer, 'earn', v_purchase, v_earn, v_earn,
            case when v_is_pending then 'pending' else 'active' end, v_available_at,
            case when v_lifetime is null then null else v_available_at + make_interval(days => v_lifetime) end)
    returning id into v_lot;
    insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, purchase_id, lot_id)
    values (v_merchant, v_customer, 'earn', case when v_is_pending then 'pending' else 'available' end,
            v_earn, v_purchase, v_lot);
  end if;

  update balances
  set available = available - v_redeem + case when v_is_pending then 0 else v_earn end,
      pending = pending + case when v_is_pending then v_earn else 0 end,
      updated_at = now()
  where customer_id = v_customer;

  v_result := jsonb_build_object(
    'purchase', jsonb_build_object(
      'id', v_purchase, 'orderId', p->>'orderId', 'customerId', v_customer, 'status', 'committed',
      'total', (p->>'total')::bigint, 'discount', (p->>'discount')::bigint,
      'payable', (p->>'total')::bigint - (p->>'discount')::bigint,
      'earnedPoints', v_earn, 'redeemedPoints', v_redeem, 'createdAt', loyalty_iso(v_created)),
    'balance', loyalty_balance_json(v_customer));

  insert into outbox_events (merchant_id, type, payload)
  values (v_merchant, 'purchase.committed', jsonb_build_object(
    'purchaseId', v_purchase, 'orderId', p->>'orderId', 'customerId', v_customer,
    'total', (p->>'total')::bigint, 'earnedPoints', v_earn, 'redeemedPoints', v_redeem,
    'pendingPoints', case when v_is_pending then v_earn else 0 end,
    'balance', v_result->'balance', 'outletId', p->>'outletId', 'occurredAt', loyalty_iso(v_created)));

  if p->>'idempotencyKey' is not null then
    insert into idempotency_keys (merchant_id, key, request_hash, result)
    values (v_merchant, p->>'idempotencyKey', p->>'requestHash', v_result);
  end if;
  return v_result;
end $fn$;

-- Refunds part (p.amount) or all that is left of a purchase. Redeemed points come back as a new
-- lot; earned points are revoked pro rata: first from the purchase's own lot, then from the
-- available balance, and what cannot be taken back without going below zero is unrecovered.
-- p: merchantId, purchaseId, amount?, idempotencyKey?, outletId?, deviceId?, managerId?, lifetimeDays?
create function loyalty_refund_purchase(p jsonb) returns jsonb
language plpgsql as $fn$
declare
  v_merchant uuid := (p->>'merchantId')::uuid;
  v_purchase purchases%rowtype;
  v_refund uuid := gen_random_uuid();
  v_rest bigint;
  v_amount bigint;
  v_after bigint;
  v_return bigint;
  v_revoke_target bigint;
  v_revoked bigint := 0;
  v_take bigint;
  v_available bigint;
  v_lot record;
  v_created timestamptz;
  v_result jsonb;
begin
  v_result := loyalty_idempotency_begin(v_merchant, p->>'idempotencyKey', p->>'requestHash');
  if v_result is not null then return v_result; end if;

  select * into v_purchase from purchases
  where id = (p->>'purchaseId')::uuid and merchant_id = v_merchant for update;
  if not found then
    raise exception 'purchase_not_found' using detail = '{}';
  end if;
  v_rest := v_purchase.total - v_purchase.refunded_amount;
  if v_rest <= 0 then
    raise exception 'purchase_fully_refunded' using detail = '{}';
  end if;
  v_amount := coalesce((p->>'amount')::bigint, v_rest);
  if v_amount > v_rest then
    raise exception 'refund_exceeds_remaining'
      using detail = jsonb_build_object('remaining', v_rest, 'requested', v_amount)::text;
  end if;
  v_after := v_purchase.refunded_amount + v_amount;
  v_return := loyalty_pro_rata(v_purchase.redeemed_points, v_after, v_purchase.total)
            - loyalty_pro_rata(v_purchase.redeemed_points, v_purchase.refunded_amount, v_purchase.total);
  v_revoke_target := loyalty_pro_rata(v_purchase.earned_points, v_after, v_purchase.total)
                   - loyalty_pro_rata(v_purchase.earned_points, v_purchase.refunded_amount, v_purchase.total);

  perform 1 from balances where customer_id = v_purchase.customer_id for update;

  insert into refunds (id, merchant_id, purchase_id, customer_id, amount, returned_points, revoked_points,
                       unrecovered_points, outlet_id, device_id, manager_id)
  values (v_refund, v_merchant, v_purchase.id, v_purchase.customer_id, v_amount, 0, 0, 0,
          (p->>'outletId')::uuid, (p->>'deviceId')::uuid, (p->>'managerId')::uuid)
  returning created_at into v_created;

  -- Return first, so a refund that both returns and revokes nets out before anything is lost.
  perform loyalty_add_points(v_merchant, v_purchase.customer_id, v_return, 'refund_return', 'return',
                             (p->>'lifetimeDays')::integer, v_purchase.id, v_refund, null);

  if v_revoke_target > 0 then
    -- The purchase's own lot first, whether still pending or already active.
    select id, remaining, state into v_lot from point_lots
    where purchase_id = v_purchase.id and source = 'earn' and state in ('pending', 'active') and remaining > 0
    for update;
    if found then
      v_take := least(v_lot.remaining, v_revoke_target);
      update point_lots set remaining = remaining - v_take where id = v_lot.id;
      insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, purchase_id, refund_id, lot_id)
      values (v_merchant, v_purchase.customer_id, 'refund_revoke',
              case when v_lot.state = 'pending' then 'pending' else 'available' end,
              -v_take, v_purchase.id, v_refund, v_lot.id);
      if v_lot.state = 'pending' then
        update balances set pending = pending - v_take where customer_id = v_purchase.customer_id;
      else
        update balances set available = available - v_take where customer_id = v_purchase.customer_id;
      end if;
      v_revoked := v_take;
    end if;
    -- Then whatever else is available, never below zero.
    if v_revoked < v_revoke_target then
      select available into v_available from balances where customer_id = v_purchase.customer_id;
      v_take := loyalty_take_points(v_purchase.customer_id, least(v_available, v_revoke_target - v_revoked));
      if v_take > 0 then
        insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, purchase_id, refund_id)
        values (v_merchant, v_purchase.customer_id, 'refund_revoke', 'available', -v_take, v_purchase.id, v_refund);
        update balances set available = available - v_take where customer_id = v_purchase.customer_id;
        v_revoked := v_revoked + v_take;
      end if;
    end if;
  end if;

  update refunds set returned_points = v_return, revoked_points = v_revoked,
                     unrecovered_points = v_revoke_target - v_revoked
  where id = v_refund;
  update purchases
  set refunded_amount = v_after,
      returned_points = returned_points + v_return,
      revoked_points = revoked_points + v_revoked,
      unrecovered_points = unrecovered_points + (v_revoke_target - v_revoked),
      status = case when v_after >= total then 'refunded' else 'partially_refunded' end
  where id = v_purchase.id;
  update balances set updated_at = now() where customer_id = v_purchase.customer_id;

  v_result := jsonb_build_object(
    'refund', jsonb_build_object(
      'id', v_refund, 'purchaseId', v_purchase.id, 'orderId', v_purchase.order_id, 'amount', v_amount,
      'returnedPoints', v_return, 'revokedPoints', v_revoked,
      'unrecoveredPoints', v_revoke_target - v_revoked, 'createdAt', loyalty_iso(v_created)),
    'balance', loyalty_balance_json(v_purchase.customer_id));

  insert into outbox_events (merchant_id, type, payload)
  values (v_merchant, 'purchase.refunded', jsonb_build_object(
    'refundId', v_refund, 'purchaseId', v_purchase.id, 'orderId', v_purchase.order_id,
    'customerId', v_purchase.customer_id, 'amount', v_amount, 'returnedPoints', v_return,
    'revokedPoints', v_revoked, 'unrecoveredPoints', v_revoke_target - v_revoked,
    'balance', v_result->'balance', 'occurredAt', loyalty_iso(v_created)));

  if p->>'idempotencyKey' is not null then
    insert into idempotency_keys (merchant_id, key, request_hash, result)
    values (v_merchant, p->>'idempotencyKey', p->>'requestHash', v_result);
  end if;
  return v_result;
end $fn$;

-- Manual adjustment (positive: a new lot; negative: taken from available, never below zero).
create function loyalty_adjust_points(p_merchant uuid, p_customer uuid, p_points bigint, p_reason text,
  p_lifetime_days integer) returns jsonb
language plpgsql as $fn$
declare
  v_available bigint;
  v_taken bigint;
begin
  select available into v_available from balances
  where customer_id = p_customer and merchant_id = p_merchant for update;
  if not found then
    raise exception 'customer_not_found' using detail = '{}';
  end if;
  if p_points > 0 then
    perform loyalty_add_points(p_merchant, p_customer, p_points, 'adjust', 'adjust', p_lifetime_days,
                               null, null, p_reason);
  elsif p_points < 0 then
    if v_available < -p_points then
      raise exception 'insufficient_points'
        using detail = jsonb_build_object('available', v_available, 'requested', -p_points)::text;
    end if;
    v_taken := loyalty_take_points(p_customer, -p_points);
    insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, reason)
    values (p_merchant, p_customer, 'adjust', 'available', -v_taken, p_reason);
    update balances set available = available - v_taken, updated_at = now() where customer_id = p_customer;
  end if;
  insert into outbox_events (merchant_id, type, payload)
  values (p_merchant, 'points.adjusted', jsonb_build_object('customerId', p_customer, 'points', p_points,
          'reason', p_reason, 'balance', loyalty_balance_json(p_customer), 'occurredAt', now()));
  return loyalty_balance_json(p_customer);
end $fn$;

-- Expires active lots whose expiry is at or before p_now, for at most p_limit customers per call.
-- Each customer's balance row is locked before its lots, and the lots are re-read under that lock,
-- so concurrent runs (or a concurrent redeem) never expire the same points twice.
create function loyalty_expire_points(p_now timestamptz, p_limit integer) returns jsonb
language plpgsql as $fn$
declare
  c record;
  v_lot record;
  v_sum bigint;
  v_customers integer := 0;
  v_scanned integer := 0;
  v_points bigint := 0;
begin
  for c in
    select distinct customer_id, merchant_id from point_lots
    where state = 'active' and remaining > 0 and expires_at <= p_now
    order by customer_id -- the same lock order in every batch function: no deadlocks between them
    limit p_limit
  loop
    v_scanned := v_scanned + 1;
    perform 1 from balances where customer_id = c.customer_id for update;
    v_sum := 0;
    for v_lot in
      select id, remaining from point_lots
      where customer_id = c.customer_id and state = 'active' and remaining > 0 and expires_at <= p_now
      for update
    loop
      insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, lot_id)
      values (c.merchant_id, c.customer_id, 'expire', 'available', -v_lot.remaining, v_lot.id);
      update point_lots set remaining = 0, state = 'expired' where id = v_lot.id;
      v_sum := v_sum + v_lot.remaining;
    end loop;
    if v_sum > 0 then
      update balances set available = available - v_sum, updated_at = now() where customer_id = c.customer_id;
      insert into outbox_events (merchant_id, type, payload)
      values (c.merchant_id, 'points.expired', jsonb_build_object('customerId', c.customer_id,
              'points', v_sum, 'balance', loyalty_balance_json(c.customer_id), 'occurredAt', p_now));
      v_customers := v_customers + 1;
      v_points := v_points + v_sum;
    end if;
  end loop;
  -- scanned = customers looked at: the caller loops while a batch was full.
  return jsonb_build_object('customers', v_customers, 'points', v_points, 'scanned', v_scanned);
end $fn$;

-- Makes pending lots available once their pending period is over (available_at <= p_now).
create function loyalty_activate_points(p_now timestamptz, p_limit integer) returns jsonb
language plpgsql as $fn$
declare
  c record;
  v_lot record;
  v_sum bigint;
  v_customers integer := 0;
  v_scanned integer := 0;
  v_points bigint := 0;
begin
  for c in
    select distinct customer_id, merchant_id from point_lots
    where state = 'pending' and available_at <= p_now
    order by customer_id -- the same lock order in every batch function: no deadlocks between them
    limit p_limit
  loop
    v_scanned := v_scanned + 1;
    perform 1 from balances where customer_id = c.customer_id for update;
    v_sum := 0;
    for v_lot in
      select id, remaining from point_lots
      where customer_id = c.customer_id and state = 'pending' and available_at <= p_now
      for update
    loop
      update point_lots set state = 'active' where id = v_lot.id;
      if v_lot.remaining > 0 then
        insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, lot_id)
        values (c.merchant_id, c.customer_id, 'activate', 'pending', -v_lot.remaining, v_lot.id),
               (c.merchant_id, c.customer_id, 'activate', 'available', v_lot.remaining, v_lot.id);
        v_sum := v_sum + v_lot.remaining;
      end if;
    end loop;
    if v_sum > 0 then
      update balances set pending = pending - v_sum, available = available + v_sum, updated_at = now()
      where customer_id = c.customer_id;
      insert into outbox_events (merchant_id, type, payload)
      values (c.merchant_id, 'points.activated', jsonb_build_object('customerId', c.customer_id,
              'points', v_sum, 'balance', loyalty_balance_json(c.customer_id), 'occurredAt', p_now));
      v_customers := v_customers + 1;
      v_points := v_points + v_sum;
    end if;
  end loop;
  -- scanned = customers looked at: the caller loops while a batch was full.
  return jsonb_build_object('customers', v_customers, 'points', v_points, 'scanned', v_scanned);
end $fn$;
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop function if exists loyalty_activate_points(timestamptz, integer), loyalty_expire_points(timestamptz, integer),
  loyalty_adjust_points(uuid, uuid, bigint, text, integer), loyalty_refund_purchase(jsonb),
  loyalty_commit_purchase(jsonb), loyalty_balance_json(uuid),
  loyalty_add_points(uuid, uuid, bigint, text, text, integer, uuid, uuid, text),
  loyalty_take_points(uuid, bigint), loyalty_pro_rata(bigint, bigint, bigint), loyalty_iso(timestamptz),
  loyalty_idempotency_begin(uuid, text, text);
`)
    .execute(db);
}
