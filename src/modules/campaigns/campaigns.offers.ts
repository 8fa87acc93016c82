import { z } from 'zod';
import type { Executor } from '../../db/database.js';
import { getMerchantTimeZone } from '../merchants/merchants.service.js';
import { formatMoney, formatPoints, type Locale } from '../telegram/telegram.messages.js';
import { isCampaignLive } from './campaigns.rules.js';
import { CampaignKind, CampaignSchedule } from './campaigns.schema.js';
import { toCampaign, toRuleCampaign } from './campaigns.service.js';

// What a customer is offered: the merchant's active campaigns that run now or will, and that the
// customer can still get (client API GET /offers, the bot's offers, the Mini App).

/** One offer as the customer sees it. */
export const Offer = z.object({
  id: z.uuid(),
  name: z.string(),
  kind: CampaignKind,
  description: z.string().describe('What the offer gives, in the language asked for (lang)'),
  startsAt: z.string().nullable(),
  endsAt: z.string().nullable(),
  schedule: CampaignSchedule.nullable().describe("Weekdays and hours on the merchant's clocks (timeZone)"),
  isLiveNow: z.boolean().describe('Runs at this moment (period and schedule)'),
  effect: z
    .record(z.string(), z.int())
    .describe(
      'By kind: multiplier {multiplierBp}, bonus_points {points}, birthday {points, daysBefore}, referral {referrerPoints, refereePoints}',
    ),
  conditions: z.object({
    outlets: z.array(z.object({ id: z.uuid(), name: z.string() })).optional(),
    tiers: z.array(z.string()).optional(),
    categories: z.array(z.string()).optional(),
    minTotal: z.int().optional().describe('Minor units'),
  }),
  bonusLifetimeDays: z.int().nullable(),
  grantsLeft: z
    .int()
    .nullable()
    .describe('Grants this customer may still get (limits.perCustomer); null: no limit'),
});
export type Offer = z.infer<typeof Offer>;

/** GET /api/v1/client/offers */
export const OffersResponse = z.object({
  timeZone: z.string().describe("The merchant's IANA time zone (schedules)"),
  offers: z.array(Offer),
});
export type OffersResponse = z.infer<typeof OffersResponse>;

const WEEKDAY_NAMES: Record<Locale, string[]> = {
  ru: ['пн', 'вт', 'ср', 'чт', 'пт', 'сб', 'вс'],
  en: ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'],
};

/** "x2", "x1.5" (en) / "×1,5" (ru) from basis points. */
function formatMultiplier(bp: number, locale: Locale): string {
  const text = String(bp / 10_000);
  return locale === 'ru' ? `×${text.replace('.', ',')}` : `x${text}`;
}

/** When a schedule runs, in words: "сб, вс 10:00–14:00" / "Sat, Sun 10:00–14:00". */
export function describeSchedule(schedule: CampaignSchedule, locale: Locale): string {
  const days =
    schedule.weekdays.length === 7
      ? locale === 'ru'
        ? 'ежедневно'
        : 'every day'
      : schedule.weekdays.map((d) => WEEKDAY_NAMES[locale][d - 1]).join(', ');
  return schedule.from === schedule.to ? days : `${days} ${schedule.from}–${schedule.to}`;
}

/** What an offer gives, in one sentence (the API's description, the bot's list). */
export function describeOffer(
  offer: Pick<Offer, 'kind' | 'effect' | 'conditions' | 'schedule'>,
  locale: Locale,
): string {
  const e = offer.effect;
  const ru = locale === 'ru';
  let text: string;
  switch (offer.kind) {
    case 'multiplier':
      text = ru
        ? `${formatMultiplier(e.multiplierBp ?? 10_000, locale)} баллов за покупку`
        : `${formatMultiplier(e.multiplierBp ?? 10_000, locale)} points on a purchase`;
      break;
    case 'bonus_points':
      text = ru
        ? `+${formatPoints(e.points ?? 0, locale)} за покупку`
        : `+${formatPoints(e.points ?? 0, locale)} on a purchase`;
      break;
    case 'birthday':
      text = ru
        ? `+${formatPoints(e.points ?? 0, locale)} ко дню рождения`
        : `+${formatPoints(e.points ?? 0, locale)} for your birthday`;
      break;
    case 'referral':
      text = ru
        ? `+${formatPoints(e.referrerPoints ?? 0, locale)} за друга после его первой покупки, другу +${formatPoints(e.refereePoints ?? 0, locale)}`
        : `+${formatPoints(e.referrerPoints ?? 0, locale)} for a friend after their first purchase, +${formatPoints(e.refereePoints ?? 0, locale)} for the friend`;
      break;
    default:
      text = ru
        ? `+${formatPoints(e.points ?? 0, locale)} при регистрации`
        : `+${formatPoints(e.points ?? 0, locale)} when you join`;
  }
  const details: string[] = [];
  const { conditions } = offer;
  if (conditions.categories) details.push(conditions.categories.join(', '));
  if (conditions.minTotal !== undefined)
    details.push(`${ru ? 'чек от' : 'receipts from'} ${formatMoney(conditions.minTotal, locale)}`);
  if (conditions.outlets) details.push(conditions.outlets.map((o) => o.name).join(', '));
  if (conditions.tiers) details.push(`${ru ? 'уровень' : 'tier'} ${conditions.tiers.join(', ')}`);
  if (offer.schedule) details.push(describeSchedule(offer.schedule, locale));
  return details.length > 0 ? `${text} (${details.join('; ')})` : text;
}

