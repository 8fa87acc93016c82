-- Provenance: records that ledger entry p_entry moved p_points into (+) or out of (-) lot p_lot and
-- applies it to the lot's cached remaining, so remaining = the points the lot was created with plus
-- the sum of its moves, at all times.
-- p_purchase is the purchase the entry belongs to (a redeem's, or the purchase a revoke is for).
create or replace function loyalty_move(p_entry bigint, p_lot bigint, p_points bigint, p_kind text,
  p_purchase uuid) returns void
language plpgsql as $fn$
begin
  insert into lot_moves (entry_id, lot_id, kind, purchase_id, points)
  values (p_entry, p_lot, p_kind, p_purchase, p_points);
  update point_lots set remaining = remaining + p_points where id = p_lot;
end $fn$;
