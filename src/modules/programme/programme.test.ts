import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  effectiveEarnRateBp,
  eligibleAmount,
  lotSchedule,
  proRataPoints,
  type QuoteInput,
  quotePurchase,
  RuleViolation,
  redeemCapPoints,
  selectTier,
} from './programme.rules.js';
import {
  DEFAULT_RULES,
  MAX_AMOUNT_MINOR,
  ProgrammeRules,
  Receipt,
  type ReceiptItem,
  type Tier,
} from './programme.schema.js';

const RUNS = { numRuns: 2000 };
const DAY_MS = 86_400_000;

const demo: ProgrammeRules = DEFAULT_RULES;
const silver: Tier = { name: 'silver', minSpend: 50_000, earnRateBp: 700 };
const gold: Tier = { name: 'gold', minSpend: 200_000, earnRateBp: 1000 };
const tiered: ProgrammeRules = { ...demo, tiers: [silver, gold] };

function quote(over: Partial<QuoteInput> & Pick<QuoteInput, 'receipt'>) {
  return quotePurchase({ rules: demo, redeemPoints: 0, availablePoints: 1_000_000, tierSpend: 0, ...over });
}

/** Captures the thrown RuleViolation so code and details can be asserted together. */
function violation(fn: () => unknown): RuleViolation {
  try {
    fn();
  } catch (err) {
    if (err instanceof RuleViolation) return err;
    throw err;
  }
  throw new Error('expected a RuleViolation');
}

/** Exact floor(a * b / c) as a reference that cannot be fooled by float rounding. */
function refMulDiv(a: number, b: number, c: number): number {
  return Number((BigInt(a) * BigInt(b)) / BigInt(c));
}

