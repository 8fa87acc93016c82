-- Appends one ledger entry and returns its id. A lot-bound change also needs its loyalty_move.
create or replace function loyalty_entry(p_merchant uuid, p_customer uuid, p_kind text, p_bucket text,
  p_points bigint, p_purchase uuid, p_refund uuid, p_lot bigint, p_reason text) returns bigint
language sql as $fn$
  insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, purchase_id, refund_id, lot_id, reason)
  values (p_merchant, p_customer, p_kind, p_bucket, p_points, p_purchase, p_refund, p_lot, p_reason)
  returning id
$fn$;
