import { sql } from 'kysely';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { getMerchantTimeZone } from '../merchants/merchants.service.js';
import { type DashboardCampaign, dashboardCampaigns } from './dashboard.campaigns.js';
import { getDashboardFromRollups } from './dashboard.read.js';
import { campaignRows, daysOf, readRollupState } from './dashboard.rollups.js';

// The merchant dashboard, from purchases alone (one scan of the range, by the merchant/created_at
// index). Definitions, as the portal shows them:
// - a purchase belongs to the day (in the report's time zone) and outlet it was made at; its outlet is
//   the one the POS named, else the outlet of its device;
// - revenue = receipt totals minus the amounts refunded so far (minor units); every purchase is made
//   with a customer, so this is all revenue through the programme;
// - pointsEarned = earned minus revoked by refunds; pointsRedeemed = redeemed minus returned by refunds
//   (refunds count against the purchase's own day, so a day's figures settle as refunds come in);
// - newCustomers: customers whose first purchase at the merchant was that day; returningCustomers:
//   customers who bought that day and had bought on an earlier day. With an outlet filter: customers
//   who bought at that outlet, first purchase looked up across all outlets. Over the whole range both
//   are distinct counts (a customer new on day 1 who came back on day 5 is in both).

/** The longest range one dashboard request may cover. */
export const MAX_DASHBOARD_DAYS = 366;

/** The figures of one day, of the range, or of one outlet. */
export interface DashboardFigures {
  purchases: number;
  revenue: number;
  pointsEarned: number;
  pointsRedeemed: number;
}

/** The dashboard: totals, one row per day (days without data as zeros) and one per outlet. */
export interface Dashboard {
  from: string;
  to: string;
  timeZone: string;
  totals: DashboardFigures & { newCustomers: number; returningCustomers: number };
  byDay: Array<DashboardFigures & { date: string; newCustomers: number; returningCustomers: number }>;
  byOutlet: Array<DashboardFigures & { outletId: string | null; name: string | null }>;
  /** Points and revenue by campaign, for the merchant as a whole (dashboard.campaigns.ts). */
  campaigns: DashboardCampaign[];
}

/** Today's date (YYYY-MM-DD) in a time zone. */
function todayIn(timeZone: string): string {
  // en-CA formats dates as YYYY-MM-DD.
  return new Intl.DateTimeFormat('en-CA', { timeZone }).format(new Date());
}

/** The range a request asks for: [from, to] inclusive, defaulting to the last 30 days (to = today). */
export function dashboardRange(options: { from?: string; to?: string; timeZone?: string }): {
  from: string;
  to: string;
} {
  const to = options.to ?? todayIn(options.timeZone ?? 'UTC');
  const from = options.from ?? new Date(Date.parse(to) - 29 * 86_400_000).toISOString().slice(0, 10);
  const days = (Date.parse(to) - Date.parse(from)) / 86_400_000 + 1;
  if (days < 1) throw new AppError('validation_error', 'from: must not be after to', { field: 'from' });
  if (days > MAX_DASHBOARD_DAYS) {
    throw new AppError('validation_error', `from: the range may cover at most ${MAX_DASHBOARD_DAYS} days`, {
      field: 'from',
    });
  }
  return { from, to };
}

interface DayRow extends DashboardFigures {
  date: string;
  new_customers: number;
  returning_customers: number;
}

/** Options of a dashboard request. */
export interface DashboardOptions {
  merchantId: string;
  from?: string;
  to?: string;
  outletId?: string;
  timeZone?: string;
}

/**
 * Computes the dashboard of a merchant for [from, to] (inclusive days in `timeZone`, default the
 * merchant's own zone): from the daily rollups when they are built and in that zone, else from purchases.
 */
export async function getDashboard(db: Executor, request: DashboardOptions): Promise<Dashboard> {
  const timeZone = request.timeZone ?? (await getMerchantTimeZone(db, request.merchantId));
  const options = { ...request, timeZone };
  dashboardRange(options);
  const state = await readRollupState(db, options.merchantId);
  if (state && state.timeZone === timeZone) return getDashboardFromRollups(db, options, state);
  return getDashboardFromPurchases(db, options);
}