describe('quotePurchase worked examples (demo programme: 5%, 50%, 1 point = 100 minor)', () => {
  const cases: Array<{
    title: string;
    input: Partial<QuoteInput> & Pick<QuoteInput, 'receipt'>;
    expected: Partial<ReturnType<typeof quotePurchase>>;
  }> = [
    {
      title: '1000 roubles, no redeem -> earn 50',
      input: { receipt: { total: 100_000 } },
      expected: {
        earnPoints: 50,
        discount: 0,
        payable: 100_000,
        maxRedeemPoints: 500,
        eligibleAmount: 100_000,
      },
    },
    {
      title: 'redeem 500 -> discount 50000, payable 50000, earn 25',
      input: { receipt: { total: 100_000 }, redeemPoints: 500 },
      expected: {
        earnPoints: 25,
        discount: 50_000,
        payable: 50_000,
        redeemPoints: 500,
        maxRedeemPoints: 500,
      },
    },
    {
      title: 'cap on 100000 is 500',
      input: { receipt: { total: 100_000 }, availablePoints: 10_000 },
      expected: { maxRedeemPoints: 500 },
    },
    {
      title: 'available 120 limits maxRedeem to 120',
      input: { receipt: { total: 100_000 }, availablePoints: 120 },
      expected: { maxRedeemPoints: 120, earnPoints: 50 },
    },
    {
      title: 'negative balance is treated as 0',
      input: { receipt: { total: 100_000 }, availablePoints: -40 },
      expected: { maxRedeemPoints: 0, earnPoints: 50 },
    },
    {
      title: 'earn rounds down: 1999 -> 0',
      input: { receipt: { total: 1999 } },
      expected: { earnPoints: 0 },
    },
    {
      title: 'earn rounds down: 2000 -> 1',
      input: { receipt: { total: 2000 } },
      expected: { earnPoints: 1 },
    },
    {
      title: 'earn rounds down: 3999 -> 1',
      input: { receipt: { total: 3999 } },
      expected: { earnPoints: 1 },
    },
    {
      title: 'cap rounds down: 199 -> 0',
      input: { receipt: { total: 199 } },
      expected: { maxRedeemPoints: 0 },
    },
    {
      title: 'cap rounds down: 200 -> 1',
      input: { receipt: { total: 200 } },
      expected: { maxRedeemPoints: 1 },
    },
    {
      title: 'zero total',
      input: { receipt: { total: 0 } },
      expected: { earnPoints: 0, maxRedeemPoints: 0, discount: 0, payable: 0 },
    },
    {
      title: 'redeem leaving a non-multiple base: 100000 - 333*100 -> earn floor(66700*5%/100) = 33',
      input: { receipt: { total: 100_000 }, redeemPoints: 333 },
      expected: { earnPoints: 33, discount: 33_300, payable: 66_700 },
    },
    {
      title: 'excluded by flag: 30000 of 100000 excluded',
      input: {
        receipt: { total: 100_000, items: [{ amount: 30_000, excluded: true }, { amount: 70_000 }] },
      },
      expected: { eligibleAmount: 70_000, earnPoints: 35, maxRedeemPoints: 350, payable: 100_000 },
    },
    {
      title: 'excluded by category: tobacco 40000 of 100000',
      input: {
        rules: { ...demo, excludedCategories: ['tobacco'] },
        receipt: {
          total: 100_000,
          items: [
            { amount: 60_000, category: 'food' },
            { amount: 40_000, category: 'tobacco' },
          ],
        },
      },
      expected: { eligibleAmount: 60_000, earnPoints: 30, maxRedeemPoints: 300 },
    },
    {
      title: 'excluded by category with redeem: points only pay for eligible items',
      input: {
        rules: { ...demo, excludedCategories: ['tobacco'] },
        receipt: {
          total: 100_000,
          items: [
            { amount: 60_000, category: 'food' },
            { amount: 40_000, category: 'tobacco' },
          ],
        },
        redeemPoints: 300,
      },
      expected: { eligibleAmount: 60_000, discount: 30_000, payable: 70_000, earnPoints: 15 },
    },
    {
      title: 'category not in the excluded list is eligible; flag false is eligible',
      input: {
        rules: { ...demo, excludedCategories: ['tobacco'] },
        receipt: {
          total: 100_000,
          items: [
            { amount: 50_000, category: 'food', excluded: false },
            { amount: 50_000, category: 'Tobacco' },
          ],
        },
      },
      expected: { eligibleAmount: 100_000, earnPoints: 50 },
    },
    {
      title: 'all items excluded -> nothing earned, nothing redeemable',
      input: {
        receipt: { total: 5000, items: [{ amount: 5000, excluded: true }] },
      },
      expected: { eligibleAmount: 0, earnPoints: 0, maxRedeemPoints: 0, payable: 5000 },
    },
    {
      title: 'tier spend below first tier -> base rate',
      input: { rules: tiered, receipt: { total: 100_000 }, tierSpend: 49_999 },
      expected: { earnRateBp: 500, tier: null, earnPoints: 50 },
    },
    {
      title: 'tier spend exactly at minSpend -> that tier',
      input: { rules: tiered, receipt: { total: 100_000 }, tierSpend: 50_000 },
      expected: { earnRateBp: 700, tier: silver, earnPoints: 70 },
    },
    {
      title: 'highest qualifying tier wins',
      input: { rules: tiered, receipt: { total: 100_000 }, tierSpend: 1_000_000 },
      expected: { earnRateBp: 1000, tier: gold, earnPoints: 100 },
    },
    {
      title: 'tier with a lower rate than base replaces the base rate',
      input: {
        rules: { ...demo, tiers: [{ name: 'low', minSpend: 0, earnRateBp: 100 }] },
        receipt: { total: 100_000 },
      },
      expected: { earnRateBp: 100, earnPoints: 10 },
    },
    {
      title: 'pointValueMinor 1 and 100% redeem share',
      input: {
        rules: { ...demo, pointValueMinor: 1, maxRedeemShareBp: 10_000, earnRateBp: 10_000 },
        receipt: { total: 12_345 },
        redeemPoints: 12_345,
      },
      expected: { maxRedeemPoints: 12_345, discount: 12_345, payable: 0, earnPoints: 0 },
    },
    {
      title: 'zero earn rate and zero redeem share',
      input: { rules: { ...demo, earnRateBp: 0, maxRedeemShareBp: 0 }, receipt: { total: 100_000 } },
      expected: { earnPoints: 0, maxRedeemPoints: 0 },
    },
    {
      title: 'maximum amounts stay exact',
      input: {
        rules: { ...demo, pointValueMinor: 1, maxRedeemShareBp: 10_000, earnRateBp: 10_000 },
        receipt: { total: MAX_AMOUNT_MINOR },
        availablePoints: MAX_AMOUNT_MINOR,
      },
      expected: { earnPoints: MAX_AMOUNT_MINOR, maxRedeemPoints: MAX_AMOUNT_MINOR },
    },
  ];

  it.each(cases)('$title', ({ input, expected }) => {
    expect(quote(input)).toMatchObject(expected);
  });
});

