-- Manual adjustment (positive: a new lot; negative: taken from available, never below zero).
-- One generic plan per connection for its lookups by key (see loyalty_customer_state).
create or replace function loyalty_adjust_points(p_merchant uuid, p_customer uuid, p_points bigint, p_reason text,
  p_lifetime_days integer) returns jsonb
language plpgsql set plan_cache_mode = force_generic_plan as $fn$
declare
  v_available bigint;
begin
  perform 1 from balances where customer_id = p_customer and merchant_id = p_merchant for update;
  if not found then
    raise exception 'customer_not_found' using detail = '{}';
  end if;
  perform loyalty_expire_customer(p_merchant, p_customer, now());
  perform loyalty_release_holds(p_merchant, p_customer, now());
  if p_points > 0 then
    perform loyalty_add_points(p_merchant, p_customer, p_points, 'adjust', 'adjust', p_lifetime_days,
                               null, null, p_reason);
  elsif p_points < 0 then
    select available into v_available from balances where customer_id = p_customer;
    if v_available < -p_points then
      raise exception 'insufficient_points'
        using detail = jsonb_build_object('available', v_available, 'requested', -p_points)::text;
    end if;
    perform loyalty_take_points(p_merchant, p_customer, -p_points, 'adjust', null, null, p_reason);
    update balances set available = available + p_points, updated_at = now() where customer_id = p_customer;
  end if;
  insert into outbox_events (merchant_id, type, payload)
  values (p_merchant, 'points.adjusted', jsonb_build_object('customerId', p_customer, 'points', p_points,
          'reason', p_reason, 'balance', loyalty_balance_json(p_customer), 'occurredAt', now()));
  return loyalty_balance_json(p_customer);
end $fn$;
