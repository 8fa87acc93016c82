import { type RawBuilder, sql } from 'kysely';
import type { Database, Executor } from '../../db/database.js';
import { getMerchantTimeZones } from '../merchants/time-zone.js';

// Daily rollups of the dashboard (tables of migrations 0013, 0018 and 0023), kept by the
// dashboard:rollups job and read by getDashboard for requests in the merchant's own zone.
//
// The job recomputes whole days (delete + insert under a per-merchant lock), so running it twice,
// or in two workers at once, gives the same rows. A day is recomputed when something that changes
// its figures was created since the last run's watermark minus OVERLAP: a purchase of that day, a
// campaign grant outside purchases, a refund of one of its purchases, or a refund entry naming one
// of them (a refund of one purchase can settle what another still owed, loyalty_land_points). Rows
// are stamped with their transaction's start time, so one started before the watermark may commit
// after the job read: OVERLAP, far longer than any ledger transaction may run (statement
// timeouts), re-reads them.
//
// The rows hold what was created before the run's `settledUntil` (its watermark minus OVERLAP),
// today included, so the dashboard is never stale and cheap to read: it adds the tail created
// since (the purchases and grants of the last minutes, a buyer counted there only when the stored
// part of the day does not have them already), and recomputes from purchases only the days whose
// stored figures a refund since has changed.
//
// newCustomers and returningCustomers of a range are distinct counts, which daily sums cannot give.
// Each buyer of a day is therefore stored in a bucket by the day of their previous purchase (at the
// outlet, for outlet rows): a customer is returning in [from, to] exactly once, on the first day in
// the range after their first purchase day, the day whose previous purchase day is before `from`
// or is their first purchase day. Previous days more than a year back (a range covers at most 366
// days) share one bucket, '-infinity'.

/** Rows created within this long before the watermark are read again by the next run. */
export const ROLLUP_OVERLAP_MS = 5 * 60_000;

/** Where a merchant's rollups stand: the zone of their days, the watermark, what the rows hold. */
export interface RollupState {
  timeZone: string;
  watermark: Date;
  /**
   * The rows hold what was created before this time (watermark - OVERLAP); null: rows written
   * before migration 0023, which hold their days whole as of the watermark.
   */
  settledUntil: Date | null;
}

/** Reads a merchant's rollup state; null until the job has built its history. */
export async function readRollupState(db: Executor, merchantId: string): Promise<RollupState | null> {
  const row = await db
    .selectFrom('dashboard_rollup_state')
    .select(['time_zone', 'watermark', 'settled_until'])
    .where('merchant_id', '=', merchantId)
    .executeTakeFirst();
  return row ? { timeZone: row.time_zone, watermark: row.watermark, settledUntil: row.settled_until } : null;
}

/**
 * Bounds on when what a day's rows count was created: `until` for the rows the job stores, `since`
 * for the tail the dashboard adds to them. Unset: the whole day.
 */
export interface CreatedWindow {
  since?: Date;
  until?: Date;
}

function createdWithin(column: RawBuilder<unknown>, window: CreatedWindow) {
  return sql`${window.since ? sql`and ${column} >= ${window.since}` : sql``}
    ${window.until ? sql`and ${column} < ${window.until}` : sql``}`;
}

function dayStart(day: RawBuilder<unknown>, tz: string) {
  return sql`(${day})::timestamp at time zone ${tz}`;
}

/**
 * The purchases of the given days with their effective outlet (the POS's, else its device's): one
 * range scan of the merchant/created_at index per day. The lateral subquery (kept apart by
 * `offset 0`) makes each day's bounds known to its scan; as a plain join the planner may read every
 * purchase of the merchant once and filter them against the days (seen at 10^6 customers).
 */
