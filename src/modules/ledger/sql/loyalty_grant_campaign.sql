-- Grants one campaign's points to one customer and returns the points granted (0: none). Shared by
-- the purchase grants (loyalty_grant_campaigns) and the grants outside a purchase (loyalty_grant_bonus).
-- p_purchase: the purchase earning them, or null outside a purchase.
-- p: orderId?, pendingDays? (0 outside a purchase), lifetimeDays? (the programme's points lifetime).
-- A campaign no longer active grants nothing; limits.perCustomer counts grants (campaign_grants,
-- serialised by the customer's balance row, which the caller holds); limits.totalPoints caps the
-- grant at what is left of the budget (campaigns.granted_points, on the campaign row locked here:
-- callers granting several campaigns lock them first, in a fixed order).
-- The points are a lot of their own with the campaign's bonusLifetimeDays (else the programme's
-- lifetime): source 'earn' with the purchase (a refund revokes it like the base earn), or 'bonus'
-- outside one; with its ledger entry, the campaign_grants count and a bonus.granted event. The caller
-- adds the points to the balance row.
create or replace function loyalty_grant_campaign(p_merchant uuid, p_customer uuid, p_campaign uuid,
  p_points bigint, p_purchase uuid, p jsonb) returns bigint
language plpgsql as $fn$
declare
  v_pending_days integer := coalesce((p->>'pendingDays')::integer, 0);
  v_available_at timestamptz := now() + make_interval(days => coalesce((p->>'pendingDays')::integer, 0));
  v_kind text := case when p_purchase is null then 'bonus' else 'earn' end;
  v_points bigint := p_points;
  v_campaign record;
  v_grants integer;
  v_lifetime integer;
  v_expires timestamptz;
  v_lot bigint;
begin
  select * into v_campaign from campaigns where id = p_campaign and merchant_id = p_merchant and status = 'active';
  if not found then return 0; end if;
  if v_campaign.limit_total_points is not null then
    select * into v_campaign from campaigns where id = p_campaign and status = 'active' for update;
    if not found then return 0; end if;
  end if;
  if v_campaign.limit_per_customer is not null then
    select grants into v_grants from campaign_grants where campaign_id = p_campaign and customer_id = p_customer;
    if coalesce(v_grants, 0) >= v_campaign.limit_per_customer then return 0; end if;
  end if;
  if v_campaign.limit_total_points is not null then
    v_points := least(v_points, v_campaign.limit_total_points - v_campaign.granted_points);
  end if;
  if v_points <= 0 then return 0; end if;

  v_lifetime := coalesce(v_campaign.bonus_lifetime_days, (p->>'lifetimeDays')::integer);
  v_expires := case when v_lifetime is null then null else v_available_at + make_interval(days => v_lifetime) end;
  insert into point_lots (merchant_id, customer_id, source, purchase_id, campaign_id, points, remaining, state,
                          available_at, expires_at)
  values (p_merchant, p_customer, v_kind, p_purchase, p_campaign, v_points, v_points,
          case when v_pending_days > 0 then 'pending' else 'active' end, v_available_at, v_expires)
  returning id into v_lot;
  perform loyalty_entry(p_merchant, p_customer, v_kind, case when v_pending_days > 0 then 'pending' else 'available' end,
                        v_points, p_purchase, null, v_lot, null);
  if v_campaign.limit_total_points is not null then
    update campaigns set granted_points = granted_points + v_points where id = p_campaign;
  end if;
  insert into campaign_grants (campaign_id, customer_id, grants, points)
  values (p_campaign, p_customer, 1, v_points)
  on conflict (campaign_id, customer_id)
  do update set grants = campaign_grants.grants + 1, points = campaign_grants.points + excluded.points;
  insert into outbox_events (merchant_id, type, payload)
  values (p_merchant, 'bonus.granted', jsonb_build_object(
    'customerId', p_customer, 'campaignId', p_campaign, 'campaignName', v_campaign.name,
    'kind', v_campaign.kind, 'points', v_points, 'purchaseId', p_purchase, 'orderId', p->>'orderId',
    'pending', v_pending_days > 0, 'expiresAt', loyalty_iso(v_expires), 'occurredAt', loyalty_iso(now())));
  return v_points;
end $fn$;
