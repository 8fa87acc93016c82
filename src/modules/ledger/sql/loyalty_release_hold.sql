-- Gives an active hold's points back (p_status: 'cancelled' or 'expired'): a release entry out of
-- held, and each lot of the reservation gets its points back through loyalty_land_points, so they
-- keep that lot's expiry (in a lot past its expiry they expire at once: the hold kept them alive
-- only for its purchase) and settle what refunds of that lot's purchase still owe. Writes the
-- hold.released event. The caller holds the customer's balance row lock. Returns the points that
-- became available (less any that expired or settled debts on landing).
create or replace function loyalty_release_hold(p_hold uuid, p_status text) returns bigint
language plpgsql as $fn$
declare
  v_hold record;
  v_before bigint;
  r record;
begin
  select * into v_hold from holds where id = p_hold and status = 'active' for update;
  if not found then return 0; end if;
  select available into v_before from balances where customer_id = v_hold.customer_id;
  perform loyalty_entry(v_hold.merchant_id, v_hold.customer_id, 'release', 'held', -v_hold.points, null, null,
                        null, p_status);
  update balances set held = held - v_hold.points, updated_at = now() where customer_id = v_hold.customer_id;
  for r in
    select lot_id, -points as points from lot_moves where entry_id = v_hold.entry_id and kind = 'hold' order by id
  loop
    perform loyalty_land_points(v_hold.merchant_id, v_hold.customer_id, r.lot_id, r.points, 'release', null, null);
  end loop;
  update holds set status = p_status, released_at = now() where id = p_hold;
  insert into outbox_events (merchant_id, type, payload)
  values (v_hold.merchant_id, 'hold.released', jsonb_build_object(
    'holdId', v_hold.id, 'customerId', v_hold.customer_id, 'points', v_hold.points, 'reason', p_status,
    'purchaseId', null, 'balance', loyalty_balance_json(v_hold.customer_id), 'occurredAt', loyalty_iso(now())));
  return (select available from balances where customer_id = v_hold.customer_id) - v_before;
end $fn$;
