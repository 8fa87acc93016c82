-- The expiry job: expires active lots whose expiry is at or before p_now, taking the p_limit
-- soonest due lots per call (point_lots_expiry_idx, in expiry order: a call reads the lots it
-- expires, not every active lot; in customer order the planner walked point_lots_fifo_idx from
-- its start in each call, 1.9 s per call at 10^6 customers) and every due lot of their customers.
-- Each customer's balance row is locked before its lots, and the lots are re-read under that lock,
-- so concurrent runs (or a concurrent write, which expires due lots itself) never expire the same
-- points twice.
create or replace function loyalty_expire_points(p_now timestamptz, p_limit integer) returns jsonb
language plpgsql as $fn$
declare
  c record;
  v_sum bigint;
  v_customers integer := 0;
  v_scanned integer := 0;
  v_points bigint := 0;
begin
  for c in
    select due.customer_id, due.merchant_id, count(*)::integer as lots
    from (
      select customer_id, merchant_id from point_lots
      where state = 'active' and remaining > 0 and expires_at is not null and expires_at <= p_now
      order by expires_at
      limit p_limit
    ) due
    group by due.customer_id, due.merchant_id
    order by due.customer_id -- the same lock order in every batch function: no deadlocks between them
  loop
    v_scanned := v_scanned + c.lots;
    perform 1 from balances where customer_id = c.customer_id for update;
    -- Deleted meanwhile (the balance row goes first): nothing of theirs is written.
    continue when not found;
    v_sum := loyalty_expire_customer(c.merchant_id, c.customer_id, p_now);
    if v_sum > 0 then
      v_customers := v_customers + 1;
      v_points := v_points + v_sum;
    end if;
  end loop;
  -- scanned = due lots looked at: the caller loops while a batch was full.
  return jsonb_build_object('customers', v_customers, 'points', v_points, 'scanned', v_scanned);
end $fn$;
