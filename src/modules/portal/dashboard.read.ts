import { type RawBuilder, sql } from 'kysely';
import type { Executor } from '../../db/database.js';
import { dashboardCampaigns } from './dashboard.campaigns.js';
import {
  type CreatedWindow,
  campaignRows,
  customerRows,
  daysOf,
  figureRows,
  findChangedDays,
  ROLLUP_OVERLAP_MS,
  type RollupState,
} from './dashboard.rollups.js';
import {
  type Dashboard,
  type DashboardFigures,
  type DashboardOptions,
  dashboardRange,
} from './dashboard.service.js';

// The dashboard read from the daily rollups: the stored days (what was created before the job's
// settledUntil), plus the tail created since (today's last minutes), plus the days a refund since
// has changed recomputed from purchases, so the answer equals getDashboardFromPurchases at every
// moment. Same figures, same definitions (dashboard.service.ts).

interface FigureRow extends DashboardFigures {
  date: string;
  outletId: string | null;
}

interface CustomerRow {
  date: string;
  newCustomers: number;
  returningCustomers: number;
  /** Buyers of the day counted as returning for the range as a whole (each customer once). */
  returningInRange: number;
}

function figuresOf(source: RawBuilder<unknown>, outletId: string | undefined) {
  return sql<FigureRow>`
    select to_char(f.day, 'YYYY-MM-DD') as date, f.outlet_id as "outletId", f.purchases, f.revenue,
      f.points_earned as "pointsEarned", f.points_redeemed as "pointsRedeemed"
    from (${source}) f
    where ${outletId ? sql`f.outlet_id = ${outletId}` : sql`true`}`;
}

function customersOf(source: RawBuilder<unknown>, outletId: string | undefined, from: string) {
  return sql<CustomerRow>`
    select to_char(c.day, 'YYYY-MM-DD') as date,
      coalesce(sum(c.customers) filter (where c.prev_day is null), 0)::int as "newCustomers",
      coalesce(sum(c.customers) filter (where c.prev_day is not null), 0)::int as "returningCustomers",
      coalesce(sum(c.customers) filter (where c.prev_day < ${from}::date or c.prev_is_first), 0)::int
        as "returningInRange"
    from (${source}) c
    where ${outletId ? sql`c.outlet_id = ${outletId}` : sql`c.outlet_id is null`}
    group by c.day`;
}

function emptyFigures(): DashboardFigures {
  return { purchases: 0, revenue: 0, pointsEarned: 0, pointsRedeemed: 0 };
}

function addFigures(to: DashboardFigures, row: DashboardFigures): void {
  to.purchases += row.purchases;
  to.revenue += row.revenue;
  to.pointsEarned += row.pointsEarned;
  to.pointsRedeemed += row.pointsRedeemed;
}

/** The dashboard from the rollups of a merchant whose state is `state` (zone = options.timeZone). */
export async function getDashboardFromRollups(
  db: Executor,
  options: DashboardOptions,
  state: RollupState,
): Promise<Dashboard> {
  const { from, to } = dashboardRange(options);
  const { merchantId, outletId } = options;
  const tz = state.timeZone;
  const inRange = (day: string) => day >= from && day <= to;
  const since = state.settledUntil ?? new Date(state.watermark.getTime() - ROLLUP_OVERLAP_MS);
  const changed = await findChangedDays(db, { merchantId, timeZone: tz, since });
  // Days read whole from purchases instead of their stored rows: those a refund since has changed
  // (every changed day while the rows predate settledUntil); the others changed by a tail only.
  const whole = (state.settledUntil ? changed.refunded : changed.days).filter(inRange);
  const tail = state.settledUntil ? changed.days.filter((day) => inRange(day) && !whole.includes(day)) : [];
  const window = { since };
  const stored = (
    table: 'dashboard_daily' | 'dashboard_daily_customers' | 'dashboard_daily_campaigns',
  ) => sql`
    select * from ${sql.table(table)}
    where merchant_id = ${merchantId} and day between ${from}::date and ${to}::date
      and day <> all(${whole}::date[])`;
  // Each source once: the stored rows, the whole days, the tail (the last two when they have days).
  const sources = <T>(
    storedRows: RawBuilder<unknown>,
    live: (days: readonly string[], window?: CreatedWindow) => RawBuilder<unknown>,
    read: (source: RawBuilder<unknown>) => T,
  ): T[] => [
    read(storedRows),
    ...(whole.length > 0 ? [read(live(whole))] : []),
    ...(tail.length > 0 ? [read(live(tail, window))] : []),
  ];
  const [figureParts, customerParts, outlets, campaigns] = await Promise.all([
    Promise.all(
      sources(
        stored('dashboard_daily'),
        (days, w) => figureRows(merchantId, tz, days, w),
        (source) => figuresOf(source, outletId).execute(db),
      ),
    ),
    Promise.all(
      sources(
        stored('dashboard_daily_customers'),
        (days, w) => customerRows(merchantId, tz, days, w),
        (source) => customersOf(source, outletId, from).execute(db),
      ),
    ),
    db.selectFrom('outlets').select(['id', 'name']).where('merchant_id', '=', merchantId).execute(),
    dashboardCampaigns(db, {
      merchantId,
      from,
      sources: sources(
        stored('dashboard_daily_campaigns'),
        (days, w) => campaignRows(merchantId, tz, days, w),
        (source) => source,
      ),
    }),
  ]);

  const byDay = new Map<string, Dashboard['byDay'][number]>();
  for (const date of daysOf(from, to)) {
    byDay.set(date, { date, ...emptyFigures(), newCustomers: 0, returningCustomers: 0 });
  }
  const totals = { ...emptyFigures(), newCustomers: 0, returningCustomers: 0 };
  const byOutlet = new Map<string | null, DashboardFigures>();
  for (const row of figureParts.flatMap((part) => part.rows)) {
    const day = byDay.get(row.date);
    if (day) addFigures(day, row);
    addFigures(totals, row);
    const outlet = byOutlet.get(row.outletId) ?? emptyFigures();
    addFigures(outlet, row);
    byOutlet.set(row.outletId, outlet);
  }
  // A day of the tail has a row from its stored part and one from the tail; their buyers differ.
  for (const row of customerParts.flatMap((part) => part.rows)) {
    const day = byDay.get(row.date);
    if (day) {
      day.newCustomers += row.newCustomers;
      day.returningCustomers += row.returningCustomers;
    }
    totals.newCustomers += row.newCustomers;
    totals.returningCustomers += row.returningInRange;
  }
  const names = new Map(outlets.map((o) => [o.id, o.name]));
  const outletRows = [...byOutlet].map(([id, figures]) => ({
    outletId: id,
    name: id === null ? null : (names.get(id) ?? null),
    ...figures,
  }));
  // As the query of the raw path orders them: revenue, then name (no name last).
  outletRows.sort(
    (a, b) =>
      b.revenue - a.revenue ||
      (a.name === null ? 1 : 0) - (b.name === null ? 1 : 0) ||
      (a.name ?? '').localeCompare(b.name ?? ''),
  );
  return { from, to, timeZone: tz, totals, byDay: [...byDay.values()], byOutlet: outletRows, campaigns };
}
