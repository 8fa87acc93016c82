-- Grants a campaign's points to one customer outside a purchase (welcome, birthday, referral) for one
-- occasion, at most once, and returns the points granted (0: none). The campaign must be active and
-- within startsAt .. endsAt at now() (its weekly schedule is for purchases); limits as for purchases
-- (loyalty_grant_campaign). The occasion ('welcome', 'referee', 'referrer:<referee id>',
-- 'birthday:<year>') is a row of campaign_occasions: its primary key makes two joins, two workers or
-- a retry grant it once. An occasion that granted nothing (a limit reached) is not kept, so it may
-- grant later.
-- Lock order: the customer's balance row -> the campaign row (budget) -> campaign_grants and
-- campaign_occasions rows.
create or replace function loyalty_grant_bonus(p_merchant uuid, p_customer uuid, p_campaign uuid, p_points bigint,
  p_occasion text) returns bigint
language plpgsql as $fn$
declare
  v_points bigint;
begin
  if p_points is null or p_points <= 0 then return 0; end if;
  perform 1 from balances where customer_id = p_customer and merchant_id = p_merchant for update;
  if not found then
    raise exception 'customer_not_found' using detail = '{}';
  end if;
  perform 1 from campaigns
  where id = p_campaign and merchant_id = p_merchant and status = 'active'
    and (starts_at is null or starts_at <= now()) and (ends_at is null or ends_at > now());
  if not found then return 0; end if;
  insert into campaign_occasions (campaign_id, customer_id, occasion, points)
  values (p_campaign, p_customer, p_occasion, 0)
  on conflict do nothing;
  if not found then return 0; end if;

  v_points := loyalty_grant_campaign(p_merchant, p_customer, p_campaign, p_points, null, jsonb_build_object(
    'lifetimeDays', (select (rules->>'pointsLifetimeDays')::integer from merchants where id = p_merchant)));
  if v_points = 0 then
    delete from campaign_occasions
    where campaign_id = p_campaign and customer_id = p_customer and occasion = p_occasion;
    return 0;
  end if;
  update campaign_occasions set points = v_points
  where campaign_id = p_campaign and customer_id = p_customer and occasion = p_occasion;
  update balances set available = available + v_points, updated_at = now() where customer_id = p_customer;
  return v_points;
end $fn$;
