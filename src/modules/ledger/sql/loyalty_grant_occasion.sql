-- Grants the merchant's campaigns of one kind (welcome, birthday, referral) to one customer for one
-- occasion, stacked as purchase campaigns are: higher priority first (ties by id), and an exclusive
-- campaign that granted stops the ones after it. Returns the points granted.
-- p_points_field: the effect's field with the points ('points', 'refereePoints', 'referrerPoints').
-- p_campaigns: only these campaigns (the birthday job's due ones), or null for all of the kind.
-- Each campaign goes through loyalty_grant_bonus (active, in its window, once per occasion, limits).
-- Lock order: the customer's balance row -> campaign rows in (priority desc, id) order, the same in
-- every transaction granting campaigns of this kind.
create or replace function loyalty_grant_occasion(p_merchant uuid, p_customer uuid, p_kind text, p_occasion text,
  p_points_field text, p_campaigns uuid[]) returns bigint
language plpgsql as $fn$
declare
  v_total bigint := 0;
  v_points bigint;
  v_campaign record;
begin
  for v_campaign in
    select id, exclusive, (effect->>p_points_field)::bigint as points from campaigns
    where merchant_id = p_merchant and kind = p_kind and status = 'active'
      and (p_campaigns is null or id = any(p_campaigns))
    order by priority desc, id
  loop
    v_points := loyalty_grant_bonus(p_merchant, p_customer, v_campaign.id, v_campaign.points, p_occasion);
    v_total := v_total + v_points;
    exit when v_points > 0 and v_campaign.exclusive;
  end loop;
  return v_total;
end $fn$;