/** Computes the dashboard from purchases alone, in any zone. */
export async function getDashboardFromPurchases(db: Executor, options: DashboardOptions): Promise<Dashboard> {
  const { from, to } = dashboardRange(options);
  const tz = options.timeZone ?? 'UTC';
  const outletFilter = options.outletId ? sql`and s.outlet_id = ${options.outletId}` : sql``;
  // scope: the range's purchases with their day and effective outlet; firsts: each buyer's first
  // purchase ever at the merchant; buyers: who bought on which day, and whether it was their first day.
  const scope = sql`
    scope as (
      select * from (
        select p.id, p.customer_id, p.total, p.refunded_amount, p.earned_points, p.revoked_points,
               p.redeemed_points, p.returned_points, coalesce(p.outlet_id, d.outlet_id) as outlet_id,
               (p.created_at at time zone ${tz})::date as day
        from purchases p left join devices d on d.id = p.device_id
        where p.merchant_id = ${options.merchantId}
          and p.created_at >= (${from}::date)::timestamp at time zone ${tz}
          and p.created_at < (${to}::date + 1)::timestamp at time zone ${tz}
      ) s where true ${outletFilter}
    ),
    firsts as (
      select customer_id, (min(created_at) at time zone ${tz})::date as first_day
      from purchases
      where merchant_id = ${options.merchantId} and customer_id in (select customer_id from scope)
      group by customer_id
    ),
    buyers as (
      select distinct s.day, s.customer_id, f.first_day
      from scope s join firsts f on f.customer_id = s.customer_id
    )`;
  const figures = sql`
    count(s.id)::int as purchases,
    coalesce(sum(s.total - s.refunded_amount), 0)::bigint as revenue,
    coalesce(sum(s.earned_points - s.revoked_points), 0)::bigint as "pointsEarned",
    coalesce(sum(s.redeemed_points - s.returned_points), 0)::bigint as "pointsRedeemed"`;

  const [byDay, totals, byOutlet, campaigns] = await Promise.all([
    sql<DayRow>`
      with ${scope}
      select to_char(g.day, 'YYYY-MM-DD') as date, ${figures},
        (select count(*) from buyers b where b.day = g.day and b.first_day = g.day)::int as new_customers,
        (select count(*) from buyers b where b.day = g.day and b.first_day < g.day)::int as returning_customers
      from (select gs::date as day from generate_series(${from}::date, ${to}::date, interval '1 day') gs) g
      left join scope s on s.day = g.day
      group by g.day
      order by g.day
    `.execute(db),
    sql<DashboardFigures & { new_customers: number; returning_customers: number }>`
      with ${scope}
      select ${figures},
        (select count(distinct customer_id) from buyers where first_day = day)::int as new_customers,
        (select count(distinct customer_id) from buyers where first_day < day)::int as returning_customers
      from scope s
    `.execute(db),
    sql<DashboardFigures & { outletId: string | null; name: string | null }>`
      with ${scope}
      select s.outlet_id as "outletId", o.name, ${figures}
      from scope s left join outlets o on o.id = s.outlet_id
      group by s.outlet_id, o.name
      order by revenue desc, o.name nulls last
    `.execute(db),
    dashboardCampaigns(db, {
      merchantId: options.merchantId,
      from,
      sources: [campaignRows(options.merchantId, tz, daysOf(from, to))],
    }),
  ]);
  const total = totals.rows[0];
  return {
    from,
    to,
    timeZone: tz,
    totals: {
      purchases: total?.purchases ?? 0,
      revenue: total?.revenue ?? 0,
      pointsEarned: total?.pointsEarned ?? 0,
      pointsRedeemed: total?.pointsRedeemed ?? 0,
      newCustomers: total?.new_customers ?? 0,
      returningCustomers: total?.returning_customers ?? 0,
    },
    byDay: byDay.rows.map((r) => ({
      date: r.date,
      purchases: r.purchases,
      revenue: r.revenue,
      pointsEarned: r.pointsEarned,
      pointsRedeemed: r.pointsRedeemed,
      newCustomers: r.new_customers,
      returningCustomers: r.returning_customers,
    })),
    byOutlet: byOutlet.rows,
    campaigns,
  };
}
