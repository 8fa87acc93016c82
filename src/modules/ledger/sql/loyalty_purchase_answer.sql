-- The answer to a purchase's commit, built from its row: the commit returns it, and a request that
-- repeats the commit's Idempotency-Key replays it (the balance is the one right after the commit,
-- kept on the row). PL/pgSQL, not SQL: a SQL function's body is checked against the table when it
-- is created, before the migration that adds the balance columns has run.
create or replace function loyalty_purchase_answer(p purchases) returns jsonb
language plpgsql stable as $fn$
begin
  return jsonb_build_object(
    'purchase', jsonb_build_object(
      'id', p.id, 'orderId', p.order_id, 'customerId', p.customer_id, 'status', 'committed',
      'total', p.total, 'discount', p.discount, 'payable', p.total - p.discount,
      'earnedPoints', p.earned_points, 'redeemedPoints', p.redeemed_points,
      'createdAt', loyalty_iso(p.created_at),
      -- Purchases committed before campaigns have no breakdown: all of their earn was the base.
      'earnBreakdown', coalesce(p.earn_breakdown, jsonb_build_array(jsonb_build_object(
        'source', 'base', 'campaignId', null, 'name', 'Base', 'points', p.earned_points)))),
    -- Purchases committed before holds have no held figure: nothing could be held then.
    'balance', jsonb_build_object('available', p.balance_available, 'pending', p.balance_pending,
                                  'held', coalesce(p.balance_held, 0)));
end $fn$;
