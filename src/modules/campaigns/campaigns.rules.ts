import { localTime } from '../../lib/time-zone.js';
import { isExcludedItem, type QuoteResult } from '../programme/programme.rules.js';
import type { ProgrammeRules, Receipt } from '../programme/programme.schema.js';
import type {
  CampaignConditions,
  CampaignKind,
  CampaignLimits,
  CampaignSchedule,
  CampaignStatus,
  EarnBreakdownItem,
} from './campaigns.schema.js';

// The campaign rules: pure functions of a receipt, the moment and the campaigns, shared by the
// quote, the commit (which applies what they return, budgets enforced again in SQL) and the
// simulation. Integer arithmetic only; every campaign's points round down.

const BP = 10_000n;

/** A campaign as the rules see it, with what it has granted so far (for its limits). */
export interface RuleCampaign {
  id: string;
  name: string;
  kind: CampaignKind;
  status: CampaignStatus;
  startsAt: Date | null;
  endsAt: Date | null;
  schedule: CampaignSchedule | null;
  conditions: CampaignConditions;
  effect: Record<string, unknown>;
  limits: CampaignLimits;
  priority: number;
  exclusive: boolean;
  /** Points granted so far (the totalPoints budget). */
  grantedPoints: number;
  /** Grants to this customer so far (perCustomer). */
  customerGrants: number;
}

/** Where and when a purchase happens, and what the programme made of it. */
export interface EarnContext {
  rules: ProgrammeRules;
  receipt: Receipt;
  /** The programme's quote of the receipt (base and tier earn, discount, eligible amount). */
  quote: Pick<QuoteResult, 'earnPoints' | 'eligibleAmount' | 'discount' | 'earnRateBp' | 'tier'>;
  at: Date;
  /** The merchant's IANA time zone: schedules are read on its clocks. */
  timeZone: string;
  outletId: string | null;
}

/** The earn explanation and its total. */
export interface EarnExplanation {
  earnPoints: number;
  earnBreakdown: EarnBreakdownItem[];
}

function minutesOf(hhmm: string): number {
  const [h, m] = hhmm.split(':');
  return Number(h) * 60 + Number(m);
}

/**
 * Whether `at` falls in the schedule on the clocks of `timeZone`. A window whose `to` is before
 * its `from` crosses midnight and belongs to the weekday it starts on; `from` = `to` is the whole
 * day. Wall-clock time: in a DST change the skipped hour never happens and the repeated one
 * happens twice.
 */
export function isInSchedule(schedule: CampaignSchedule, at: Date, timeZone: string): boolean {
  const { weekday, minutes } = localTime(at, timeZone);
  const days = new Set(schedule.weekdays);
  const from = minutesOf(schedule.from);
  const to = minutesOf(schedule.to);
  if (from === to) return days.has(weekday);
  if (from < to) return days.has(weekday) && minutes >= from && minutes < to;
  const previous = weekday === 1 ? 7 : weekday - 1;
  return (days.has(weekday) && minutes >= from) || (days.has(previous) && minutes < to);
}

/** Whether a campaign runs at `at`: active, within startsAt (inclusive) .. endsAt (exclusive) and its schedule. */
export function isCampaignLive(campaign: RuleCampaign, at: Date, timeZone: string): boolean {
  if (campaign.status !== 'active') return false;
  if (campaign.startsAt && at.getTime() < campaign.startsAt.getTime()) return false;
  if (campaign.endsAt && at.getTime() >= campaign.endsAt.getTime()) return false;
  return campaign.schedule === null || isInSchedule(campaign.schedule, at, timeZone);
}

/** Amount of the receipt's earning lines whose category the conditions accept (all without a category condition). */
function matchingAmount(context: EarnContext, categories: string[] | undefined): number {
  const { rules, receipt, quote } = context;
  if (categories === undefined) return quote.eligibleAmount;
  if (receipt.items === undefined) return 0;
  let amount = 0;
  for (const item of receipt.items) {
    if (item.category !== undefined && categories.includes(item.category) && !isExcludedItem(rules, item)) {
      amount += item.amount;
    }
  }
  return amount;
}

