import type { ProgrammeRules, Receipt, ReceiptItem, Tier } from './programme.schema.js';

const BP_SCALE = 10_000n;
const MS_PER_DAY = 86_400_000;

/** A business-rule rejection of a quote/commit request, mapped to a 4xx by the API layer. */
export class RuleViolation extends Error {
  override readonly name = 'RuleViolation';

  constructor(
    readonly code: 'redeem_limit_exceeded' | 'insufficient_points',
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** floor(a * b / c) for non-negative safe integers, in BigInt because refund products can exceed 2^53. */
function mulDivFloor(a: number, b: number, c: bigint): number {
  return Number((BigInt(a) * BigInt(b)) / c);
}

/** Rejects values that would silently corrupt integer point/money arithmetic; these are programmer errors. */
function assertNonNegativeInt(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative safe integer, got ${value}`);
  }
}

/** The tier a customer is in for a given spend: the tier with the highest minSpend <= spend, or null. */
export function selectTier(rules: ProgrammeRules, spend: number): Tier | null {
  // Scans instead of relying on sort order so unvalidated rules still select the highest qualifying tier.
  let best: Tier | null = null;
  for (const tier of rules.tiers) {
    if (tier.minSpend <= spend && (best === null || tier.minSpend > best.minSpend)) best = tier;
  }
  return best;
}

/** The earn rate that applies: the selected tier's earnRateBp, or the base earnRateBp without a tier. */
export function effectiveEarnRateBp(rules: ProgrammeRules, spend: number): number {
  return selectTier(rules, spend)?.earnRateBp ?? rules.earnRateBp;
}

/** Whether a line is excluded from earning and redemption, by flag or by its category. */
export function isExcludedItem(rules: ProgrammeRules, item: ReceiptItem): boolean {
  return (
    item.excluded === true ||
    (item.category !== undefined && rules.excludedCategories.includes(item.category))
  );
}

/** Eligible amount: total minus excluded items (by flag or category); without items, the whole total. */
export function eligibleAmount(rules: ProgrammeRules, receipt: Receipt): number {
  if (receipt.items === undefined) return receipt.total;
  let excluded = 0;
  for (const item of receipt.items) {
    if (isExcludedItem(rules, item)) excluded += item.amount;
  }
  // The schema guarantees items sum to total; clamping only keeps an unvalidated receipt from going negative.
  return Math.min(receipt.total, Math.max(0, receipt.total - excluded));
}

/** Receipt cap in points: floor(eligible * maxRedeemShareBp / 10000 / pointValueMinor). */
export function redeemCapPoints(rules: ProgrammeRules, receipt: Receipt): number {
  return mulDivFloor(
    eligibleAmount(rules, receipt),
    rules.maxRedeemShareBp,
    BP_SCALE * BigInt(rules.pointValueMinor),
  );
}

/** Input of quotePurchase: tierSpend is the customer's spend in the tier window before this receipt. */
export interface QuoteInput {
  rules: ProgrammeRules;
  receipt: Receipt;
  redeemPoints: number;
  availablePoints: number;
  tierSpend: number;
}

/** Outcome of applying the programme to a receipt; all amounts are integer minor units or points. */
export interface QuoteResult {
  earnPoints: number;
  maxRedeemPoints: number;
  redeemPoints: number;
  discount: number;
  payable: number;
  eligibleAmount: number;
  earnRateBp: number;
  tier: Tier | null;
}

/** Applies the programme to a receipt: used identically by quote and commit so both always agree. */
export function quotePurchase(input: QuoteInput): QuoteResult {
  const { rules, receipt, redeemPoints } = input;
  assertNonNegativeInt('redeemPoints', redeemPoints);
  if (!Number.isSafeInteger(input.availablePoints)) {
    throw new RangeError(`availablePoints must be a safe integer, got ${input.availablePoints}`);
  }
  // A negative balance (e.g. after a refund clawback) means nothing can be redeemed, not a negative limit.
  const available = Math.max(0, input.availablePoints);
  const eligible = eligibleAmount(rules, receipt);
  const capPoints = redeemCapPoints(rules, receipt);

  // Cap first: it depends only on the receipt, so the client can correct the request whatever the balance.
  if (redeemPoints > capPoints) {
    throw new RuleViolation(
      'redeem_limit_exceeded',
      `Cannot redeem ${redeemPoints} points: at most ${capPoints} may be redeemed on this receipt`,
      { requested: redeemPoints, max: capPoints },
    );
  }
  if (redeemPoints > available) {
    throw new RuleViolation(
      'insufficient_points',
      `Cannot redeem ${redeemPoints} points: only ${available} available`,
      { requested: redeemPoints, available },
    );
  }

  const tier = selectTier(rules, input.tierSpend);
  const earnRateBp = tier?.earnRateBp ?? rules.earnRateBp;
  // redeemPoints <= cap implies discount <= eligible * share <= eligible <= total.
  const discount = redeemPoints * rules.pointValueMinor;
  // Points pay only for eligible items, so money actually paid for eligible items is eligible - discount.
  const earnBase = eligible - discount;
  const earnPoints = mulDivFloor(earnBase, earnRateBp, BP_SCALE * BigInt(rules.pointValueMinor));

  return {
    earnPoints,
    maxRedeemPoints: Math.min(capPoints, available),
    redeemPoints,
    discount,
    payable: receipt.total - discount,
    eligibleAmount: eligible,
    earnRateBp,
    tier,
  };
}

/** Points share of a cumulative refund, floor(points * refundedSoFar / total); total 0 -> all points. */
export function proRataPoints(points: number, refundedSoFar: number, total: number): number {
  assertNonNegativeInt('points', points);
  assertNonNegativeInt('total', total);
  if (!Number.isSafeInteger(refundedSoFar)) {
    throw new RangeError(`refundedSoFar must be a safe integer, got ${refundedSoFar}`);
  }
  // Clamping to [0, points] means an over-refund never claws back more than was earned; a full refund
  // returns exactly points, so successive increments proRata(after) - proRata(before) sum to points.
  if (refundedSoFar >= total) return points;
  if (refundedSoFar <= 0) return 0;
  return mulDivFloor(points, refundedSoFar, BigInt(total));
}

/** When an earned lot becomes available and when it expires. */
export function lotSchedule(rules: ProgrammeRules, now: Date): { availableAt: Date; expiresAt: Date | null } {
  const start = now.getTime();
  if (Number.isNaN(start)) throw new RangeError('now must be a valid Date');
  // Days are fixed 24h periods in UTC so schedules never shift with DST or server time zone.
  const availableAt = new Date(start + rules.pendingDays * MS_PER_DAY);
  const expiresAt =
    rules.pointsLifetimeDays === null
      ? null
      : new Date(availableAt.getTime() + rules.pointsLifetimeDays * MS_PER_DAY);
  return { availableAt, expiresAt };
}