function purchasesOf(merchantId: string, tz: string, days: readonly string[], window: CreatedWindow) {
  return sql`
    select x.day, p.customer_id, p.total, p.refunded_amount, p.earned_points, p.revoked_points,
           p.redeemed_points, p.returned_points, coalesce(p.outlet_id, dv.outlet_id) as outlet_id
    from unnest(${days}::date[]) as x(day)
    cross join lateral (
      select p.customer_id, p.total, p.refunded_amount, p.earned_points, p.revoked_points,
             p.redeemed_points, p.returned_points, p.outlet_id, p.device_id
      from purchases p
      where p.merchant_id = ${merchantId}
        and p.created_at >= ${dayStart(sql`x.day`, tz)} and p.created_at < ${dayStart(sql`x.day + 1`, tz)}
        ${createdWithin(sql`p.created_at`, window)}
      offset 0
    ) p
    left join devices dv on dv.id = p.device_id`;
}

/** Figures per day and outlet of the given days, computed from purchases (created within `window`). */
export function figureRows(
  merchantId: string,
  tz: string,
  days: readonly string[],
  window: CreatedWindow = {},
) {
  return sql`
    select s.day, s.outlet_id, count(*)::int as purchases,
      sum(s.total - s.refunded_amount)::bigint as revenue,
      sum(s.earned_points - s.revoked_points)::bigint as points_earned,
      sum(s.redeemed_points - s.returned_points)::bigint as points_redeemed
    from (${purchasesOf(merchantId, tz, days, window)}) s
    group by s.day, s.outlet_id`;
}

// Counts the buyers of `rows` (day, outlet_id, prev, first_day) per bucket.
const BUCKETS = sql`
    select day, outlet_id,
      case when prev < day - 366 then '-infinity'::date else prev end as prev_day,
      coalesce(prev >= day - 366 and prev = first_day, false) as prev_is_first,
      count(*)::int as customers
    from rows
    group by 1, 2, 3, 4`;

/**
 * Buyers per day (outlet_id null) and per day and outlet, bucketed by previous purchase day, of the
 * given days, computed from their purchases created within `window` (see the top of this file).
 * With `window.since` (the tail of stored days) a buyer who bought that day before `since` (at the
 * outlet, for outlet rows) is left out: the stored rows count them.
 */
export function customerRows(
  merchantId: string,
  tz: string,
  days: readonly string[],
  window: CreatedWindow = {},
) {
  const { since } = window;
  const boughtBefore = (atOutlet: RawBuilder<unknown>) =>
    since
      ? sql`exists (select 1 from purchases q left join devices qd on qd.id = q.device_id
          where q.customer_id = b.customer_id and q.created_at >= ${dayStart(sql`b.day`, tz)}
            and q.created_at < ${since} and ${atOutlet})`
      : sql`false`;
  return sql`
    with buys as (
      select distinct s.day, s.customer_id, s.outlet_id from (${purchasesOf(merchantId, tz, days, window)}) s
    ),
    buyers as (
      select b.day, b.customer_id,
        (select (min(q.created_at) at time zone ${tz})::date from purchases q
          where q.customer_id = b.customer_id) as first_day,
        (select (max(q.created_at) at time zone ${tz})::date from purchases q
          where q.customer_id = b.customer_id and q.created_at < ${dayStart(sql`b.day`, tz)}) as prev_day,
        ${boughtBefore(sql`true`)} as counted
      from (select distinct day, customer_id from buys) b
    ),
    rows as (
      select day, null::uuid as outlet_id, prev_day as prev, first_day from buyers where not counted
      union all
      select b.day, b.outlet_id,
        case when u.prev_day is null then null else coalesce(
          (select (max(q.created_at) at time zone ${tz})::date from purchases q
             left join devices qd on qd.id = q.device_id
           where q.customer_id = b.customer_id and q.created_at < ${dayStart(sql`b.day`, tz)}
             and coalesce(q.outlet_id, qd.outlet_id) = b.outlet_id),
          '-infinity'::date) end,
        u.first_day
      from buys b join buyers u on u.day = b.day and u.customer_id = b.customer_id
      where b.outlet_id is not null and not ${boughtBefore(sql`coalesce(q.outlet_id, qd.outlet_id) = b.outlet_id`)}
    )
    ${BUCKETS}`;
}

