-- The holds:release job: releases active holds whose expiry is at or before p_now, taking the
-- p_limit soonest due holds per call (holds_due_idx, in expiry order, as the expiry job takes lots:
-- picking customers read every due hold of all merchants in each call) and every due hold of their
-- customers. Each customer's balance row is locked before its holds, which are re-read under that
-- lock (loyalty_release_holds), so concurrent runs, or a write that released them first, never
-- release a hold twice.
create or replace function loyalty_release_expired_holds(p_now timestamptz, p_limit integer) returns jsonb
language plpgsql as $fn$
declare
  c record;
  v_released integer;
  v_customers integer := 0;
  v_scanned integer := 0;
  v_points bigint := 0;
  v_sum bigint;
begin
  for c in
    select due.customer_id, due.merchant_id, count(*)::integer as holds
    from (
      select customer_id, merchant_id from holds
      where status = 'active' and expires_at <= p_now
      order by expires_at
      limit p_limit
    ) due
    group by due.customer_id, due.merchant_id
    order by due.customer_id -- the lock order of every batch function
  loop
    v_scanned := v_scanned + c.holds;
    perform 1 from balances where customer_id = c.customer_id for update;
    -- Deleted meanwhile (the balance row goes first): nothing of theirs is written.
    continue when not found;
    -- Due lots expire first, as every write does before it releases: a hold's points landing in
    -- a lot past its expiry expire with it (loyalty_land_points), never the lot's other points.
    perform loyalty_expire_customer(c.merchant_id, c.customer_id, now());
    select count(*), coalesce(sum(points), 0) into v_released, v_sum from holds
    where customer_id = c.customer_id and status = 'active'
      and (customer_id, expires_at) <= (c.customer_id, p_now);
    perform loyalty_release_holds(c.merchant_id, c.customer_id, p_now);
    if v_released > 0 then
      v_customers := v_customers + 1;
      v_points := v_points + v_sum;
    end if;
  end loop;
  -- scanned = due holds looked at: the caller loops while a batch was full.
  return jsonb_build_object('customers', v_customers, 'points', v_points, 'scanned', v_scanned);
end $fn$;
