import { sql } from 'kysely';
import type { Database } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { toAppError } from '../ledger/ledger.errors.js';
import { dueBirthdays } from './birthday.rules.js';

/** What a birthday run granted. */
export interface BirthdayRunResult {
  campaigns: number;
  customers: number;
  points: number;
}

/**
 * The birthday job (`campaigns:birthday`): grants every active birthday campaign, within its
 * startsAt .. endsAt, to the customers whose birthday falls within its daysBefore days from today in
 * the merchant's time zone (birthday.rules.ts), once per customer, campaign and birthday year.
 * `now` is PostgreSQL's now() unless given (the CLI's --at). Each customer's grants are one
 * transaction of their own (loyalty_grant_occasion: campaigns stacked by priority, an exclusive one
 * stopping the rest), so a run never holds more than one balance row; the occasion key
 * 'birthday:<year>' (campaign_occasions' primary key) makes two workers, or a second run, grant nothing
 * more. A customer deleted after the listing is skipped; any other failure stops the run (the next
 * run grants what this one did not).
 */
export async function grantBirthdayBonuses(
  db: Database,
  options: { now?: Date } = {},
): Promise<BirthdayRunResult> {
  const now = options.now ? sql`${options.now}::timestamptz` : sql`now()`;
  const { rows: campaigns } = await sql<{
    id: string;
    merchant_id: string;
    days_before: number;
    today: string;
  }>`
    select c.id, c.merchant_id, coalesce((c.effect->>'daysBefore')::integer, 0) as days_before,
           to_char((${now} at time zone m.time_zone)::date, 'YYYY-MM-DD') as today
    from campaigns c join merchants m on m.id = c.merchant_id
    where c.kind = 'birthday' and c.status = 'active' and m.status = 'active'
      and (c.starts_at is null or c.starts_at <= ${now}) and (c.ends_at is null or c.ends_at > ${now})
    order by c.merchant_id, c.id
  `.execute(db);

  // Per merchant and customer: the birthday year and the campaigns due for it.
  const due = new Map<
    string,
    { merchantId: string; customerId: string; year: number; campaigns: string[] }
  >();
  for (const campaign of campaigns) {
    const days = dueBirthdays(campaign.today, campaign.days_before);
    const { rows } = await sql<{ id: string; year: number }>`
      select cu.id, d.year
      from unnest(${[...days.keys()]}::integer[], ${[...days.values()]}::integer[]) as d (month_day, year)
      join customers cu
        on cu.merchant_id = ${campaign.merchant_id} and cu.birth_date is not null
       and (extract(month from cu.birth_date) * 100 + extract(day from cu.birth_date))::integer = d.month_day
      where not exists (select 1 from campaign_occasions o
                        where o.campaign_id = ${campaign.id} and o.customer_id = cu.id
                          and o.occasion = 'birthday:' || d.year)
    `.execute(db);
    for (const row of rows) {
      const entry = due.get(row.id) ?? {
        merchantId: campaign.merchant_id,
        customerId: row.id,
        year: row.year,
        campaigns: [],
      };
      entry.campaigns.push(campaign.id);
      due.set(row.id, entry);
    }
  }

  const result: BirthdayRunResult = { campaigns: campaigns.length, customers: 0, points: 0 };
  for (const entry of due.values()) {
    try {
      const { rows } = await sql<{ points: number }>`
        select loyalty_grant_occasion(${entry.merchantId}, ${entry.customerId}, 'birthday',
                                      ${`birthday:${entry.year}`}, 'points', ${entry.campaigns}::uuid[]) as points
      `.execute(db);
      const points = Number(rows[0]?.points ?? 0);
      if (points > 0) {
        result.customers += 1;
        result.points += points;
      }
    } catch (error) {
      // Deleted since the listing (with their merchant): nothing to grant, the others still are.
      const failure = toAppError(error);
      if (failure instanceof AppError && failure.code === 'customer_not_found') continue;
      throw failure;
    }
  }
  return result;
}