describe('quotePurchase errors', () => {
  it('over cap -> redeem_limit_exceeded with requested and max', () => {
    const err = violation(() => quote({ receipt: { total: 100_000 }, redeemPoints: 501 }));
    expect(err.code).toBe('redeem_limit_exceeded');
    expect(err.details).toEqual({ requested: 501, max: 500 });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('RuleViolation');
  });

  it('over balance -> insufficient_points with requested and available', () => {
    const err = violation(() =>
      quote({ receipt: { total: 100_000 }, redeemPoints: 121, availablePoints: 120 }),
    );
    expect(err.code).toBe('insufficient_points');
    expect(err.details).toEqual({ requested: 121, available: 120 });
  });

  it('cap is checked before balance', () => {
    const err = violation(() =>
      quote({ receipt: { total: 100_000 }, redeemPoints: 600, availablePoints: 100 }),
    );
    expect(err.code).toBe('redeem_limit_exceeded');
  });

  it('negative balance reports available 0', () => {
    const err = violation(() => quote({ receipt: { total: 100_000 }, redeemPoints: 1, availablePoints: -7 }));
    expect(err.code).toBe('insufficient_points');
    expect(err.details).toEqual({ requested: 1, available: 0 });
  });

  it('redeem exactly at cap and exactly at balance is allowed', () => {
    expect(quote({ receipt: { total: 100_000 }, redeemPoints: 500, availablePoints: 500 }).redeemPoints).toBe(
      500,
    );
  });

  it('redeeming on a receipt with only excluded items is over the cap', () => {
    const receipt: Receipt = { total: 1000, items: [{ amount: 1000, excluded: true }] };
    expect(violation(() => quote({ receipt, redeemPoints: 1 })).code).toBe('redeem_limit_exceeded');
  });

  it.each([-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])(
    'redeemPoints %s is a RangeError',
    (redeemPoints) => {
      expect(() => quote({ receipt: { total: 100_000 }, redeemPoints })).toThrow(RangeError);
    },
  );

  it('non-integer availablePoints is a RangeError', () => {
    expect(() => quote({ receipt: { total: 100_000 }, availablePoints: 1.5 })).toThrow(RangeError);
  });
});

describe('selectTier / effectiveEarnRateBp', () => {
  it.each([
    [0, null, 500],
    [49_999, null, 500],
    [50_000, silver, 700],
    [199_999, silver, 700],
    [200_000, gold, 1000],
    [MAX_AMOUNT_MINOR, gold, 1000],
  ] as const)('spend %s -> tier %o, rate %s', (spend, tier, rate) => {
    expect(selectTier(tiered, spend)).toEqual(tier);
    expect(effectiveEarnRateBp(tiered, spend)).toBe(rate);
  });

  it('no tiers -> null and base rate', () => {
    expect(selectTier(demo, 1e9)).toBeNull();
    expect(effectiveEarnRateBp(demo, 1e9)).toBe(500);
  });

  it('picks the highest qualifying tier even when (unvalidated) tiers are out of order', () => {
    const rules = { ...demo, tiers: [gold, silver] };
    expect(selectTier(rules, 300_000)).toEqual(gold);
    expect(selectTier(rules, 60_000)).toEqual(silver);
  });
});

