-- The second half of a purchase's redeem of a hold (after loyalty_use_hold): one redeem entry with
-- a move per lot of the hold's reservation, so the purchase's redeemed points have the provenance
-- of a normal redeem and a refund returns them to those lots. Links the hold to the purchase and
-- writes hold.released (reason committed). The caller lowers the balance, as for loyalty_take_points.
create or replace function loyalty_take_hold_points(p_merchant uuid, p_customer uuid, p_hold uuid,
  p_purchase uuid) returns bigint
language plpgsql as $fn$
declare
  v_hold record;
  v_entry bigint;
  r record;
begin
  update holds set purchase_id = p_purchase where id = p_hold returning * into v_hold;
  v_entry := loyalty_entry(p_merchant, p_customer, 'redeem', 'available', -v_hold.points, p_purchase, null, null,
                           null);
  for r in
    select lot_id, -points as points from lot_moves where entry_id = v_hold.entry_id and kind = 'hold' order by id
  loop
    perform loyalty_move(v_entry, r.lot_id, -r.points, 'redeem', p_purchase);
  end loop;
  insert into outbox_events (merchant_id, type, payload)
  values (p_merchant, 'hold.released', jsonb_build_object(
    'holdId', p_hold, 'customerId', p_customer, 'points', v_hold.points, 'reason', 'committed',
    'purchaseId', p_purchase, 'balance', loyalty_balance_json(p_customer), 'occurredAt', loyalty_iso(now())));
  return v_entry;
end $fn$;
