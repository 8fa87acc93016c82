-- Appends one ledger entry and returns its id. A lot-bound change also needs its loyalty_move.
-- PL/pgSQL rather than SQL: its plan is cached per session, a SQL function's is made on every call.
create or replace function loyalty_entry(p_merchant uuid, p_customer uuid, p_kind text, p_bucket text,
  p_points bigint, p_purchase uuid, p_refund uuid, p_lot bigint, p_reason text) returns bigint
language plpgsql as $fn$
declare
  v_id bigint;
begin
  insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, purchase_id, refund_id, lot_id, reason)
  values (p_merchant, p_customer, p_kind, p_bucket, p_points, p_purchase, p_refund, p_lot, p_reason)
  returning id into v_id;
  return v_id;
end $fn$;