describe('eligibleAmount / redeemCapPoints', () => {
  it('without items the whole total is eligible', () => {
    expect(eligibleAmount(demo, { total: 777 })).toBe(777);
  });

  it('empty items with total 0', () => {
    expect(eligibleAmount(demo, { total: 0, items: [] })).toBe(0);
  });

  it('excludes by flag and category together', () => {
    const rules = { ...demo, excludedCategories: ['alcohol', 'tobacco'] };
    const receipt: Receipt = {
      total: 10_000,
      items: [
        { amount: 1000, category: 'alcohol' },
        { amount: 2000, category: 'tobacco', excluded: false },
        { amount: 3000, excluded: true },
        { amount: 4000, category: 'food' },
      ],
    };
    expect(eligibleAmount(rules, receipt)).toBe(4000);
    expect(redeemCapPoints(rules, receipt)).toBe(20);
  });

  it('cap = floor(eligible * share / 10000 / pointValue)', () => {
    expect(redeemCapPoints(demo, { total: 100_000 })).toBe(500);
    expect(redeemCapPoints({ ...demo, maxRedeemShareBp: 3333 }, { total: 100_000 })).toBe(333);
    expect(redeemCapPoints({ ...demo, pointValueMinor: 7 }, { total: 100 })).toBe(7);
  });
});

describe('proRataPoints', () => {
  it.each([
    [10, 0, 100, 0],
    [10, 33, 100, 3],
    [10, 66, 100, 6],
    [10, 99, 100, 9],
    [10, 100, 100, 10],
    [10, 150, 100, 10],
    [10, -5, 100, 0],
    [7, 0, 0, 7],
    [0, 50, 100, 0],
  ])('proRata(%s, %s, %s) = %s', (points, refunded, total, expected) => {
    expect(proRataPoints(points, refunded, total)).toBe(expected);
  });

  it('successive refunds 33 + 33 + 34 of 100 move 3, 3, 4 of 10 points', () => {
    const steps = [33, 66, 100].map((r) => proRataPoints(10, r, 100));
    expect(steps).toEqual([3, 6, 10]);
  });

  it('stays exact when points * refunded exceeds 2^53', () => {
    const big = MAX_AMOUNT_MINOR;
    expect(proRataPoints(big, big - 1, big)).toBe(big - 1);
  });

  it('rejects non-integer or negative points and total', () => {
    expect(() => proRataPoints(1.5, 1, 2)).toThrow(RangeError);
    expect(() => proRataPoints(-1, 1, 2)).toThrow(RangeError);
    expect(() => proRataPoints(1, 1, -2)).toThrow(RangeError);
    expect(() => proRataPoints(1, 0.5, 2)).toThrow(RangeError);
  });
});

describe('lotSchedule', () => {
  const now = new Date('2024-01-01T00:00:00.000Z');

  it('pending then lifetime, in whole 24h days', () => {
    const s = lotSchedule({ ...demo, pendingDays: 14, pointsLifetimeDays: 365 }, now);
    expect(s.availableAt.toISOString()).toBe('2024-01-15T00:00:00.000Z');
    expect(s.expiresAt?.toISOString()).toBe('2025-01-14T00:00:00.000Z');
  });

  it('no pending -> available now', () => {
    expect(lotSchedule(demo, now).availableAt.getTime()).toBe(now.getTime());
  });

  it('null lifetime -> never expires', () => {
    expect(lotSchedule({ ...demo, pointsLifetimeDays: null }, now).expiresAt).toBeNull();
  });

  it('does not mutate now', () => {
    lotSchedule({ ...demo, pendingDays: 3 }, now);
    expect(now.toISOString()).toBe('2024-01-01T00:00:00.000Z');
  });

  it('rejects an invalid date', () => {
    expect(() => lotSchedule(demo, new Date('nope'))).toThrow(RangeError);
  });
});

