-- Takes p_points from the customer's active lots, soonest expiry first (never-expiring last, then
-- oldest), as one ledger entry of kind p_kind with a move per lot it took from. The caller holds the
-- balance row lock, has expired the due lots (loyalty_expire_customer), checked that the balance
-- covers p_points, so the lots hold enough, and lowers the balance (with its other changes, in one
-- update). Returns the entry's id.
create or replace function loyalty_take_points(p_merchant uuid, p_customer uuid, p_points bigint, p_kind text,
  p_purchase uuid, p_refund uuid, p_reason text) returns bigint
language plpgsql as $fn$
declare
  v_entry bigint;
  v_left bigint := p_points;
  v_take bigint;
  r record;
  -- Fetched one lot at a time: a FOR loop over the query would fetch, and so lock, ten lots ahead
  -- of need (a customer with a long history has many), each lock a WAL record of its own.
  v_lots cursor for
    select id, remaining from point_lots
    where customer_id = p_customer and state = 'active' and remaining > 0
    order by expires_at nulls last, id
    for update;
begin
  if p_points <= 0 then return null; end if;
  v_entry := loyalty_entry(p_merchant, p_customer, p_kind, 'available', -p_points, p_purchase, p_refund, null,
                           p_reason);
  open v_lots;
  loop
    fetch v_lots into r;
    exit when not found;
    v_take := least(r.remaining, v_left);
    perform loyalty_move(v_entry, r.id, -v_take, p_kind, p_purchase);
    v_left := v_left - v_take;
    exit when v_left = 0;
  end loop;
  close v_lots;
  if v_left > 0 then
    raise exception 'ledger invariant broken: lots of % hold less than its available balance', p_customer;
  end if;
  return v_entry;
end $fn$;
