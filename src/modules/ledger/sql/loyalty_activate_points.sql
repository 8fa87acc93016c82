-- Makes pending lots available once their pending period is over (available_at <= p_now). The
-- lot's points stay where they are (no move): only the bucket they count in changes.
create or replace function loyalty_activate_points(p_now timestamptz, p_limit integer) returns jsonb
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
    -- Deleted meanwhile (the balance row goes first): nothing of theirs is written.
    continue when not found;
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
