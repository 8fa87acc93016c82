-- Group commit's set-based part: commits the batch's plain purchases with one statement per table
-- instead of one per purchase, and returns their answers ({"i": index, "result": ...}). Called by
-- loyalty_commit_purchases, which holds every balance row of the batch (locked in customer id order)
-- and commits the items this leaves (and all of them if this raises) one by one.
-- A plain purchase is what loyalty_commit_purchase would commit with nothing but its base writes
-- and its campaign points: the first item of its customer in the batch; an earn breakdown; no lot or
-- hold of the customer past its expiry; not a referred customer's first purchase; its
-- Idempotency-Key (if any) free and unused; points to redeem (if any) covered by the balance, or by
-- its hold (this merchant's and customer's, active, not past its expiry, its points the ones to
-- redeem). It writes what that function writes for it, row for row: the balance, the purchase (with
-- the balance of its answer and the earn breakdown as applied), the one-time code (when given), the
-- redeem entry with a move per lot it takes from (soonest expiry first, as loyalty_take_points), the
-- earned lot and its entry, the outbox event; for a hold (loyalty_use_hold, loyalty_take_hold_points)
-- its two release entries, a release and a redeem move per lot of its reservation (they cancel out
-- on the lot's remaining, so the lot is not updated), the hold committed and linked to the purchase,
-- and hold.released; per campaign line granted (loyalty_grant_campaign's checks: the
-- campaign active, its limits.perCustomer), the campaign's lot, its entry, the budget counter, the
-- campaign_grants count and the bonus.granted event. Within one batch the hold.released and
-- bonus.granted events follow the purchase.committed ones, and a hold's release entries its
-- purchase's entries (one by one they come just before their purchase's): the writes a batch without
-- holds or campaign lines never needs are statements of their own, not set up for every batch.
-- An item whose hold does not fit is left to be committed alone, where it fails with its own error.
-- Whatever does not fit (a customer or code not found, an orderId or key taken, a check failing,
-- points to redeem spread over more lots than are read here, a campaign budget that does not cover
-- every campaign line of the batch in full, one campaign twice in a breakdown) raises, so the caller
-- rolls this back and commits every item alone, where each fails with its own error: the same
-- answers as one by one, and no partial batch.
-- The lots a redeem takes from are not locked ahead (loyalty_take_points locks each one it reads):
-- every writer of a customer's lots holds that customer's balance row first, as the caller does
-- here, and the update takes the lock of each lot it changes. Campaigns with a budget are locked
-- after the balance rows, in id order, as loyalty_grant_campaigns does.
-- Why: setting up an insert's executor and its VALUES list is a quarter of a lone commit's
-- PostgreSQL CPU; here it is paid once per batch (docs/performance.md, "Set-based group commit").
-- One generic plan per connection (planning this statement costs more than running it), and every
-- row read by index: see loyalty_idempotency_find for a plan made while a table was small.
create or replace function loyalty_commit_plain_purchases(p_items jsonb) returns jsonb[]
language plpgsql set plan_cache_mode = force_generic_plan set enable_seqscan = off as $fn$
declare
  v_plain integer;
  v_committed integer;
  -- The one-time codes of the plain purchases committed, and their merchants.
  v_codes text[];
  v_code_merchants uuid[];
  v_consumed integer;
  v_answers jsonb[];
  -- The redeem entries written: their ids, customers, purchases, points and holds (null: no hold).
  v_entries bigint[];
  v_holds uuid[];
  -- How many of those redeem a hold.
  v_held integer;
  v_customers uuid[];
  v_purchases uuid[];
  v_points bigint[];
  v_covered integer;
  -- Campaign points, when an item has a campaign line: per item (index + 1) the points granted and
  -- the earn breakdown as applied; per line granted its item's index, campaign and points; the
  -- plain purchases committed by index.
  v_bonus bigint[];
  v_breakdowns jsonb[];
  v_line_items integer[];
  v_line_campaigns uuid[];
  v_line_points bigint[];
  v_short integer;
  v_items integer[];
  v_ids uuid[];