/**
 * figureRows for every day of a merchant's history at once: one pass over its purchases, each
 * purchase's day computed from its own time, instead of a range probe per day.
 */
function figureRowsOfHistory(merchantId: string, tz: string, until: Date) {
  return sql`
    select (p.created_at at time zone ${tz})::date as day, coalesce(p.outlet_id, dv.outlet_id) as outlet_id,
      count(*)::int as purchases,
      sum(p.total - p.refunded_amount)::bigint as revenue,
      sum(p.earned_points - p.revoked_points)::bigint as points_earned,
      sum(p.redeemed_points - p.returned_points)::bigint as points_redeemed
    from purchases p left join devices dv on dv.id = p.device_id
    where p.merchant_id = ${merchantId} and p.created_at < ${until}
    group by 1, 2`;
}

/**
 * customerRows for every day of a merchant's history at once: one sorted pass over its purchases
 * (window functions) instead of index probes per buyer, for building the rollups from scratch.
 */
function customerRowsOfHistory(merchantId: string, tz: string, until: Date) {
  return sql`
    with p as (
      select p.customer_id, (p.created_at at time zone ${tz})::date as day,
             coalesce(p.outlet_id, dv.outlet_id) as outlet_id
      from purchases p left join devices dv on dv.id = p.device_id
      where p.merchant_id = ${merchantId} and p.created_at < ${until}
    ),
    buyers as (
      select customer_id, day, min(day) over w as first_day, lag(day) over w as prev_day
      from (select distinct customer_id, day from p) d
      window w as (partition by customer_id order by day)
    ),
    outlet_buyers as (
      select customer_id, outlet_id, day, lag(day) over (partition by customer_id, outlet_id order by day) as prev_x
      from (select distinct customer_id, outlet_id, day from p where outlet_id is not null) d
    ),
    rows as (
      select day, null::uuid as outlet_id, prev_day as prev, first_day from buyers
      union all
      select o.day, o.outlet_id,
        case when b.prev_day is null then null else coalesce(o.prev_x, '-infinity'::date) end, b.first_day
      from outlet_buyers o join buyers b on b.customer_id = o.customer_id and b.day = o.day
    )
    ${BUCKETS}`;
}

// A campaign lot's points net of what refunds revoked from it.
const NET_LOT_POINTS = sql`l.points + coalesce((select sum(m.points) from lot_moves m
      where m.lot_id = l.id and m.kind = 'refund_revoke'), 0)`;

// Counts per day, campaign and bucket of the previous grant day the rows of `per` (day,
// customer_id, campaign_id, purchases, points, revenue, prev, counted): see migration 0018. A row
// whose customer the stored rows of its day count already (counted) adds no customer.
const CAMPAIGN_BUCKETS = sql`
    select day, campaign_id,
      case when prev < day - 366 then '-infinity'::date else prev end as prev_day,
      count(*) filter (where not counted)::int as customers, sum(purchases)::int as purchases,
      sum(points)::bigint as points,
      sum(revenue)::bigint as revenue
    from rows
    group by 1, 2, 3`;

/**
 * Points, purchases, revenue and buyers (bucketed by their previous grant day of the campaign) per
 * day and campaign of the given days, computed from the campaign lots created within `window` (a
 * purchase's lots by the purchase's time): a purchase's lots on the purchase's day, grants outside
 * purchases (welcome, birthday, referral) on their own day. With `window.since` a customer granted
 * the campaign that day before `since` adds no customer (the stored rows count them).
 */
