-- The balance in answers and events. Writes expire due lots first, so the stored row is current.
create or replace function loyalty_balance_json(p_customer uuid) returns jsonb
language sql stable as $fn$
  select jsonb_build_object('available', available, 'pending', pending) from balances where customer_id = p_customer
$fn$;
