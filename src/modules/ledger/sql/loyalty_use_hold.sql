-- The first half of a purchase's redeem of a hold (loyalty_commit_purchase, p.holdId): checks the
-- hold (this merchant's, this customer's, active, not past its expiry, p.redeemPoints equal to its
-- points) and moves its points out of held, back into the very lots they were reserved from
-- (moves without the expiry check of loyalty_land_points: a lot that expired meanwhile keeps them,
-- because the hold reserved them for this purchase), for loyalty_take_hold_points to take from
-- those lots once the purchase row exists. The caller holds the balance row lock and has released
-- the customer's expired holds. Returns the points that became available (0 without a hold).
create or replace function loyalty_use_hold(p_merchant uuid, p_customer uuid, p jsonb) returns bigint
language plpgsql as $fn$
declare
  v_hold record;
  v_entry bigint;
  r record;
begin
  if p->>'holdId' is null then return 0; end if;
  select * into v_hold from holds where id = (p->>'holdId')::uuid and merchant_id = p_merchant for update;
  if not found then
    raise exception 'hold_not_found' using detail = '{"field": "holdId"}';
  end if;
  if v_hold.customer_id <> p_customer then
    raise exception 'hold_customer_mismatch' using detail = '{"field": "holdId"}';
  end if;
  if v_hold.status = 'expired' or (v_hold.status = 'active' and v_hold.expires_at <= now()) then
    raise exception 'hold_expired'
      using detail = jsonb_build_object('field', 'holdId', 'expiresAt', loyalty_iso(v_hold.expires_at))::text;
  end if;
  if v_hold.status <> 'active' then
    raise exception 'hold_not_active' using detail = jsonb_build_object('field', 'holdId', 'status', v_hold.status)::text;
  end if;
  if v_hold.points <> (p->>'redeemPoints')::bigint then
    raise exception 'hold_mismatch'
      using detail = jsonb_build_object('field', 'redeemPoints', 'held', v_hold.points,
                                        'requested', (p->>'redeemPoints')::bigint)::text;
  end if;
  perform loyalty_entry(p_merchant, p_customer, 'release', 'held', -v_hold.points, null, null, null, 'committed');
  v_entry := loyalty_entry(p_merchant, p_customer, 'release', 'available', v_hold.points, null, null, null,
                           'committed');
  for r in
    select lot_id, -points as points from lot_moves where entry_id = v_hold.entry_id and kind = 'hold' order by id
  loop
    perform loyalty_move(v_entry, r.lot_id, r.points, 'release', null);
  end loop;
  update balances set held = held - v_hold.points, available = available + v_hold.points
  where customer_id = p_customer;
  update holds set status = 'committed', released_at = now() where id = v_hold.id;
  return v_hold.points;
end $fn$;
