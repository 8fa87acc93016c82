-- Releases the customer's active holds whose expiry is at or before p_now (status 'expired').
-- Every write that changes the balance calls it right after locking the balance row (and expiring
-- due lots), so a hold past its expiry never keeps points from being spent, whether or not the
-- holds:release job ran. The caller holds the balance row lock and has expired the customer's
-- due lots (loyalty_land_points marks a lot past its expiry expired). Returns the points that
-- became available.
create or replace function loyalty_release_holds(p_merchant uuid, p_customer uuid, p_now timestamptz)
  returns bigint
language plpgsql as $fn$
declare
  v_sum bigint := 0;
  r record;
begin
  for r in
    select id from holds
    -- The customer's own rows past their expiry: see loyalty_expire_customer.
    where customer_id = p_customer and merchant_id = p_merchant and status = 'active'
      and (customer_id, expires_at) <= (p_customer, p_now)
    order by id
  loop
    v_sum := v_sum + loyalty_release_hold(r.id, 'expired');
  end loop;
  return v_sum;
end $fn$;