/**
 * The offers of a customer: the merchant's active campaigns that have not ended, that a customer
 * can still get: not welcome (the customer has joined already), nor one whose perCustomer limit
 * the customer has used up or whose budget is spent. Running now first, then by priority.
 */
export async function listCustomerOffers(
  db: Executor,
  options: { merchantId: string; customerId: string; locale: Locale; at?: Date },
): Promise<OffersResponse> {
  const at = options.at ?? new Date();
  const [rows, timeZone, outlets] = await Promise.all([
    db
      .selectFrom('campaigns as c')
      .leftJoin('campaign_grants as g', (join) =>
        join.onRef('g.campaign_id', '=', 'c.id').on('g.customer_id', '=', options.customerId),
      )
      .selectAll('c')
      .select('g.grants as customer_grants')
      .where('c.merchant_id', '=', options.merchantId)
      .where('c.status', '=', 'active')
      .where('c.kind', '<>', 'welcome')
      .where((eb) => eb.or([eb('c.ends_at', 'is', null), eb('c.ends_at', '>', at)]))
      .where((eb) =>
        eb.or([
          eb('c.limit_total_points', 'is', null),
          eb('c.granted_points', '<', eb.ref('c.limit_total_points')),
        ]),
      )
      .where((eb) =>
        eb.or([
          eb('c.limit_per_customer', 'is', null),
          eb(eb.fn.coalesce('g.grants', eb.lit(0)), '<', eb.ref('c.limit_per_customer')),
        ]),
      )
      .orderBy('c.priority', 'desc')
      .orderBy('c.created_at')
      .orderBy('c.id')
      .execute(),
    getMerchantTimeZone(db, options.merchantId),
    db.selectFrom('outlets').select(['id', 'name']).where('merchant_id', '=', options.merchantId).execute(),
  ]);
  const outletNames = new Map(outlets.map((o) => [o.id, o.name]));
  const offers = rows.map((row): Offer => {
    const campaign = toCampaign(row);
    const grants = row.customer_grants ?? 0;
    const { outletIds, ...rest } = campaign.conditions;
    const conditions: Offer['conditions'] = { ...rest };
    if (outletIds) {
      conditions.outlets = outletIds.flatMap((id) => {
        const name = outletNames.get(id);
        return name === undefined ? [] : [{ id, name }];
      });
    }
    const effect = Object.fromEntries(
      Object.entries(campaign.effect).map(([key, value]) => [key, Number(value)]),
    );
    const offer = {
      id: campaign.id,
      name: campaign.name,
      kind: campaign.kind,
      startsAt: campaign.startsAt,
      endsAt: campaign.endsAt,
      schedule: campaign.schedule,
      isLiveNow: isCampaignLive(toRuleCampaign(campaign), at, timeZone),
      effect,
      conditions,
      bonusLifetimeDays: campaign.bonusLifetimeDays,
      grantsLeft: campaign.limits.perCustomer === undefined ? null : campaign.limits.perCustomer - grants,
    };
    return { ...offer, description: describeOffer(offer, options.locale) };
  });
  // Running now first; the query's priority order within each group.
  offers.sort((a, b) => Number(b.isLiveNow) - Number(a.isLiveNow));
  return { timeZone, offers };
}