export function campaignRows(
  merchantId: string,
  tz: string,
  days: readonly string[],
  window: CreatedWindow = {},
) {
  const start = (day: RawBuilder<unknown>) => dayStart(day, tz);
  const { since } = window;
  const counted = since
    ? sql`exists (select 1 from point_lots l left join purchases q on q.id = l.purchase_id
        where l.customer_id = per.customer_id and l.campaign_id = per.campaign_id
          and coalesce(q.created_at, l.created_at) >= ${start(sql`per.day`)}
          and coalesce(q.created_at, l.created_at) < ${since})`
    : sql`false`;
  return sql`
    with lots as (
      select x.day, l.customer_id, l.campaign_id, p.id as purchase_id,
             p.total - p.refunded_amount as revenue, ${NET_LOT_POINTS} as points
      from unnest(${days}::date[]) as x(day)
      join purchases p on p.merchant_id = ${merchantId}
        and p.created_at >= ${start(sql`x.day`)} and p.created_at < ${start(sql`x.day + 1`)}
        ${createdWithin(sql`p.created_at`, window)}
      join point_lots l on l.purchase_id = p.id and l.campaign_id is not null
      union all
      select x.day, l.customer_id, l.campaign_id, null, 0, ${NET_LOT_POINTS}
      from unnest(${days}::date[]) as x(day)
      join point_lots l on l.merchant_id = ${merchantId} and l.campaign_id is not null
        and l.purchase_id is null
        and l.created_at >= ${start(sql`x.day`)} and l.created_at < ${start(sql`x.day + 1`)}
        ${createdWithin(sql`l.created_at`, window)}
    ),
    per as (
      select day, customer_id, campaign_id, count(distinct purchase_id)::int as purchases,
        sum(points) as points, sum(revenue) as revenue
      from lots group by 1, 2, 3
    ),
    rows as (
      select per.*,
        (select (max(coalesce(q.created_at, l.created_at)) at time zone ${tz})::date
         from point_lots l left join purchases q on q.id = l.purchase_id
         where l.customer_id = per.customer_id and l.campaign_id = per.campaign_id
           and coalesce(q.created_at, l.created_at) < ${start(sql`per.day`)}) as prev,
        ${counted} as counted
      from per
    )
    ${CAMPAIGN_BUCKETS}`;
}

/** campaignRows for every day of a merchant's history at once (one sorted pass, window functions). */
function campaignRowsOfHistory(merchantId: string, tz: string, until: Date) {
  return sql`
    with lots as (
      select (coalesce(p.created_at, l.created_at) at time zone ${tz})::date as day, l.customer_id,
             l.campaign_id, l.purchase_id, coalesce(p.total - p.refunded_amount, 0) as revenue,
             ${NET_LOT_POINTS} as points
      from point_lots l left join purchases p on p.id = l.purchase_id
      where l.merchant_id = ${merchantId} and l.campaign_id is not null
        and coalesce(p.created_at, l.created_at) < ${until}
    ),
    per as (
      select day, customer_id, campaign_id, count(distinct purchase_id)::int as purchases,
        sum(points) as points, sum(revenue) as revenue
      from lots group by 1, 2, 3
    ),
    rows as (
      select per.*, lag(day) over (partition by customer_id, campaign_id order by day) as prev,
        false as counted
      from per
    )
    ${CAMPAIGN_BUCKETS}`;
}

const INSERT_CAMPAIGN_ROWS = sql`
    insert into dashboard_daily_campaigns
      (merchant_id, day, campaign_id, prev_day, customers, purchases, points, revenue)`;

/** The days from `from` to `to` (YYYY-MM-DD, inclusive). */
export function daysOf(from: string, to: string): string[] {
  const days: string[] = [];
  for (let t = Date.parse(from); t <= Date.parse(to); t += 86_400_000) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  return days;
}

/** Serialises the job's work on one merchant (two workers, or the job and a rebuild). */
async function lockMerchant(db: Executor, merchantId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`dashboard_rollups:${merchantId}`}, 0))`.execute(
    db,
  );
}

async function transactionStart(db: Executor): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select now() as now`.execute(db);
  return rows[0]?.now ?? new Date();
}

/** The days (YYYY-MM-DD) whose figures may have changed since a time. */
export interface ChangedDays {
  /** Every such day, in order. */
  days: string[];
  /** Those whose purchases created before that time changed: days of refunded purchases. */
  refunded: string[];
}

/**
 * Days (YYYY-MM-DD in tz) whose figures may have changed since `since`: days of purchases and of
 * campaign grants outside purchases made since, and of the refunded purchases of customers
 * refunded since (a refund changes its purchase and may settle what another purchase of the same
 * customer owed).
 */
