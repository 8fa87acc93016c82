import { sql } from 'kysely';
import type { Executor } from '../../db/database.js';
import { localTime } from '../../lib/time-zone.js';
import type { ProgrammeRules, Receipt } from '../programme/programme.schema.js';
import { explainEarn, type RuleCampaign } from './campaigns.rules.js';
import type { SimulationResult } from './campaigns.schema.js';

const PAGE = 2_000;

interface StoredPurchase {
  id: string;
  customer_id: string;
  outlet_id: string | null;
  total: number;
  eligible_amount: number;
  discount: number;
  earned_points: number;
  earn_rate_bp: number;
  tier: string | null;
  receipt: Receipt;
  created_at: Date;
  /** created_at to the microsecond, for the page cursor (a Date keeps milliseconds only). */
  created_key: string;
}

/** Every day from `from` to `to` inclusive, YYYY-MM-DD. */
function daysBetween(from: string, to: string): string[] {
  const days: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86_400_000) {
    days.push(new Date(t).toISOString().slice(0, 10));
  }
  return days;
}

/**
 * Replays the merchant's purchases of the days `from`..`to` (inclusive, on the merchant's clocks)
 * under one campaign, as if it had been active then with nothing else running: its schedule,
 * conditions and limits apply (perCustomer and totalPoints counted over the replay), its status
 * and startsAt/endsAt do not. Reads only.
 */
export async function simulateCampaign(
  db: Executor,
  options: {
    merchantId: string;
    campaign: RuleCampaign;
    rules: ProgrammeRules;
    timeZone: string;
    from: string;
    to: string;
  },
): Promise<SimulationResult> {
  const { rules, timeZone } = options;
  const campaign: RuleCampaign = {
    ...options.campaign,
    status: 'active',
    startsAt: null,
    endsAt: null,
    grantedPoints: 0,
  };
  const grantsByCustomer = new Map<string, number>();
  const byDay = new Map(
    daysBetween(options.from, options.to).map((date) => [date, { purchases: 0, extraPoints: 0 }]),
  );
  let purchases = 0;
  let extraPoints = 0;
  type Cursor = { createdKey: string; id: string };
  let cursor = null as Cursor | null;
  for (;;) {
    const { rows }: { rows: StoredPurchase[] } = await sql<StoredPurchase>`
      select id, customer_id, outlet_id, total, eligible_amount, discount, earned_points, earn_rate_bp, tier,
             receipt, created_at, created_at::text as created_key
      from purchases
      where merchant_id = ${options.merchantId}
        and created_at >= (${options.from}::date)::timestamp at time zone ${timeZone}
        and created_at < (${options.to}::date + 1)::timestamp at time zone ${timeZone}
        ${cursor ? sql`and (created_at, id) > (${cursor.createdKey}::timestamptz, ${cursor.id}::uuid)` : sql``}
      order by created_at, id
      limit ${PAGE}`.execute(db);
    for (const p of rows) {
      const customerGrants = grantsByCustomer.get(p.customer_id) ?? 0;
      const { earnBreakdown } = explainEarn(
        {
          rules,
          receipt: p.receipt,
          quote: {
            earnPoints: 0,
            eligibleAmount: p.eligible_amount,
            discount: p.discount,
            earnRateBp: p.earn_rate_bp,
            tier: p.tier === null ? null : { name: p.tier, minSpend: 0, earnRateBp: p.earn_rate_bp },
          },
          at: p.created_at,
          timeZone,
          outletId: p.outlet_id,
        },
        [{ ...campaign, customerGrants }],
      );
      const extra = earnBreakdown.find((item) => item.source === 'campaign')?.points ?? 0;
      if (extra <= 0) continue;
      grantsByCustomer.set(p.customer_id, customerGrants + 1);
      campaign.grantedPoints += extra;
      purchases += 1;
      extraPoints += extra;
      const day = byDay.get(localTime(p.created_at, timeZone).date);
      if (day) {
        day.purchases += 1;
        day.extraPoints += extra;
      }
    }
    const last: StoredPurchase | undefined = rows.at(-1);
    if (rows.length < PAGE || !last) break;
    cursor = { createdKey: last.created_key, id: last.id };
  }
  return {
    purchases,
    customers: grantsByCustomer.size,
    extraPoints,
    extraPointsValueMinor: extraPoints * rules.pointValueMinor,
    byDay: [...byDay].map(([date, day]) => ({ date, ...day })),
  };
}
