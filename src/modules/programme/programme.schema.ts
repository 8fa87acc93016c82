import { z } from 'zod';
import { text } from '../../lib/text.js';

/** Upper bound for any money amount in minor units; keeps every integer product below 2^53. */
export const MAX_AMOUNT_MINOR = 100_000_000_000;

/** A spend tier: reaching minSpend within the rolling window switches the earn rate to earnRateBp. */
export const Tier = z.strictObject({
  name: text(1, 64),
  // Minor units spent in the rolling window to reach this tier.
  minSpend: z.int().min(0).max(MAX_AMOUNT_MINOR),
  // Earn rate of this tier in basis points; replaces (does not add to) the base rate.
  earnRateBp: z.int().min(0).max(10_000),
});
/** A validated spend tier. */
export type Tier = z.infer<typeof Tier>;

/** A merchant's programme configuration; tiers need unique names and strictly increasing minSpend. */
export const ProgrammeRules = z
  .strictObject({
    // Base earn rate in basis points of the money-paid eligible amount (500 = 5%).
    earnRateBp: z.int().min(0).max(10_000),
    // Max share of the redeem-eligible receipt amount payable by points (5000 = 50%).
    maxRedeemShareBp: z.int().min(0).max(10_000),
    // Value of one point in minor units (100 = 1 rouble).
    pointValueMinor: z.int().min(1).max(1_000_000),
    // null = points never expire.
    pointsLifetimeDays: z.int().min(1).max(3650).nullable(),
    // Days before earned points become available (a cooling-off period for returns).
    pendingDays: z.int().min(0).max(365),
    // Rolling window over which spend is summed for tier selection.
    tierWindowDays: z.int().min(1).max(3650),
    tiers: z.array(Tier).max(20),
    // Receipt item categories excluded from both earning and redemption.
    excludedCategories: z.array(text(1, 64)).max(100),
  })
  .superRefine((rules, ctx) => {
    // Strictly increasing minSpend makes tier selection unambiguous; unique names keep reports readable.
    const seen = new Set<string>();
    rules.tiers.forEach((tier, i) => {
      if (seen.has(tier.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['tiers', i, 'name'],
          message: `Duplicate tier name "${tier.name}"`,
        });
      }
      seen.add(tier.name);
      const prev = i > 0 ? rules.tiers[i - 1] : undefined;
      if (prev !== undefined && tier.minSpend <= prev.minSpend) {
        ctx.addIssue({
          code: 'custom',
          path: ['tiers', i, 'minSpend'],
          message: `Tier minSpend must be strictly greater than the previous tier's (${prev.minSpend})`,
        });
      }
    });
  });
/** Validated programme rules. */
export type ProgrammeRules = z.infer<typeof ProgrammeRules>;

/** Rules of the demo programme: 5% earn, up to 50% payable by points, 1 point = 1 rouble, 1-year lifetime. */
export const DEFAULT_RULES: ProgrammeRules = {
  earnRateBp: 500,
  maxRedeemShareBp: 5000,
  pointValueMinor: 100,
  pointsLifetimeDays: 365,
  pendingDays: 0,
  tierWindowDays: 365,
  tiers: [],
  excludedCategories: [],
};

/** One receipt line; only amount, category and excluded affect the programme, the rest is informational. */
export const ReceiptItem = z.strictObject({
  sku: text(1, 128).optional(),
  name: text(1, 256).optional(),
  category: text(1, 64).optional(),
  // Informational only: amounts are line totals, so quantity never enters the arithmetic.
  quantity: z.number().positive().max(1_000_000).optional(),
  // Line total in minor units.
  amount: z.int().min(0).max(MAX_AMOUNT_MINOR),
  // Excluded from earning and redemption (e.g. tobacco, gift cards).
  excluded: z.boolean().optional(),
});
/** A validated receipt line. */
export type ReceiptItem = z.infer<typeof ReceiptItem>;

/** A purchase receipt; when items are given their amounts must add up exactly to total. */
export const Receipt = z
  .strictObject({
    total: z.int().min(0).max(MAX_AMOUNT_MINOR),
    items: z.array(ReceiptItem).max(1000).optional(),
  })
  .superRefine((receipt, ctx) => {
    // A mismatch would let excluded items be silently mis-attributed, so it is rejected rather than fixed up.
    if (receipt.items === undefined) return;
    const sum = receipt.items.reduce((acc, item) => acc + item.amount, 0);
    if (sum !== receipt.total) {
      ctx.addIssue({
        code: 'custom',
        path: ['items'],
        message: `Item amounts must add up to total: items sum to ${sum}, total is ${receipt.total}`,
      });
    }
  });
/** A validated receipt. */
export type Receipt = z.infer<typeof Receipt>;