export async function findChangedDays(
  db: Executor,
  options: { merchantId: string; timeZone: string; since: Date },
): Promise<ChangedDays> {
  const { merchantId, timeZone: tz, since } = options;
  const { rows } = await sql<{ day: string; refunded: boolean }>`
    select to_char((t.created_at at time zone ${tz})::date, 'YYYY-MM-DD') as day, bool_or(t.refunded) as refunded
    from (
      select created_at, false as refunded from purchases
      where merchant_id = ${merchantId} and created_at >= ${since}
      union all
      -- Campaign grants outside purchases (welcome, birthday, referral).
      select created_at, false from point_lots
      where merchant_id = ${merchantId} and campaign_id is not null and purchase_id is null
        and created_at >= ${since}
      union all
      select p.created_at, true
      from (select distinct customer_id from refunds
            where merchant_id = ${merchantId} and created_at >= ${since}) r
      join purchases p on p.customer_id = r.customer_id and p.refunded_amount > 0
    ) t
    group by 1
    order by 1`.execute(db);
  return { days: rows.map((r) => r.day), refunded: rows.filter((r) => r.refunded).map((r) => r.day) };
}

/**
 * Recomputes the given days of a merchant from what was created before `until`. The caller holds
 * the merchant's lock.
 */
async function replaceDays(
  db: Executor,
  merchantId: string,
  tz: string,
  days: readonly string[],
  until: Date,
): Promise<void> {
  if (days.length === 0) return;
  const window = { until };
  await sql`delete from dashboard_daily where merchant_id = ${merchantId} and day = any(${days}::date[])`.execute(
    db,
  );
  await sql`
    insert into dashboard_daily (merchant_id, day, outlet_id, purchases, revenue, points_earned, points_redeemed)
    select ${merchantId}, f.day, f.outlet_id, f.purchases, f.revenue, f.points_earned, f.points_redeemed
    from (${figureRows(merchantId, tz, days, window)}) f`.execute(db);
  await sql`
    delete from dashboard_daily_customers where merchant_id = ${merchantId} and day = any(${days}::date[])`.execute(
    db,
  );
  await sql`
    insert into dashboard_daily_customers (merchant_id, day, outlet_id, prev_day, prev_is_first, customers)
    select ${merchantId}, c.day, c.outlet_id, c.prev_day, c.prev_is_first, c.customers
    from (${customerRows(merchantId, tz, days, window)}) c`.execute(db);
  await sql`
    delete from dashboard_daily_campaigns where merchant_id = ${merchantId} and day = any(${days}::date[])`.execute(
    db,
  );
  await sql`
    ${INSERT_CAMPAIGN_ROWS}
    select ${merchantId}, c.day, c.campaign_id, c.prev_day, c.customers, c.purchases, c.points, c.revenue
    from (${campaignRows(merchantId, tz, days, window)}) c`.execute(db);
}

