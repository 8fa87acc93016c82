-- Expires what is left of the customer's active lots whose expiry is at or before p_now: an expire
-- entry and move per lot, the balance, one points.expired event. Every write calls it right after
-- locking the balance row, so points past their expiry are gone at once whether or not the expiry
-- job ran (reads subtract them too: the customer_balances view); the job calls it for customers
-- nobody wrote to. The caller holds the balance row lock. Returns the points expired.
-- A customer's rows past their expiry are asked for as (customer_id, expires_at) <= (customer,
-- time), here and wherever a customer's due lots or holds are read: the range of that customer's
-- rows in the index on (customer_id, expires_at). Written expires_at <= time, the plan kept by a
-- connection (made when few rows were due) reads the index of every due lot of all merchants, and
-- keeps it when time makes many due at once: a campaign granted to everyone expires at one instant,
-- and each write, resolve and expiry of one customer then reads them all until the job has taken
-- them (docs/performance.md, "Due rows read by customer").
create or replace function loyalty_expire_customer(p_merchant uuid, p_customer uuid, p_now timestamptz)
  returns bigint
language plpgsql as $fn$
declare
  v_lot record;
  v_entry bigint;
  v_sum bigint := 0;
begin
  for v_lot in
    select id, remaining from point_lots
    where customer_id = p_customer and state = 'active' and remaining > 0
      and (customer_id, expires_at) <= (p_customer, p_now)
    order by id
    for update
  loop
    v_entry := loyalty_entry(p_merchant, p_customer, 'expire', 'available', -v_lot.remaining, null, null,
                             v_lot.id, null);
    perform loyalty_move(v_entry, v_lot.id, -v_lot.remaining, 'expire', null);
    update point_lots set state = 'expired' where id = v_lot.id;
    v_sum := v_sum + v_lot.remaining;
  end loop;
  if v_sum > 0 then
    update balances set available = available - v_sum, updated_at = now() where customer_id = p_customer;
    insert into outbox_events (merchant_id, type, payload)
    values (p_merchant, 'points.expired', jsonb_build_object('customerId', p_customer,
            'points', v_sum, 'balance', loyalty_balance_json(p_customer), 'occurredAt', p_now));
  end if;
  return v_sum;
end $fn$;
