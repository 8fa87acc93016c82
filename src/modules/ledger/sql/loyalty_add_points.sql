-- Adds a new active lot with its ledger entry and the balance change (a positive
-- adjustment; or the redeemed points of a purchase committed before lots recorded their moves,
-- which have no source lot to go back to). Caller holds the balance lock.
create or replace function loyalty_add_points(p_merchant uuid, p_customer uuid, p_points bigint, p_kind text,
  p_source text, p_lifetime_days integer, p_purchase uuid, p_refund uuid, p_reason text) returns void
language plpgsql as $fn$
declare
  v_lot bigint;
begin
  if p_points <= 0 then return; end if;
  insert into point_lots (merchant_id, customer_id, source, purchase_id, refund_id, points, remaining,
                          state, available_at, expires_at)
  values (p_merchant, p_customer, p_source, p_purchase, p_refund, p_points, p_points, 'active', now(),
          case when p_lifetime_days is null then null else now() + make_interval(days => p_lifetime_days) end)
  returning id into v_lot;
  -- The lot starts with its points; the entry names it.
  perform loyalty_entry(p_merchant, p_customer, p_kind, 'available', p_points, p_purchase, p_refund, v_lot,
                        p_reason);
  update balances set available = available + p_points, updated_at = now() where customer_id = p_customer;
end $fn$;
