-- A merchant's customer named by id, phone or live one-time code (exactly one given), with the
-- balance as tills see it (customer_balances) and, with p_tier_days, the spend over that many days
-- (purchases less refunds) that decides the tier; no row when there is none. The hot read of every
-- resolve, quote and commit: inside a function its plans are prepared once per connection instead
-- of planned for every request. Every lookup here is by index; enable_seqscan = off keeps a plan
-- made while a table was small from scanning it once it grew (see loyalty_idempotency_find), and
-- plan_cache_mode = force_generic_plan keeps one plan per connection: left to choose, PostgreSQL
-- plans the statement again on every call once regulars (customers with many purchases) are among
-- the statistics' most common values, 2.7 M instructions a read instead of 0.46 M (docs/performance.md,
-- "Plans for regulars"); the lookups are by key, so the generic plan is right for everyone. The
-- columns are the base types of the domains the balances take (migration 0025): RETURN QUERY wants
-- them exactly. enable_bitmapscan = off: the view reads a customer's lots past their expiry as a range
-- of (customer_id, expires_at) (see loyalty_expire_customer), whose size PostgreSQL cannot estimate;
-- guessing a dozen rows, it set up a bitmap scan for the one index probe it takes, 11% of a resolve
-- (npm run bench:sql).
create or replace function loyalty_customer_state(p_merchant uuid, p_customer uuid, p_phone text, p_code text,
  p_tier_days integer)
returns table (id uuid, name text, phone text, available bigint, pending bigint, held bigint, spend bigint)
language plpgsql stable set enable_seqscan = off set enable_bitmapscan = off set plan_cache_mode = force_generic_plan as $fn$
declare
  v_customer uuid := p_customer;
begin
  if v_customer is null and p_phone is not null then
    select c.id into v_customer from customers c where c.merchant_id = p_merchant and c.phone = p_phone;
  elsif v_customer is null and p_code is not null then
    select k.customer_id into v_customer from customer_codes k
    where k.merchant_id = p_merchant and k.code = p_code and k.consumed_at is null and k.expires_at > now();
  end if;
  if v_customer is null then return; end if;
  return query
  select c.id, c.name, c.phone, b.available, b.pending::bigint, b.held,
    case when p_tier_days is null then 0::bigint
         else (select coalesce(sum(p.total - p.refunded_amount), 0)::bigint from purchases p
               where p.customer_id = c.id and p.created_at > now() - make_interval(days => p_tier_days)) end
  from customers c join customer_balances b on b.customer_id = c.id
  where c.id = v_customer and c.merchant_id = p_merchant;
end $fn$;