/** Builds a merchant's rollups from its whole history, in one transaction. */
async function buildMerchant(db: Database, merchantId: string, tz: string): Promise<number> {
  return db.transaction().execute(async (trx) => {
    await lockMerchant(trx, merchantId);
    // A long history takes longer than the pool's statement timeout allows a request, and its
    // sorts (a merchant's purchases by customer and day) fit in memory instead of temp files.
    await sql`set local statement_timeout = 0`.execute(trx);
    await sql`set local work_mem = '256MB'`.execute(trx);
    const started = await transactionStart(trx);
    const until = settledAt(started);
    await trx.deleteFrom('dashboard_daily').where('merchant_id', '=', merchantId).execute();
    await trx.deleteFrom('dashboard_daily_customers').where('merchant_id', '=', merchantId).execute();
    await trx.deleteFrom('dashboard_daily_campaigns').where('merchant_id', '=', merchantId).execute();
    // Grants outside purchases may come before a merchant's first purchase.
    await sql`
      ${INSERT_CAMPAIGN_ROWS}
      select ${merchantId}, c.day, c.campaign_id, c.prev_day, c.customers, c.purchases, c.points, c.revenue
      from (${campaignRowsOfHistory(merchantId, tz, until)}) c`.execute(trx);
    const { rows } = await sql<{ first: string | null; today: string }>`
      select to_char((min(created_at) at time zone ${tz})::date, 'YYYY-MM-DD') as first,
             to_char((now() at time zone ${tz})::date, 'YYYY-MM-DD') as today
      from purchases where merchant_id = ${merchantId}`.execute(trx);
    const span = rows[0];
    const days = span?.first ? daysOf(span.first, span.today) : [];
    // Rows are written in the order the dashboard reads them (a range of days of the merchant, or of
    // one outlet), so a range reads a few adjacent pages instead of one page per stored row: a day
    // has a row per previous-purchase day of its buyers (hundreds), and a history written customer
    // by customer would spread a 90-day read over tens of thousands of pages (2.4 s cold at 10^6
    // customers). The job's later days are written a day at a time, adjacent too.
    if (days.length > 0) {
      await sql`
        insert into dashboard_daily (merchant_id, day, outlet_id, purchases, revenue, points_earned, points_redeemed)
        select ${merchantId}, f.day, f.outlet_id, f.purchases, f.revenue, f.points_earned, f.points_redeemed
        from (${figureRowsOfHistory(merchantId, tz, until)}) f
        order by f.day`.execute(trx);
      await sql`
        insert into dashboard_daily_customers (merchant_id, day, outlet_id, prev_day, prev_is_first, customers)
        select ${merchantId}, c.day, c.outlet_id, c.prev_day, c.prev_is_first, c.customers
        from (${customerRowsOfHistory(merchantId, tz, until)}) c
        order by c.outlet_id, c.day`.execute(trx);
    }
    await writeState(trx, merchantId, tz, started);
    return days.length;
  });
}

/** What rows written by a run that started at `watermark` hold: what was created before this. */
function settledAt(watermark: Date): Date {
  return new Date(watermark.getTime() - ROLLUP_OVERLAP_MS);
}

/** Where the rollups stand after a run that started at `watermark` (see settledAt). */
async function writeState(db: Executor, merchantId: string, tz: string, watermark: Date): Promise<void> {
  const settled = { time_zone: tz, watermark, settled_until: settledAt(watermark) };
  await db
    .insertInto('dashboard_rollup_state')
    .values({ merchant_id: merchantId, ...settled })
    .onConflict((oc) => oc.column('merchant_id').doUpdateSet({ ...settled, updated_at: sql<Date>`now()` }))
    .execute();
}

/** Brings one merchant's rollups up to date; returns the days recomputed. */
async function refreshMerchant(db: Database, merchantId: string, tz: string): Promise<number> {
  const state = await readRollupState(db, merchantId);
  if (!state || state.timeZone !== tz) return buildMerchant(db, merchantId, tz);
  return db.transaction().execute(async (trx) => {
    await lockMerchant(trx, merchantId);
    const current = await readRollupState(trx, merchantId);
    if (!current || current.timeZone !== tz) return 0; // rebuilt meanwhile by another run
    const now = await transactionStart(trx);
    const { days } = await findChangedDays(trx, {
      merchantId,
      timeZone: tz,
      since: settledAt(current.watermark),
    });
    await replaceDays(trx, merchantId, tz, days, settledAt(now));
    await writeState(trx, merchantId, tz, now);
    return days.length;
  });
}

/**
 * The dashboard:rollups job: brings every merchant's rollups up to date (a merchant without them,
 * or whose zone changed, is built from its history). Idempotent, and safe in two workers at once.
 */
export async function refreshDashboardRollups(db: Database): Promise<{ merchants: number; days: number }> {
  const merchants = await db.selectFrom('merchants').select('id').orderBy('id').execute();
  const ids = merchants.map((m) => m.id);
  const zones = await getMerchantTimeZones(db, ids);
  let days = 0;
  for (const id of ids) {
    const tz = zones.get(id);
    if (tz) days += await refreshMerchant(db, id, tz);
  }
  return { merchants: ids.length, days };
}
