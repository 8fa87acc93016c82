-- Referral points after a referred customer's first purchase (called by loyalty_commit_purchase once
-- the purchase row exists, before the purchase's own campaign points): every active referral campaign
-- grants refereePoints to the customer (occasion 'referee') and referrerPoints to the customer who
-- referred them (occasion 'referrer:<referee id>'), each once, as bonus lots outside the purchase: a
-- refund of that purchase does not take them back. Returns the points granted to the customer
-- (the referee); the referrer's balance row is updated here.
-- Lock order: the referee's balance row (caller) -> the referrer's balance row -> referral campaign
-- rows (priority desc, id) -> the purchase's campaign rows (caller, id order). A referrer joined
-- before the customers they referred (referred_by names an existing customer), so balance rows are
-- always locked from the newer customer to the older one and two commits cannot wait on each other
-- in a circle; referral campaign rows are locked before any purchase campaign row in every commit.
create or replace function loyalty_grant_referral(p_merchant uuid, p_customer uuid, p_purchase uuid) returns bigint
language plpgsql as $fn$
declare
  v_referrer uuid;
  v_points bigint;
begin
  select referred_by into v_referrer from customers where id = p_customer and merchant_id = p_merchant;
  if v_referrer is null then return 0; end if;
  if exists (select 1 from purchases where customer_id = p_customer and id <> p_purchase) then return 0; end if;
  if not exists (select 1 from campaigns where merchant_id = p_merchant and kind = 'referral' and status = 'active') then
    return 0;
  end if;
  perform 1 from balances where customer_id = v_referrer and merchant_id = p_merchant for update;
  if not found then return 0; end if;
  v_points := loyalty_grant_occasion(p_merchant, p_customer, 'referral', 'referee', 'refereePoints', null);
  perform loyalty_grant_occasion(p_merchant, v_referrer, 'referral', 'referrer:' || p_customer, 'referrerPoints',
                                 null);
  return v_points;
end $fn$;