describe('schemas', () => {
  it('DEFAULT_RULES is valid', () => {
    expect(ProgrammeRules.parse(DEFAULT_RULES)).toEqual(DEFAULT_RULES);
  });

  it('accepts null lifetime and valid tiers', () => {
    expect(ProgrammeRules.safeParse({ ...tiered, pointsLifetimeDays: null }).success).toBe(true);
  });

  it('accepts a receipt whose items add up to total, with all optional fields', () => {
    const receipt = {
      total: 300,
      items: [
        { sku: 'A1', name: 'Milk', category: 'food', quantity: 1.5, amount: 100, excluded: false },
        { amount: 200 },
      ],
    };
    expect(Receipt.parse(receipt)).toEqual(receipt);
  });

  it('rejects items not adding up to total with path [items]', () => {
    const r = Receipt.safeParse({ total: 300, items: [{ amount: 100 }, { amount: 150 }] });
    expect(r.success).toBe(false);
    expect(r.error?.issues).toHaveLength(1);
    expect(r.error?.issues[0]?.path).toEqual(['items']);
    expect(r.error?.issues[0]?.message).toMatch(/add up to total/);
  });

  it('rejects empty items with a non-zero total', () => {
    const r = Receipt.safeParse({ total: 5, items: [] });
    expect(r.error?.issues[0]?.path).toEqual(['items']);
  });

  it.each([
    ['receipt', () => Receipt.safeParse({ total: 1, foo: 1 })],
    ['receipt item', () => Receipt.safeParse({ total: 1, items: [{ amount: 1, price: 1 }] })],
    ['rules', () => ProgrammeRules.safeParse({ ...DEFAULT_RULES, bonus: true })],
    ['tier', () => ProgrammeRules.safeParse({ ...DEFAULT_RULES, tiers: [{ ...silver, colour: 'grey' }] })],
  ])('rejects an unknown field on %s', (_what, parse) => {
    const r = parse();
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.code).toBe('unrecognized_keys');
  });

  it.each([-1, 1.5, MAX_AMOUNT_MINOR + 1, Number.NaN, Number.POSITIVE_INFINITY, '100'])(
    'rejects total %s',
    (total) => {
      expect(Receipt.safeParse({ total }).success).toBe(false);
    },
  );

  it.each([-1, 0.5, MAX_AMOUNT_MINOR + 1])('rejects item amount %s', (amount) => {
    expect(Receipt.safeParse({ total: 0, items: [{ amount }] }).success).toBe(false);
  });

  it.each([
    ['earnRateBp', 10_001],
    ['earnRateBp', -1],
    ['maxRedeemShareBp', 10_001],
    ['pointValueMinor', 0],
    ['pointValueMinor', 1.5],
    ['pointsLifetimeDays', 0],
    ['pointsLifetimeDays', 3651],
    ['pendingDays', 366],
    ['tierWindowDays', 0],
  ] as const)('rejects rules.%s = %s', (key, value) => {
    const r = ProgrammeRules.safeParse({ ...DEFAULT_RULES, [key]: value });
    expect(r.error?.issues[0]?.path).toEqual([key]);
  });

  it.each([
    ['equal', 50_000],
    ['decreasing', 40_000],
  ])('rejects tiers with %s minSpend, path [tiers, 1, minSpend]', (_what, minSpend) => {
    const r = ProgrammeRules.safeParse({ ...DEFAULT_RULES, tiers: [silver, { ...gold, minSpend }] });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path)).toEqual([['tiers', 1, 'minSpend']]);
  });

  it('rejects duplicate tier names with path [tiers, 1, name]', () => {
    const r = ProgrammeRules.safeParse({ ...DEFAULT_RULES, tiers: [silver, { ...gold, name: 'silver' }] });
    expect(r.error?.issues.map((i) => i.path)).toEqual([['tiers', 1, 'name']]);
  });

  it('rejects more than 20 tiers', () => {
    const tiers = Array.from({ length: 21 }, (_, i) => ({ name: `t${i}`, minSpend: i, earnRateBp: 1 }));
    expect(ProgrammeRules.safeParse({ ...DEFAULT_RULES, tiers }).success).toBe(false);
  });
});

// ---------- property tests ----------

const CATEGORIES = ['food', 'alcohol', 'tobacco', 'gift', 'misc'] as const;