/** The points a live campaign adds to a purchase before its limits; 0 when the purchase does not qualify. */
function campaignPoints(campaign: RuleCampaign, context: EarnContext): number {
  const { conditions } = campaign;
  const tierName = context.quote.tier?.name ?? null;
  if (conditions.outletIds && (context.outletId === null || !conditions.outletIds.includes(context.outletId)))
    return 0;
  if (conditions.tiers && (tierName === null || !conditions.tiers.includes(tierName))) return 0;
  if (conditions.minTotal !== undefined && context.receipt.total < conditions.minTotal) return 0;
  const matching = matchingAmount(context, conditions.categories);
  if (campaign.kind === 'bonus_points') {
    // With a category condition, at least one earning line of those categories.
    if (conditions.categories && matching === 0) return 0;
    return Number(campaign.effect.points ?? 0);
  }
  if (campaign.kind === 'multiplier') {
    const { eligibleAmount, discount, earnRateBp } = context.quote;
    const extraBp = BigInt(Number(campaign.effect.multiplierBp ?? BP) - Number(BP));
    if (eligibleAmount <= 0 || extraBp <= 0n) return 0;
    // The programme's earn of the matching lines (money paid: the discount spread pro rata over
    // the eligible amount) times the extra part of the multiplier, rounded down once.
    const numerator = BigInt(matching) * BigInt(eligibleAmount - discount) * BigInt(earnRateBp) * extraBp;
    const denominator = BigInt(eligibleAmount) * BP * BP * BigInt(context.rules.pointValueMinor);
    return Number(numerator / denominator);
  }
  // welcome, birthday and referral campaigns do not apply to purchases.
  return 0;
}

/** What is left of a campaign's limits for this customer: the most points it may still grant. */
function allowance(campaign: RuleCampaign): number {
  if (campaign.limits.perCustomer !== undefined && campaign.customerGrants >= campaign.limits.perCustomer)
    return 0;
  if (campaign.limits.totalPoints !== undefined)
    return Math.max(0, campaign.limits.totalPoints - campaign.grantedPoints);
  return Number.MAX_SAFE_INTEGER;
}

/** Campaigns in the order they apply: higher priority first, ties by id. */
export function byPriority(a: RuleCampaign, b: RuleCampaign): number {
  return b.priority - a.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * Explains a purchase's earn: the programme's base rate, the tier's difference (when the customer
 * is in a tier) and one line per campaign that adds points. Campaigns apply in priority order; one
 * that applies and is exclusive stops those after it. A campaign applies when it is live at
 * `at`, the purchase meets its conditions and its limits leave something (a budget caps the grant).
 * The points add up to earnPoints.
 */
export function explainEarn(context: EarnContext, campaigns: readonly RuleCampaign[]): EarnExplanation {
  const { rules, quote } = context;
  const earnBase = BigInt(quote.eligibleAmount - quote.discount);
  const base = Number((earnBase * BigInt(rules.earnRateBp)) / (BP * BigInt(rules.pointValueMinor)));
  const breakdown: EarnBreakdownItem[] = [{ source: 'base', campaignId: null, name: 'Base', points: base }];
  if (quote.tier) {
    breakdown.push({
      source: 'tier',
      campaignId: null,
      name: quote.tier.name,
      points: quote.earnPoints - base,
    });
  }
  let earnPoints = quote.earnPoints;
  for (const campaign of [...campaigns].sort(byPriority)) {
    if (!isCampaignLive(campaign, context.at, context.timeZone)) continue;
    const points = Math.min(campaignPoints(campaign, context), allowance(campaign));
    if (points <= 0) continue;
    breakdown.push({ source: 'campaign', campaignId: campaign.id, name: campaign.name, points });
    earnPoints += points;
    if (campaign.exclusive) break;
  }
  return { earnPoints, earnBreakdown: breakdown };
}
