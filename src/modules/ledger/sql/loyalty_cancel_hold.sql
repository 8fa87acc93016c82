-- Cancels a hold: p: merchantId, holdId. Its points go back to their lots (loyalty_release_hold).
-- Idempotent: a hold already cancelled, or expired (its points are back already), answers as it
-- is; a committed one cannot be cancelled (hold_not_active: refund its purchase instead).
-- Lock order: balance row -> lots -> holds (the hold's customer never changes, so it is read first).
-- One generic plan per connection for its lookups by key (see loyalty_customer_state).
create or replace function loyalty_cancel_hold(p jsonb) returns jsonb
language plpgsql set plan_cache_mode = force_generic_plan as $fn$
declare
  v_merchant uuid := (p->>'merchantId')::uuid;
  v_hold_id uuid := (p->>'holdId')::uuid;
  v_customer uuid;
  v_status text;
begin
  select customer_id into v_customer from holds where id = v_hold_id and merchant_id = v_merchant;
  if not found then
    raise exception 'hold_not_found' using detail = '{}';
  end if;
  perform 1 from balances where customer_id = v_customer for update;
  -- Gone while this waited (the customer deleted, with their merchant): as a moment later.
  if not found then
    raise exception 'hold_not_found' using detail = '{}';
  end if;
  perform loyalty_expire_customer(v_merchant, v_customer, now());
  -- A hold past its expiry is released as expired, this one included.
  perform loyalty_release_holds(v_merchant, v_customer, now());
  select status into v_status from holds where id = v_hold_id for update;
  if v_status = 'committed' then
    raise exception 'hold_not_active' using detail = jsonb_build_object('status', v_status)::text;
  end if;
  if v_status = 'active' then
    perform loyalty_release_hold(v_hold_id, 'cancelled');
  end if;
  return loyalty_hold_answer(v_hold_id);
end $fn$;
