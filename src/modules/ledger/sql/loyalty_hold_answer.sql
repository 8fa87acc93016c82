-- The answer about a hold (create, cancel) and the balance of its customer now.
create or replace function loyalty_hold_answer(p_hold uuid) returns jsonb
language plpgsql stable as $fn$
declare
  v_hold record;
begin
  select * into v_hold from holds where id = p_hold;
  return jsonb_build_object(
    'hold', jsonb_build_object(
      'id', v_hold.id, 'customerId', v_hold.customer_id, 'points', v_hold.points, 'status', v_hold.status,
      'expiresAt', loyalty_iso(v_hold.expires_at), 'createdAt', loyalty_iso(v_hold.created_at),
      'releasedAt', loyalty_iso(v_hold.released_at), 'purchaseId', v_hold.purchase_id),
    'balance', loyalty_balance_json(v_hold.customer_id));
end $fn$;
