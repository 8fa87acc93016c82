-- Takes what refunds of the customer's purchases left unrecovered from the available balance,
-- oldest purchase first, never below zero. Every refund ends with it, since a refund may bring
-- points back; so a shortfall is settled against points that come back later, and the order in
-- which purchases are refunded does not change where the balance ends. Caller holds the balance lock.
create or replace function loyalty_settle_debts(p_merchant uuid, p_customer uuid) returns void
language plpgsql as $fn$
declare
  v_available bigint;
  v_take bigint;
  r record;
begin
  for r in
    select p.id, p.unrecovered_points,
           (select f.id from refunds f where f.purchase_id = p.id order by f.created_at desc, f.id desc limit 1)
             as refund_id
    from purchases p
    where p.customer_id = p_customer and p.unrecovered_points > 0
    order by p.created_at, p.id
    for update of p
  loop
    select available into v_available from balances where customer_id = p_customer;
    exit when v_available = 0;
    v_take := least(v_available, r.unrecovered_points);
    perform loyalty_take_points(p_merchant, p_customer, v_take, 'refund_revoke', r.id, r.refund_id, null);
    update balances set available = available - v_take where customer_id = p_customer;
    update purchases set unrecovered_points = unrecovered_points - v_take, revoked_points = revoked_points + v_take
    where id = r.id;
  end loop;
end $fn$;
