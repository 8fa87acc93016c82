-- Reserves points before payment: p: merchantId, customerId, points, ttlSeconds, receipt,
-- idempotencyKey?, requestHash?, outletId?, deviceId?, managerId?. The application checked the
-- programme's redeem cap for the receipt; here, under the balance row lock, the available balance.
-- The points leave their lots exactly as a redeem takes them (soonest expiry first; one 'hold'
-- entry out of available with a move per lot: the reservation) and enter held (a 'hold' entry in
-- held). Writes hold.created and the Idempotency-Key record (idempotency_keys), like a refund.
-- Lock order: balance row -> that customer's lots -> holds.
-- One generic plan per connection for its lookups by key (see loyalty_customer_state).
create or replace function loyalty_create_hold(p jsonb) returns jsonb
language plpgsql set plan_cache_mode = force_generic_plan as $fn$
declare
  v_merchant uuid := (p->>'merchantId')::uuid;
  v_customer uuid := (p->>'customerId')::uuid;
  v_points bigint := (p->>'points')::bigint;
  v_hold uuid := loyalty_uuidv7();
  v_available bigint;
  v_entry bigint;
  v_result jsonb;
begin
  v_result := loyalty_idempotency_begin(v_merchant, p->>'idempotencyKey', p->>'requestHash');
  if v_result is not null then return v_result; end if;

  perform 1 from balances where customer_id = v_customer and merchant_id = v_merchant for update;
  if not found then
    raise exception 'customer_not_found' using detail = '{}';
  end if;
  perform loyalty_expire_customer(v_merchant, v_customer, now());
  perform loyalty_release_holds(v_merchant, v_customer, now());
  select available into v_available from balances where customer_id = v_customer;
  if v_available < v_points then
    raise exception 'insufficient_points'
      using detail = jsonb_build_object('field', 'redeemPoints', 'available', v_available,
                                        'requested', v_points)::text;
  end if;

  v_entry := loyalty_take_points(v_merchant, v_customer, v_points, 'hold', null, null, null);
  perform loyalty_entry(v_merchant, v_customer, 'hold', 'held', v_points, null, null, null, null);
  update balances set available = available - v_points, held = held + v_points, updated_at = now()
  where customer_id = v_customer;
  insert into holds (id, merchant_id, customer_id, points, expires_at, entry_id, receipt, outlet_id, device_id,
                     manager_id)
  values (v_hold, v_merchant, v_customer, v_points, now() + make_interval(secs => (p->>'ttlSeconds')::integer),
          v_entry, p->'receipt', (p->>'outletId')::uuid, (p->>'deviceId')::uuid, (p->>'managerId')::uuid);

  v_result := loyalty_hold_answer(v_hold);
  insert into outbox_events (merchant_id, type, payload)
  values (v_merchant, 'hold.created', jsonb_build_object(
    'holdId', v_hold, 'customerId', v_customer, 'points', v_points,
    'expiresAt', v_result->'hold'->'expiresAt', 'balance', v_result->'balance', 'outletId', p->>'outletId',
    'occurredAt', v_result->'hold'->'createdAt'));
  if p->>'idempotencyKey' is not null then
    insert into idempotency_keys (merchant_id, key, request_hash, result)
    values (v_merchant, p->>'idempotencyKey', p->>'requestHash', v_result);
  end if;
  return v_result;
end $fn$;
