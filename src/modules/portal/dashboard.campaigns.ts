import { type RawBuilder, sql } from 'kysely';
import type { Executor } from '../../db/database.js';

// The dashboard's points and revenue by campaign, for the merchant as a whole (grants outside
// purchases have no outlet): summed from rows of campaignRows (dashboard.rollups.ts) or of the
// dashboard_daily_campaigns rollup, which have the same columns.
// - points: the campaign's lots net of refund revocations, purchase grants and grants outside
//   purchases (welcome, birthday, referral) alike;
// - purchases: purchases that got the campaign's points; revenue: their totals net of refunds;
// - customers: distinct customers granted in the range (each counted on their first grant day in
//   it: the day whose previous grant day is before `from`, or who had none).

/** One campaign's figures over a dashboard's range. */
export interface DashboardCampaign {
  campaignId: string;
  /** null when the campaign has been deleted since (its points stay). */
  name: string | null;
  kind: string | null;
  points: number;
  purchases: number;
  customers: number;
  revenue: number;
}

type Figures = Pick<DashboardCampaign, 'campaignId' | 'points' | 'purchases' | 'customers' | 'revenue'>;

function sumByCampaign(source: RawBuilder<unknown>, from: string) {
  return sql<Figures>`
    select r.campaign_id as "campaignId", coalesce(sum(r.points), 0)::bigint as points,
      coalesce(sum(r.purchases), 0)::int as purchases, coalesce(sum(r.revenue), 0)::bigint as revenue,
      coalesce(sum(r.customers) filter (where r.prev_day is null or r.prev_day < ${from}::date), 0)::int
        as customers
    from (${source}) r
    group by r.campaign_id`;
}

/**
 * The figures by campaign of the given row sources (stored and live days of a range starting at
 * `from`), with each campaign's name and kind; most points first.
 */
export async function dashboardCampaigns(
  db: Executor,
  options: { merchantId: string; from: string; sources: RawBuilder<unknown>[] },
): Promise<DashboardCampaign[]> {
  const parts = await Promise.all(
    options.sources.map((source) => sumByCampaign(source, options.from).execute(db)),
  );
  const byId = new Map<string, Figures>();
  for (const row of parts.flatMap((part) => part.rows)) {
    const sum = byId.get(row.campaignId) ?? {
      campaignId: row.campaignId,
      points: 0,
      purchases: 0,
      customers: 0,
      revenue: 0,
    };
    sum.points += row.points;
    sum.purchases += row.purchases;
    sum.customers += row.customers;
    sum.revenue += row.revenue;
    byId.set(row.campaignId, sum);
  }
  if (byId.size === 0) return [];
  const campaigns = await db
    .selectFrom('campaigns')
    .select(['id', 'name', 'kind'])
    .where('merchant_id', '=', options.merchantId)
    .where('id', 'in', [...byId.keys()])
    .execute();
  const named = new Map(campaigns.map((c) => [c.id, c]));
  return [...byId.values()]
    .map((figures) => ({
      ...figures,
      name: named.get(figures.campaignId)?.name ?? null,
      kind: named.get(figures.campaignId)?.kind ?? null,
    }))
    .sort(
      (a, b) =>
        b.points - a.points ||
        (a.name ?? '').localeCompare(b.name ?? '') ||
        (a.campaignId < b.campaignId ? -1 : 1),
    );
}
