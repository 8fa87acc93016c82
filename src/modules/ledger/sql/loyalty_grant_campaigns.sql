-- Grants the campaign points of a purchase being committed (called by loyalty_commit_purchase once
-- the purchase row exists) and returns {points, breakdown}: the points granted and the purchase's
-- earn breakdown as applied.
-- p: the commit payload; earnBreakdown? ([{source: base|tier|campaign, campaignId, name, points}],
--    as the quote showed it), earnPoints (base + tier), pendingDays, lifetimeDays?
-- Without earnBreakdown (a caller older than campaigns) nothing is granted.
-- Each campaign's points are a lot of their own (source 'earn', with campaign_id, the campaign's
-- bonusLifetimeDays or else the programme's lifetime), so refunds revoke them like the base earn.
-- Limits are enforced here, inside the commit's transaction: a campaign no longer active grants
-- nothing; limits.perCustomer counts grants (campaign_grants, serialised by the customer's balance
-- row); limits.totalPoints caps the grant at what is left of the budget (campaigns.granted_points,
-- on the campaign row locked here), so parallel commits never overspend it.
-- Lock order: balance row (caller) -> purchase row -> lots -> code row (caller) -> campaign rows in
-- id order -> campaign_grants rows. The caller adds the returned points to the balance.
create or replace function loyalty_grant_campaigns(p_merchant uuid, p_customer uuid, p_purchase uuid, p jsonb)
returns jsonb
language plpgsql as $fn$
declare
  v_pending_days integer := coalesce((p->>'pendingDays')::integer, 0);
  v_available_at timestamptz := now() + make_interval(days => coalesce((p->>'pendingDays')::integer, 0));
  v_breakdown jsonb := '[]';
  v_total bigint := 0;
  v_points bigint;
  v_grants integer;
  v_lifetime integer;
  v_expires timestamptz;
  v_lot bigint;
  v_item jsonb;
  v_campaign record;
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
    select * into v_campaign from campaigns
    where id = (v_item->>'campaignId')::uuid and merchant_id = p_merchant and status = 'active';
    continue when not found;
    v_points := (v_item->>'points')::bigint;
    if v_campaign.limit_per_customer is not null then
      select grants into v_grants from campaign_grants
      where campaign_id = v_campaign.id and customer_id = p_customer;
      continue when coalesce(v_grants, 0) >= v_campaign.limit_per_customer;
    end if;
    if v_campaign.limit_total_points is not null then
      v_points := least(v_points, v_campaign.limit_total_points - v_campaign.granted_points);
    end if;
    continue when v_points <= 0;

    v_lifetime := coalesce(v_campaign.bonus_lifetime_days, (p->>'lifetimeDays')::integer);
    v_expires := case when v_lifetime is null then null else v_available_at + make_interval(days => v_lifetime) end;
    insert into point_lots (merchant_id, customer_id, source, purchase_id, campaign_id, points, remaining, state,
                            available_at, expires_at)
    values (p_merchant, p_customer, 'earn', p_purchase, v_campaign.id, v_points, v_points,
            case when v_pending_days > 0 then 'pending' else 'active' end, v_available_at, v_expires)
    returning id into v_lot;
    perform loyalty_entry(p_merchant, p_customer, 'earn', case when v_pending_days > 0 then 'pending' else 'available' end,
                          v_points, p_purchase, null, v_lot, null);
    if v_campaign.limit_total_points is not null then
      update campaigns set granted_points = granted_points + v_points where id = v_campaign.id;
    end if;
    insert into campaign_grants (campaign_id, customer_id, grants, points)
    values (v_campaign.id, p_customer, 1, v_points)
    on conflict (campaign_id, customer_id)
    do update set grants = campaign_grants.grants + 1, points = campaign_grants.points + excluded.points;
    insert into outbox_events (merchant_id, type, payload)
    values (p_merchant, 'bonus.granted', jsonb_build_object(
      'customerId', p_customer, 'campaignId', v_campaign.id, 'campaignName', v_campaign.name,
      'kind', v_campaign.kind, 'points', v_points, 'purchaseId', p_purchase, 'orderId', p->>'orderId',
      'pending', v_pending_days > 0, 'expiresAt', loyalty_iso(v_expires), 'occurredAt', loyalty_iso(now())));

    v_breakdown := v_breakdown || jsonb_build_array(v_item || jsonb_build_object('points', v_points));
    v_total := v_total + v_points;
  end loop;

  if v_total > 0 then
    update purchases set earned_points = earned_points + v_total where id = p_purchase;
  end if;
  update purchases set earn_breakdown = v_breakdown where id = p_purchase;
  return jsonb_build_object('points', v_total, 'breakdown', v_breakdown);
end $fn$;