const tiersArb: fc.Arbitrary<Tier[]> = fc
  .tuple(
    fc.uniqueArray(fc.integer({ min: 0, max: MAX_AMOUNT_MINOR }), { maxLength: 6 }),
    fc.array(fc.integer({ min: 0, max: 10_000 }), { minLength: 6, maxLength: 6 }),
  )
  .map(([spends, rates]) =>
    [...spends]
      .sort((a, b) => a - b)
      .map((minSpend, i) => ({ name: `tier-${i}`, minSpend, earnRateBp: rates[i] ?? 0 })),
  );

const rulesArb: fc.Arbitrary<ProgrammeRules> = fc.record({
  earnRateBp: fc.integer({ min: 0, max: 10_000 }),
  maxRedeemShareBp: fc.integer({ min: 0, max: 10_000 }),
  // Small point values exercise large point counts; large ones exercise caps rounding to 0.
  pointValueMinor: fc.oneof(fc.constantFrom(1, 10, 100, 1000), fc.integer({ min: 1, max: 1_000_000 })),
  pointsLifetimeDays: fc.option(fc.integer({ min: 1, max: 3650 }), { nil: null }),
  pendingDays: fc.integer({ min: 0, max: 365 }),
  tierWindowDays: fc.integer({ min: 1, max: 3650 }),
  tiers: tiersArb,
  excludedCategories: fc.subarray([...CATEGORIES]),
});

const itemArb: fc.Arbitrary<ReceiptItem> = fc.record(
  {
    category: fc.constantFrom(...CATEGORIES),
    excluded: fc.boolean(),
    quantity: fc.integer({ min: 1, max: 1000 }),
    // 20 items * 5e9 stays within the receipt total bound.
    amount: fc.oneof(fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 0, max: 5_000_000_000 })),
  },
  { requiredKeys: ['amount'] },
);

const receiptArb: fc.Arbitrary<Receipt> = fc.oneof(
  fc.record({
    total: fc.oneof(fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 0, max: MAX_AMOUNT_MINOR })),
  }),
  fc
    .array(itemArb, { maxLength: 20 })
    .map((items) => ({ total: items.reduce((acc, item) => acc + item.amount, 0), items })),
);

const spendArb = fc.oneof(fc.integer({ min: 0, max: MAX_AMOUNT_MINOR }), fc.constant(0));

/** A valid quote request: redeem within both cap and balance, so quotePurchase must not throw. */
const okQuoteArb: fc.Arbitrary<QuoteInput> = fc
  .record({
    rules: rulesArb,
    receipt: receiptArb,
    tierSpend: spendArb,
    availablePoints: fc.oneof(
      fc.integer({ min: -1000, max: 1000 }),
      fc.integer({ min: 0, max: MAX_AMOUNT_MINOR }),
    ),
  })
  .chain((base) => {
    const max = Math.min(redeemCapPoints(base.rules, base.receipt), Math.max(0, base.availablePoints));
    return fc
      .oneof(fc.integer({ min: 0, max }), fc.constant(max), fc.constant(0))
      .map((redeemPoints) => ({ ...base, redeemPoints }));
  });

