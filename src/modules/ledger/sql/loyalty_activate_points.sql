-- Makes pending lots available once their pending period is over (available_at <= p_now). The
-- lot's points stay where they are (no move): only the bucket they count in changes.
-- Each call takes the p_limit soonest due pending lots (point_lots_activation_idx, in order of
-- available_at), as the expiry job does: no index has a customer's pending lots, so picking
-- customers and reading each one's due lots walked every due pending lot of all merchants for each
-- customer (10 ms a customer with 100,000 due; docs/performance.md, "Due rows read by customer").
-- Each customer's balance row is locked before its lots, in customer id order, and the lots are
-- read again under that lock, so concurrent runs never activate a lot twice.
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
    select due.customer_id, due.merchant_id, array_agg(due.id) as lots
    from (
      select id, customer_id, merchant_id from point_lots
      where state = 'pending' and available_at <= p_now
      order by available_at
      limit p_limit
    ) due
    group by due.customer_id, due.merchant_id
    order by due.customer_id -- the same lock order in every batch function: no deadlocks between them
  loop
    v_scanned := v_scanned + cardinality(c.lots);
    perform 1 from balances where customer_id = c.customer_id for update;
    -- Deleted meanwhile (the balance row goes first): nothing of theirs is written.
    continue when not found;
    v_sum := 0;
    -- The batch's lots of this customer again, under the lock, by their ids alone (only the primary
    -- key can answer that, whatever the statistics): one a concurrent run activated is skipped. A
    -- lot's available_at never changes.
    for v_lot in
      select id, remaining, state from point_lots
      where id = any(c.lots)
      order by id
      for update
    loop
      continue when v_lot.state <> 'pending';
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
  -- scanned = due lots looked at: the caller loops while a batch was full.
  return jsonb_build_object('customers', v_customers, 'points', v_points, 'scanned', v_scanned);
end $fn$;
