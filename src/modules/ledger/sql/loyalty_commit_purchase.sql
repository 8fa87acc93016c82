-- Commits a purchase whose figures the application computed from the programme rules.
-- p: merchantId, customerId, orderId, code?, idempotencyKey?, requestHash?, outletId?, deviceId?,
--    managerId?, total, eligibleAmount, discount, earnPoints, redeemPoints, earnRateBp, tier?,
--    receipt, lineEligible? (per receipt line: earns and may be paid with points), pendingDays,
--    lifetimeDays?, earnBreakdown? (as the quote showed it; campaign points: loyalty_grant_campaigns),
--    holdId? (the redeemed points are the hold's: loyalty_use_hold, loyalty_take_hold_points)
-- Lock order: balance row -> that customer's lots -> holds -> code row -> the referrer's balance row
-- (first purchase of a referred customer) -> campaign rows.
-- What an earn-only purchase without campaign points writes, and nothing more: the balance row
-- (locked by the update that changes it), the purchase (its id time-ordered; it also keeps the
-- Idempotency-Key and the balance of the answer, so a replay needs no record of its own), the earned
-- lot, its ledger entry and the outbox event. docs/performance.md has the WAL this costs. Campaign
-- points add their lots, the balance and the purchase row's totals once they are granted.
-- One generic plan per connection for its lookups by key (see loyalty_customer_state).
create or replace function loyalty_commit_purchase(p jsonb) returns jsonb
language plpgsql set plan_cache_mode = force_generic_plan as $fn$
declare
  v_merchant uuid := (p->>'merchantId')::uuid;
  v_customer uuid := (p->>'customerId')::uuid;
  v_redeem bigint := (p->>'redeemPoints')::bigint;
  v_earn bigint := (p->>'earnPoints')::bigint;
  v_pending_days integer := (p->>'pendingDays')::integer;
  v_lifetime integer := (p->>'lifetimeDays')::integer;
  v_is_pending boolean := (p->>'pendingDays')::integer > 0;
  -- The payload's figures as typed variables: the statements below then take them as parameters,
  -- where a cast in a statement is set up again for every execution (a variable's expression once
  -- per transaction: once for all the purchases of a group commit).
  v_order text := p->>'orderId';
  v_total bigint := (p->>'total')::bigint;
  v_eligible bigint := (p->>'eligibleAmount')::bigint;
  v_discount bigint := (p->>'discount')::bigint;
  v_rate integer := (p->>'earnRateBp')::integer;
  v_outlet uuid := (p->>'outletId')::uuid;
  v_device uuid := (p->>'deviceId')::uuid;
  v_manager uuid := (p->>'managerId')::uuid;
  v_key text := p->>'idempotencyKey';
  v_purchase uuid := loyalty_uuidv7();
  v_available bigint;
  v_pending bigint;
  v_held bigint;
  v_lot bigint;
  v_available_at timestamptz;
  v_row purchases;
  v_grant jsonb;
  v_bonus bigint;
  v_result jsonb;
begin
  v_result := loyalty_idempotency_begin(v_merchant, v_key, p->>'requestHash');
  if v_result is not null then return v_result; end if;

  if v_redeem = 0 then
    -- Earning only: one statement locks the balance row and adds the points. Expiring due lots
    -- afterwards cannot take it below zero (the lots hold the stored balance), only lower it.
    update balances
    set available = available + case when v_is_pending then 0 else v_earn end,
        pending = pending + case when v_is_pending then v_earn else 0 end,
        updated_at = now()
    where customer_id = v_customer and merchant_id = v_merchant
    returning available, pending, held into v_available, v_pending, v_held;
    if not found then
      raise exception 'customer_not_found' using detail = '{}';
    end if;
    -- Points past their expiry are not spendable, whether or not the expiry job ran. The customer's
    -- own rows past their expiry: see loyalty_expire_customer.
    if exists (select 1 from point_lots where customer_id = v_customer and state = 'active' and remaining > 0
               and (customer_id, expires_at) <= (v_customer, now()))
       or exists (select 1 from holds where customer_id = v_customer and status = 'active'
                  and (customer_id, expires_at) <= (v_customer, now())) then
      perform loyalty_expire_customer(v_merchant, v_customer, now());
      perform loyalty_release_holds(v_merchant, v_customer, now());
      select available, pending, held into v_available, v_pending, v_held from balances where customer_id = v_customer;
    end if;
  else
    select available into v_available from balances
    where customer_id = v_customer and merchant_id = v_merchant for update;
    if not found then
      raise exception 'customer_not_found' using detail = '{}';
    end if;
    if exists (select 1 from point_lots where customer_id = v_customer and state = 'active' and remaining > 0
               and (customer_id, expires_at) <= (v_customer, now())) then
      v_available := v_available - loyalty_expire_customer(v_merchant, v_customer, now());
    end if;
    -- Holds past their expiry give their points back; the purchase's own hold lends it its points.
    if p->>'holdId' is not null
       or exists (select 1 from holds where customer_id = v_customer and status = 'active'
                  and (customer_id, expires_at) <= (v_customer, now())) then
      v_available := v_available + loyalty_release_holds(v_merchant, v_customer, now())
                     + loyalty_use_hold(v_merchant, v_customer, p);
    end if;
    if v_available < v_redeem then
      raise exception 'insufficient_points'
        using detail = jsonb_build_object('available', v_available, 'requested', v_redeem)::text;
    end if;
    update balances
    set available = available - v_redeem + case when v_is_pending then 0 else v_earn end,
        pending = pending + case when v_is_pending then v_earn else 0 end,
        updated_at = now()
    where customer_id = v_customer
    returning available, pending, held into v_available, v_pending, v_held;
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
                         eligible_amount, discount, earned_points, redeemed_points, earn_rate_bp, tier, receipt,
                         line_eligible, idempotency_key, request_hash, balance_available, balance_pending,
                         earn_breakdown, balance_held)
  values (v_purchase, v_merchant, v_customer, v_order, v_outlet, v_device, v_manager, v_total, v_eligible,
          v_discount, v_earn, v_redeem, v_rate, p->>'tier', p->'receipt',
          case when jsonb_typeof(p->'lineEligible') = 'array'
               then array(select jsonb_array_elements_text(p->'lineEligible')::boolean) end,
          v_key, case when v_key is not null then p->>'requestHash' end,
          v_available, v_pending,
          case when jsonb_typeof(p->'earnBreakdown') = 'array' then p->'earnBreakdown' end, v_held)
  returning * into v_row;

  -- One redeem entry, with a move per lot it took from: a refund returns the points to those lots.
  if p->>'holdId' is not null then
    perform loyalty_take_hold_points(v_merchant, v_customer, (p->>'holdId')::uuid, v_purchase);
  elsif v_redeem > 0 then
    perform loyalty_take_points(v_merchant, v_customer, v_redeem, 'redeem', v_purchase, null, null);
  end if;

  if v_earn > 0 then
    v_available_at := now() + make_interval(days => v_pending_days);
    insert into point_lots (merchant_id, customer_id, source, purchase_id, points, remaining, state,
                            available_at, expires_at)
    values (v_merchant, v_customer, 'earn', v_purchase, v_earn, v_earn,
            case when v_is_pending then 'pending' else 'active' end, v_available_at,
            case when v_lifetime is null then null else v_available_at + make_interval(days => v_lifetime) end)
    returning id into v_lot;
    -- The lot starts with its points; the earn entry names it.
    insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, purchase_id, lot_id)
    values (v_merchant, v_customer, 'earn', case when v_is_pending then 'pending' else 'available' end,
            v_earn, v_purchase, v_lot);
  end if;
  -- Referral points of a referred customer's first purchase: bonus lots outside the purchase, granted
  -- before the purchase's campaign rows are locked (the lock order in loyalty_grant_referral).
  if loyalty_grant_referral(v_merchant, v_customer, v_purchase) > 0 then
    select available, pending into v_available, v_pending from balances where customer_id = v_customer;
    update purchases set balance_available = v_available, balance_pending = v_pending
    where id = v_purchase returning * into v_row;
  end if;
  -- Campaign points: granted within their limits (possibly fewer than the quote showed, never more),
  -- then added to the balance and to the purchase with the breakdown as applied. A breakdown without
  -- a campaign line grants nothing and is stored as the quote showed it (the usual purchase).
  if jsonb_typeof(p->'earnBreakdown') is distinct from 'array'
     or p->'earnBreakdown' @> '[{"source": "campaign"}]' then
    v_grant := loyalty_grant_campaigns(v_merchant, v_customer, v_purchase, p);
    v_bonus := (v_grant->>'points')::bigint;
    if v_bonus > 0 then
      v_earn := v_earn + v_bonus;
      update balances
      set available = available + case when v_is_pending then 0 else v_bonus end,
          pending = pending + case when v_is_pending then v_bonus else 0 end,
          updated_at = now()
      where customer_id = v_customer
      returning available, pending into v_available, v_pending;
    end if;
    if v_bonus > 0 or v_grant->'breakdown' is distinct from v_row.earn_breakdown then
      update purchases
      set earned_points = v_earn, earn_breakdown = v_grant->'breakdown',
          balance_available = v_available, balance_pending = v_pending
      where id = v_purchase
      returning * into v_row;
    end if;
  end if;

  v_result := loyalty_purchase_answer(v_row);

  insert into outbox_events (merchant_id, type, payload)
  values (v_merchant, 'purchase.committed', jsonb_build_object(
    'purchaseId', v_purchase, 'orderId', v_order, 'customerId', v_customer,
    'total', v_total, 'earnedPoints', v_earn, 'redeemedPoints', v_redeem,
    'pendingPoints', case when v_is_pending then v_earn else 0 end,
    'balance', v_result->'balance', 'outletId', p->>'outletId', 'occurredAt', v_result->'purchase'->'createdAt'));
  return v_result;
end $fn$;