begin
  if p_items @> '[{"earnBreakdown": [{"source": "campaign"}]}]' then
    perform 1 from campaigns
    where limit_total_points is not null
      and id = any(array(select (l->>'campaignId')::uuid
                         from jsonb_array_elements(p_items) e, jsonb_array_elements(e->'earnBreakdown') l
                         where l->>'source' = 'campaign'))
    order by id for update;
    -- What each campaign line of a customer's first item grants (loyalty_grant_campaign's checks),
    -- whether or not the item turns out plain; a budget must cover every line of the batch in full,
    -- so the points do not depend on the order the items are committed in.
    with items as (
      select e.value as p, (e.ordinality - 1)::integer as i, (e.value->>'merchantId')::uuid as merchant,
             (e.value->>'customerId')::uuid as customer,
             row_number() over (partition by e.value->>'customerId' order by e.ordinality) as nth
      from jsonb_array_elements(p_items) with ordinality e
    ),
    line as materialized (
      select x.i, l.ordinality as n, l.value as item, c.id as campaign, (l.value->>'points')::bigint as wanted,
             case when l.value->>'source' <> 'campaign' then null
                  when c.id is null or (l.value->>'points')::bigint <= 0 then 0
                  when c.limit_per_customer is not null
                       and coalesce((select g.grants from campaign_grants g
                                     where g.campaign_id = c.id and g.customer_id = x.customer), 0)
                           >= c.limit_per_customer then 0
                  else (l.value->>'points')::bigint end as points
      from items x
      cross join lateral jsonb_array_elements(x.p->'earnBreakdown') with ordinality l
      left join campaigns c on l.value->>'source' = 'campaign' and c.id = (l.value->>'campaignId')::uuid
                           and c.merchant_id = x.merchant and c.status = 'active'
      where x.nth = 1 and loyalty_plain_purchase(x.p)
    ),
    granted as (
      select x.i, coalesce(sum(l.points), 0) as bonus,
             coalesce(jsonb_agg(case when l.points is null then l.item
                                     else l.item || jsonb_build_object('points', l.points) end order by l.n)
                        filter (where l.points is null or l.points > 0), '[]') as breakdown
      from items x join line l on l.i = x.i
      group by x.i
    )
    select array(select g.bonus from items x left join granted g on g.i = x.i order by x.i),
           array(select g.breakdown from items x left join granted g on g.i = x.i order by x.i),
           array(select l.i from line l where l.points > 0 order by l.i, l.n),
           array(select l.campaign from line l where l.points > 0 order by l.i, l.n),
           array(select l.points from line l where l.points > 0 order by l.i, l.n),
           (select count(*) from campaigns c
            join (select (l->>'campaignId')::uuid as campaign, sum((l->>'points')::bigint) as wanted
                  from jsonb_array_elements(p_items) e, jsonb_array_elements(e->'earnBreakdown') l
                  where l->>'source' = 'campaign'
                  group by 1) w on w.campaign = c.id
            where c.limit_total_points - c.granted_points < w.wanted)
    into v_bonus, v_breakdowns, v_line_items, v_line_campaigns, v_line_points, v_short;
    if v_short > 0 then
      raise exception 'plain_purchases_not_committed';
    end if;
  end if;

  with items as (
    select e.value as p, (e.ordinality - 1)::integer as i, (e.value->>'merchantId')::uuid as merchant,
           (e.value->>'customerId')::uuid as customer, e.value->>'idempotencyKey' as key,
           row_number() over (partition by e.value->>'customerId' order by e.ordinality) as nth
    from jsonb_array_elements(p_items) with ordinality e
  ),
  plain as materialized (
    select x.p, x.i, x.merchant, x.customer, x.key, loyalty_uuidv7() as purchase,
           (x.p->>'earnPoints')::bigint as earn, (x.p->>'redeemPoints')::bigint as redeem,
           (x.p->>'holdId')::uuid as hold,
           -- The hold's points, back from held before the purchase redeems them.
           case when x.p->>'holdId' is null then 0 else (x.p->>'redeemPoints')::bigint end as unheld,
           coalesce(v_bonus[x.i + 1], 0) as bonus, coalesce(v_breakdowns[x.i + 1], x.p->'earnBreakdown') as breakdown,
           (x.p->>'pendingDays')::integer > 0 as is_pending,
           now() + make_interval(days => (x.p->>'pendingDays')::integer) as available_at,
           (x.p->>'lifetimeDays')::integer as lifetime
    from items x
    where x.nth = 1 and loyalty_plain_purchase(x.p)
      -- Each a lookup of this customer's rows by index (a subquery with a limit is not turned into a
      -- join). Past its expiry is asked as (customer, expiry) <= (customer, now()), the range of the
      -- customer's own rows in the index on (customer_id, expires_at): see loyalty_expire_customer.
      and (select 1 from point_lots l where l.customer_id = x.customer and l.state = 'active'
           and l.remaining > 0 and (l.customer_id, l.expires_at) <= (x.customer, now()) limit 1) is null
      and (select 1 from holds h where h.customer_id = x.customer and h.status = 'active'
           and (h.customer_id, h.expires_at) <= (x.customer, now()) limit 1) is null
      and ((select c.referred_by from customers c where c.id = x.customer) is null
           or (select 1 from purchases q where q.customer_id = x.customer limit 1) is not null)
      -- Too few points: committed alone, where it fails with insufficient_points. A hold's are its own.
      and ((x.p->>'redeemPoints')::bigint = 0 or x.p->>'holdId' is not null
           or (select b.available from balances b where b.customer_id = x.customer)
              >= (x.p->>'redeemPoints')::bigint)
      -- A hold that does not fit: committed alone, where it fails with its own error. Read by its id
      -- alone (the rest checked on the row), so no plan can look for it among the merchant's holds.
      and (x.p->>'holdId' is null
           or (select h.merchant_id = x.merchant and h.customer_id = x.customer and h.status = 'active'
                      and h.expires_at > now() and h.points = (x.p->>'redeemPoints')::bigint
               from holds h where h.id = (x.p->>'holdId')::uuid))
      -- A key free and unused: neither a purchase nor a refund holds it (loyalty_idempotency_find's
      -- two lookups by unique key, here as subqueries of this statement: calling that function per
      -- item cost a PL/pgSQL call with its settings and two statements set up for each purchase).
      and (x.key is null
           or (pg_try_advisory_xact_lock(hashtextextended(x.merchant::text || '/' || x.key, 0))
               and (select 1 from idempotency_keys k where k.merchant_id = x.merchant and k.key = x.key) is null
               and (select 1 from purchases q where q.merchant_id = x.merchant and q.idempotency_key = x.key) is null))
  ),
  balance as (
    update balances b
    set available = b.available + x.unheld - x.redeem + case when x.is_pending then 0 else x.earn + x.bonus end,
        pending = b.pending + case when x.is_pending then x.earn + x.bonus else 0 end,
        held = b.held - x.unheld,
        updated_at = now()
    from plain x
    where b.customer_id = x.customer and b.merchant_id = x.merchant
    returning b.customer_id, b.available, b.pending, b.held
  ),
  purchase as (
    insert into purchases (id, merchant_id, customer_id, order_id, outlet_id, device_id, manager_id, total,
                           eligible_amount, discount, earned_points, redeemed_points, earn_rate_bp, tier, receipt,
                           line_eligible, idempotency_key, request_hash, balance_available, balance_pending,
                           earn_breakdown, balance_held)
    select x.purchase, x.merchant, x.customer, x.p->>'orderId', (x.p->>'outletId')::uuid,
           (x.p->>'deviceId')::uuid, (x.p->>'managerId')::uuid, (x.p->>'total')::bigint,
           (x.p->>'eligibleAmount')::bigint, (x.p->>'discount')::bigint, x.earn + x.bonus, x.redeem,
           (x.p->>'earnRateBp')::integer, x.p->>'tier', x.p->'receipt',
           case when jsonb_typeof(x.p->'lineEligible') = 'array'
                then array(select jsonb_array_elements_text(x.p->'lineEligible')::boolean) end,
           x.key, case when x.key is not null then x.p->>'requestHash' end,
           b.available, b.pending, x.breakdown, b.held
    from plain x join balance b on b.customer_id = x.customer
    returning *
  ),
  lot as (
    insert into point_lots (merchant_id, customer_id, source, purchase_id, points, remaining, state,
                            available_at, expires_at)
    select x.merchant, x.customer, 'earn', x.purchase, x.earn, x.earn,
           case when x.is_pending then 'pending' else 'active' end, x.available_at,
           case when x.lifetime is null then null else x.available_at + make_interval(days => x.lifetime) end
    from plain x
    where x.earn > 0
    returning id, merchant_id, customer_id, purchase_id, points, state
  ),
  -- The redeem entries first (the union's first part), so a purchase's redeem entry comes before its
  -- earn entry, as one by one.
  entry as (
    insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, purchase_id, lot_id)
    select x.merchant, x.customer, 'redeem', 'available', -x.redeem, x.purchase, null
    from plain x
    where x.redeem > 0
    union all
    select l.merchant_id, l.customer_id, 'earn', case when l.state = 'pending' then 'pending' else 'available' end,
           l.points, l.purchase_id, l.id
    from lot l
    returning id, kind, purchase_id
  ),
  answer as (
    select x.i, x.p, x.merchant, x.customer, x.purchase, x.earn + x.bonus as earn, x.redeem, x.is_pending,
           x.hold, loyalty_purchase_answer(row(r.*)::purchases) as result
    from purchase r join plain x on x.purchase = r.id
  ),
  event as (
    insert into outbox_events (merchant_id, type, payload)
    select a.merchant, 'purchase.committed', jsonb_build_object(
      'purchaseId', a.purchase, 'orderId', a.p->>'orderId', 'customerId', a.customer,
      'total', (a.p->>'total')::bigint, 'earnedPoints', a.earn, 'redeemedPoints', a.redeem,
      'pendingPoints', case when a.is_pending then a.earn else 0 end,
      'balance', a.result->'balance', 'outletId', a.p->>'outletId',
      'occurredAt', a.result->'purchase'->'createdAt')
    from answer a
    order by a.customer
  )
  select (select count(*) from plain), count(*), coalesce(array_agg(jsonb_build_object('i', a.i, 'result', a.result)), '{}'),
         array_agg(e.id) filter (where e.id is not null), array_agg(a.customer) filter (where e.id is not null),
         array_agg(a.purchase) filter (where e.id is not null), array_agg(a.redeem) filter (where e.id is not null),
         array_agg(a.hold) filter (where e.id is not null), array_agg(a.i), array_agg(a.purchase),
         array_agg(a.merchant) filter (where a.p->>'code' is not null),
         array_agg(a.p->>'code') filter (where a.p->>'code' is not null)
  into v_plain, v_committed, v_answers, v_entries, v_customers, v_purchases, v_points, v_holds, v_items, v_ids,
       v_code_merchants, v_codes
  from answer a left join entry e on e.purchase_id = a.purchase and e.kind = 'redeem';
  -- A customer not found: the caller commits the items one by one, each with its own answer.
  if v_committed <> v_plain then
    raise exception 'plain_purchases_not_committed';
  end if;
  -- The one-time codes shown, in a statement of their own (a batch without codes does not set it up):
  -- each consumed and linked to its purchase. Looked up among the batch's codes only (the index on
  -- merchant and code, whichever way the join is planned: a plan made while the table was empty
  -- read every live code of every merchant for each batch). A code not found, spent, past its expiry
  -- or another customer's: the caller commits the items one by one, each with its own answer.
  if v_codes is not null then
    update customer_codes c set consumed_at = now(), purchase_id = d.purchase
    from unnest(v_items, v_ids) d(i, purchase)
    where c.merchant_id = any(v_code_merchants) and c.code = any(v_codes)
      and c.merchant_id = (p_items->d.i->>'merchantId')::uuid and c.code = p_items->d.i->>'code'
      and c.customer_id = (p_items->d.i->>'customerId')::uuid and c.consumed_at is null and c.expires_at > now();
    get diagnostics v_consumed = row_count;
    if v_consumed <> cardinality(v_codes) then
      raise exception 'plain_purchases_not_committed';
    end if;
  end if;
  -- The holds redeemed, in a statement of their own (a batch without holds does not set it up):
  -- loyalty_use_hold's and loyalty_take_hold_points' writes for each. The release entries (held
  -- -points, available +points); each hold's reservation, per lot, back into the lot (release) and
  -- out again to the purchase's redeem entry (redeem): the lot's remaining ends where it was, so the
  -- lot is left alone; the hold committed and linked to its purchase; hold.released with the
  -- balance before campaign points. Within one batch these entries and events follow the purchase's
  -- (one by one they come first).
  v_held := coalesce(cardinality(array_remove(v_holds, null)), 0);
  if v_held > 0 then
    with used as materialized (
      select s.hold, s.purchase, s.entry as redeem, h.merchant_id as merchant, h.customer_id as customer, h.points,
             h.entry_id, b.available, b.pending, b.held, coalesce(v_bonus[d.i + 1], 0) as bonus,
             (p_items->d.i->>'pendingDays')::integer > 0 as is_pending
      from unnest(v_entries, v_purchases, v_holds) s(entry, purchase, hold)
      join unnest(v_items, v_ids) d(i, purchase) on d.purchase = s.purchase
      join holds h on h.id = s.hold
      join balances b on b.customer_id = h.customer_id
      where s.hold is not null
    ),
    released as (
      insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, reason)
      select u.merchant, u.customer, 'release', r.bucket, r.sign * u.points, 'committed'
      from used u cross join (values (1, 'held', -1), (2, 'available', 1)) r(n, bucket, sign)
      order by u.customer, r.n
      returning id, customer_id, bucket
    ),
    moved as (
      insert into lot_moves (entry_id, lot_id, kind, purchase_id, points)
      select case when k.kind = 'release' then e.id else u.redeem end, m.lot_id, k.kind,
             case when k.kind = 'redeem' then u.purchase end, k.sign * m.points
      from used u
      join released e on e.customer_id = u.customer and e.bucket = 'available'
      join lot_moves m on m.entry_id = u.entry_id and m.kind = 'hold'
      cross join (values ('release', -1), ('redeem', 1)) k(kind, sign)
      order by u.customer, k.sign, m.id
    ),
    committed as (
      update holds h set status = 'committed', released_at = now(), purchase_id = u.purchase
      from used u
      where h.id = u.hold
    )
    insert into outbox_events (merchant_id, type, payload)
    select u.merchant, 'hold.released', jsonb_build_object(
      'holdId', u.hold, 'customerId', u.customer, 'points', u.points, 'reason', 'committed',
      'purchaseId', u.purchase, 'balance', jsonb_build_object(
        'available', u.available - case when u.is_pending then 0 else u.bonus end,
        'pending', u.pending - case when u.is_pending then u.bonus else 0 end, 'held', u.held),
      'occurredAt', loyalty_iso(now()))
    from used u
    order by u.customer;
  end if;
  -- The campaign points granted, in a statement of their own (a batch without campaign lines does not
  -- set it up): loyalty_grant_campaign's writes for each line of a plain purchase committed above.
  if cardinality(v_line_items) > 0 then
    with line as materialized (
      select d.purchase, (x.p->>'merchantId')::uuid as merchant, (x.p->>'customerId')::uuid as customer,
             x.p->>'orderId' as order_id, (x.p->>'pendingDays')::integer > 0 as is_pending,
             now() + make_interval(days => (x.p->>'pendingDays')::integer) as available_at,
             coalesce(c.bonus_lifetime_days, (x.p->>'lifetimeDays')::integer) as lifetime,
             c.id as campaign, c.name, c.kind, c.limit_total_points is not null as budgeted, g.points
      from unnest(v_line_items, v_line_campaigns, v_line_points) g(i, campaign, points)
      join unnest(v_items, v_ids) d(i, purchase) on d.i = g.i
      cross join lateral (select p_items->g.i as p) x
      join campaigns c on c.id = g.campaign
    ),
    lot as (
      insert into point_lots (merchant_id, customer_id, source, purchase_id, campaign_id, points, remaining, state,
                              available_at, expires_at)
      select l.merchant, l.customer, 'earn', l.purchase, l.campaign, l.points, l.points,
             case when l.is_pending then 'pending' else 'active' end, l.available_at,
             case when l.lifetime is null then null else l.available_at + make_interval(days => l.lifetime) end
      from line l
      returning id, merchant_id, customer_id, purchase_id, campaign_id, points, state, expires_at
    ),
    entry as (
      insert into ledger_entries (merchant_id, customer_id, kind, bucket, points, purchase_id, lot_id)
      select l.merchant_id, l.customer_id, 'earn', case when l.state = 'pending' then 'pending' else 'available' end,
             l.points, l.purchase_id, l.id
      from lot l
    ),
    budget as (
      update campaigns c set granted_points = c.granted_points + s.points
      from (select l.campaign, sum(l.points) as points from line l where l.budgeted group by l.campaign) s
      where c.id = s.campaign
    ),
    counted as (
      insert into campaign_grants (campaign_id, customer_id, grants, points)
      select l.campaign, l.customer, 1, l.points from line l
      on conflict (campaign_id, customer_id)
      do update set grants = campaign_grants.grants + 1, points = campaign_grants.points + excluded.points
    )
    insert into outbox_events (merchant_id, type, payload)
    select l.merchant, 'bonus.granted', jsonb_build_object(
      'customerId', l.customer, 'campaignId', l.campaign, 'campaignName', l.name, 'kind', l.kind,
      'points', l.points, 'purchaseId', l.purchase, 'orderId', l.order_id, 'pending', l.is_pending,
      'expiresAt', loyalty_iso(t.expires_at), 'occurredAt', loyalty_iso(now()))
    from line l join lot t on t.purchase_id = l.purchase and t.campaign_id = l.campaign
    order by l.customer;
  end if;
  -- No redeem but a hold's: nothing taken from lots in order.
  if v_entries is null or cardinality(v_entries) = v_held then
    return v_answers;
  end if;

  -- The redeems' lots, in a statement of their own (a batch that only earns does not set it up):
  -- what each takes from which lot, soonest expiry first, never-expiring last, then oldest
  -- (loyalty_take_points' order), from the first 32 lots with points left, not the lot its own
  -- purchase earned above.
  with take as materialized (
    select s.entry, s.purchase, s.points as wanted, l.id as lot,
           least(l.remaining, s.points - (l.upto - l.remaining)) as points
    from unnest(v_entries, v_customers, v_purchases, v_points, v_holds) s(entry, customer, purchase, points, hold)
    cross join lateral (
      select f.id, f.remaining, sum(f.remaining) over (order by f.expires_at nulls last, f.id) as upto
      from (select l.id, l.remaining, l.expires_at from point_lots l
            where l.customer_id = s.customer and l.state = 'active' and l.remaining > 0
              and l.purchase_id is distinct from s.purchase
            order by l.expires_at nulls last, l.id
            limit 32) f
    ) l
    where s.hold is null and l.upto - l.remaining < s.points
  ),
  taken as (
    update point_lots l set remaining = l.remaining - t.points
    from take t
    where l.id = t.lot
  ),
  moved as (
    insert into lot_moves (entry_id, lot_id, kind, purchase_id, points)
    select t.entry, t.lot, 'redeem', t.purchase, -t.points
    from take t
    order by t.purchase, t.lot
  )
  select count(*) into v_covered
  from (select 1 from take t group by t.entry, t.wanted having sum(t.points) = t.wanted) c;
  -- Spread over more lots than were read: the caller commits the items one by one.
  if v_covered <> cardinality(v_entries) - v_held then
    raise exception 'plain_purchases_not_committed';
  end if;
  return v_answers;
end $fn$;
