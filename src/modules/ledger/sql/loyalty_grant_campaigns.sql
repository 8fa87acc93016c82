-- Grants the campaign points of a purchase being committed (called by loyalty_commit_purchase once
-- the purchase row exists) and returns {points, breakdown}: the points granted and the purchase's
-- earn breakdown as applied.
-- p: the commit payload; earnBreakdown? ([{source: base|tier|campaign, campaignId, name, points}],
--    as the quote showed it), earnPoints (base + tier), pendingDays, lifetimeDays?
-- Without earnBreakdown (a caller older than campaigns) nothing is granted.
-- Each campaign's points are granted by loyalty_grant_campaign (a lot of their own, source 'earn',
-- so refunds revoke them like the base earn), which enforces the limits inside the commit's
-- transaction, so parallel commits never overspend a budget.
-- Lock order: balance row (caller) -> purchase row -> lots -> code row (caller) -> campaign rows in
-- id order -> campaign_grants rows. The caller adds the returned points to the balance and to the
-- purchase row, and stores the breakdown there.
create or replace function loyalty_grant_campaigns(p_merchant uuid, p_customer uuid, p_purchase uuid, p jsonb)
returns jsonb
language plpgsql as $fn$
declare
  v_breakdown jsonb := '[]';
  v_total bigint := 0;
  v_points bigint;
  v_item jsonb;
begin
  if jsonb_typeof(p->'earnBreakdown') is distinct from 'array' then
    return jsonb_build_object('points', 0, 'breakdown', jsonb_build_array(jsonb_build_object(
      'source', 'base', 'campaignId', null, 'name', 'Base', 'points', (p->>'earnPoints')::bigint)));
  end if;

  -- Budgets first, all at once in id order, so two commits granting the same campaigns queue
  -- instead of deadlocking.
  perform 1 from campaigns
  where merchant_id = p_merchant and limit_total_points is not null
    and id in (select (e->>'campaignId')::uuid from jsonb_array_elements(p->'earnBreakdown') e
               where e->>'source' = 'campaign')
  order by id for update;

  for v_item in select e from jsonb_array_elements(p->'earnBreakdown') e loop
    if v_item->>'source' <> 'campaign' then
      v_breakdown := v_breakdown || jsonb_build_array(v_item);
      continue;
    end if;
    v_points := loyalty_grant_campaign(p_merchant, p_customer, (v_item->>'campaignId')::uuid,
                                       (v_item->>'points')::bigint, p_purchase, p);
    continue when v_points <= 0;
    v_breakdown := v_breakdown || jsonb_build_array(v_item || jsonb_build_object('points', v_points));
    v_total := v_total + v_points;
  end loop;

  return jsonb_build_object('points', v_total, 'breakdown', v_breakdown);
end $fn$;