describe('properties', () => {
  it('generated rules and receipts are valid under the schemas', () => {
    fc.assert(
      fc.property(rulesArb, receiptArb, (rules, receipt) => {
        expect(ProgrammeRules.safeParse(rules).success).toBe(true);
        expect(Receipt.safeParse(receipt).success).toBe(true);
      }),
      RUNS,
    );
  });

  it('quote invariants: integers, discount within share, payable + discount = total, maxRedeem', () => {
    fc.assert(
      fc.property(okQuoteArb, (input) => {
        const { rules, receipt } = input;
        const q = quotePurchase(input);
        const cap = redeemCapPoints(rules, receipt);
        for (const v of [q.earnPoints, q.maxRedeemPoints, q.discount, q.payable, q.eligibleAmount]) {
          expect(Number.isSafeInteger(v)).toBe(true);
          expect(v).toBeGreaterThanOrEqual(0);
        }
        expect(BigInt(q.discount) * 10_000n).toBeLessThanOrEqual(
          BigInt(q.eligibleAmount) * BigInt(rules.maxRedeemShareBp),
        );
        expect(q.payable + q.discount).toBe(receipt.total);
        expect(q.maxRedeemPoints).toBeLessThanOrEqual(Math.max(0, input.availablePoints));
        expect(q.maxRedeemPoints).toBeLessThanOrEqual(cap);
        expect(q.maxRedeemPoints).toBe(Math.min(cap, Math.max(0, input.availablePoints)));
        expect(q.eligibleAmount).toBeLessThanOrEqual(receipt.total);
        expect(q.redeemPoints).toBe(input.redeemPoints);
        expect(q.earnRateBp).toBe(effectiveEarnRateBp(rules, input.tierSpend));
        expect(q.tier).toEqual(selectTier(rules, input.tierSpend));
      }),
      RUNS,
    );
  });

  it('earn with redeem r equals floor((eligible - r * pv) * rate / (10000 * pv)) exactly', () => {
    fc.assert(
      fc.property(okQuoteArb, (input) => {
        const { rules } = input;
        const q = quotePurchase(input);
        const pv = rules.pointValueMinor;
        const expected = refMulDiv(q.eligibleAmount - input.redeemPoints * pv, q.earnRateBp, 10_000 * pv);
        expect(q.earnPoints).toBe(expected);
        // The float formula agrees too: every product stays below 2^53 under the schema bounds.
        expect(q.earnPoints).toBe(
          Math.floor(((q.eligibleAmount - input.redeemPoints * pv) * q.earnRateBp) / (10_000 * pv)),
        );
      }),
      RUNS,
    );
  });

  it('eligibleAmount is the sum of non-excluded item amounts', () => {
    fc.assert(
      fc.property(rulesArb, receiptArb, (rules, receipt) => {
        const expected =
          receipt.items === undefined
            ? receipt.total
            : receipt.items
                .filter((i) => i.excluded !== true && !rules.excludedCategories.includes(i.category ?? ''))
                .reduce((acc, i) => acc + i.amount, 0);
        expect(eligibleAmount(rules, receipt)).toBe(expected);
      }),
      RUNS,
    );
  });

  it('selectTier returns the tier with the highest minSpend <= spend', () => {
    fc.assert(
      fc.property(rulesArb, spendArb, (rules, spend) => {
        const qualifying = rules.tiers.filter((t) => t.minSpend <= spend);
        const expected = qualifying.reduce<Tier | null>(
          (best, t) => (best === null || t.minSpend > best.minSpend ? t : best),
          null,
        );
        expect(selectTier(rules, spend)).toEqual(expected);
      }),
      RUNS,
    );
  });

  it('earn is monotone non-decreasing in total (no items, no redeem)', () => {
    fc.assert(
      fc.property(
        rulesArb,
        spendArb,
        fc.integer({ min: 0, max: MAX_AMOUNT_MINOR }),
        fc.integer({ min: 0, max: MAX_AMOUNT_MINOR }),
        (rules, tierSpend, a, b) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const earn = (total: number) =>
            quotePurchase({ rules, receipt: { total }, redeemPoints: 0, availablePoints: 0, tierSpend })
              .earnPoints;
          expect(earn(lo)).toBeLessThanOrEqual(earn(hi));
        },
      ),
      RUNS,
    );
  });

  it('redeeming more never increases earn', () => {
    fc.assert(
      fc.property(
        rulesArb,
        receiptArb,
        spendArb,
        fc.integer({ min: 0, max: 2 ** 31 }),
        fc.integer({ min: 0, max: 2 ** 31 }),
        (rules, receipt, tierSpend, x, y) => {
          const cap = redeemCapPoints(rules, receipt);
          const r1 = cap === 0 ? 0 : Math.min(x, y) % (cap + 1);
          const r2 = cap === 0 ? 0 : Math.max(r1, Math.max(x, y) % (cap + 1));
          const earn = (redeemPoints: number) =>
            quotePurchase({ rules, receipt, redeemPoints, availablePoints: cap, tierSpend }).earnPoints;
          expect(earn(r2)).toBeLessThanOrEqual(earn(r1));
        },
      ),
      RUNS,
    );
  });

  it('redeem above the cap always fails with redeem_limit_exceeded, regardless of balance', () => {
    fc.assert(
      fc.property(
        rulesArb,
        receiptArb,
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: -10, max: MAX_AMOUNT_MINOR }),
        (rules, receipt, over, availablePoints) => {
          const cap = redeemCapPoints(rules, receipt);
          const input = { rules, receipt, redeemPoints: cap + over, availablePoints, tierSpend: 0 };
          const err = violation(() => quotePurchase(input));
          expect(err.code).toBe('redeem_limit_exceeded');
          expect(err.details).toEqual({ requested: cap + over, max: cap });
        },
      ),
      RUNS,
    );
  });

  it('redeem within the cap but above the balance fails with insufficient_points', () => {
    fc.assert(
      fc.property(
        rulesArb,
        receiptArb,
        fc.integer({ min: 0, max: 2 ** 31 }),
        fc.integer({ min: 1, max: 1000 }),
        (rules, receipt, seed, short) => {
          const cap = redeemCapPoints(rules, receipt);
          fc.pre(cap > 0);
          const redeemPoints = (seed % cap) + 1;
          const availablePoints = redeemPoints - short;
          const err = violation(() =>
            quotePurchase({ rules, receipt, redeemPoints, availablePoints, tierSpend: 0 }),
          );
          expect(err.code).toBe('insufficient_points');
          expect(err.details).toEqual({ requested: redeemPoints, available: Math.max(0, availablePoints) });
        },
      ),
      RUNS,
    );
  });

  it('partial refunds summing to total move exactly points, each increment >= 0', () => {
    const refundsArb = fc.oneof(
      // Arbitrary refund amounts; total is their sum.
      fc.array(fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 5_000_000_000 })), {
        maxLength: 30,
      }),
      // Many tiny refunds of a small total, where rounding matters most.
      fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 50 }),
    );
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: MAX_AMOUNT_MINOR })),
        refundsArb,
        (anyPoints, refunds) => {
          const total = refunds.reduce((a, b) => a + b, 0);
          // A zero-total receipt always earns 0 points (earn is a share of total), and proRata of a zero
          // total is already "all points" before any refund, so only points = 0 is reachable there.
          const points = total === 0 ? 0 : anyPoints;
          let refunded = 0;
          let moved = 0;
          for (const amount of refunds) {
            const before = proRataPoints(points, refunded, total);
            refunded += amount;
            const after = proRataPoints(points, refunded, total);
            expect(after - before).toBeGreaterThanOrEqual(0);
            expect(after).toBeLessThanOrEqual(points);
            moved += after - before;
          }
          expect(moved).toBe(points);
        },
      ),
      RUNS,
    );
  });

  it('proRataPoints equals exact floor(points * refunded / total) within range', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: MAX_AMOUNT_MINOR }),
        fc.integer({ min: 1, max: MAX_AMOUNT_MINOR }),
        fc.integer({ min: 0, max: 2 ** 31 }),
        (points, total, seed) => {
          const refunded = seed % (total + 1);
          expect(proRataPoints(points, refunded, total)).toBe(refMulDiv(points, refunded, total));
        },
      ),
      RUNS,
    );
  });

  it('lotSchedule: availableAt = now + pending days, expiresAt - availableAt = lifetime days', () => {
    fc.assert(
      fc.property(
        rulesArb,
        fc.date({
          min: new Date('2000-01-01T00:00:00Z'),
          max: new Date('2100-01-01T00:00:00Z'),
          noInvalidDate: true,
        }),
        (rules, now) => {
          const { availableAt, expiresAt } = lotSchedule(rules, now);
          expect(availableAt.getTime() - now.getTime()).toBe(rules.pendingDays * DAY_MS);
          if (rules.pointsLifetimeDays === null) {
            expect(expiresAt).toBeNull();
          } else {
            expect(expiresAt?.getTime()).toBe(availableAt.getTime() + rules.pointsLifetimeDays * DAY_MS);
          }
        },
      ),
      RUNS,
    );
  });
});
