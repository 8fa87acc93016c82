-- The balance in answers and events. Writes expire due lots and release due holds first, so the
-- stored row is current. PL/pgSQL, not SQL: its body is not checked against balances when the
-- migrations before the held column install it.
create or replace function loyalty_balance_json(p_customer uuid) returns jsonb
language plpgsql stable as $fn$
begin
  return (select jsonb_build_object('available', available, 'pending', pending, 'held', held)
          from balances where customer_id = p_customer);
end $fn$;
