import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { quotePurchase } from '../programme/programme.rules.js';
import { DEFAULT_RULES, type ProgrammeRules, type Receipt } from '../programme/programme.schema.js';
import { explainEarn, isInSchedule, type RuleCampaign } from './campaigns.rules.js';
import type { CampaignSchedule } from './campaigns.schema.js';

const OUTLET = '11111111-1111-4111-8111-111111111111';
const OTHER_OUTLET = '22222222-2222-4222-8222-222222222222';
// A Wednesday, 12:00 in Moscow (UTC+3 all year).
const WEDNESDAY_NOON = new Date('2026-06-17T09:00:00Z');

let counter = 0;
function campaign(overrides: Partial<RuleCampaign> = {}): RuleCampaign {
  counter += 1;
  return {
    id: `00000000-0000-4000-8000-${String(counter).padStart(12, '0')}`,
    name: `Campaign ${counter}`,
    kind: 'bonus_points',
    status: 'active',
    startsAt: null,
    endsAt: null,
    schedule: null,
    conditions: {},
    effect: { points: 10 },
    limits: {},
    priority: 0,
    exclusive: false,
    grantedPoints: 0,
    customerGrants: 0,
    ...overrides,
  };
}

function explain(
  campaigns: RuleCampaign[],
  options: {
    receipt?: Receipt;
    rules?: ProgrammeRules;
    at?: Date;
    timeZone?: string;
    outletId?: string | null;
    redeemPoints?: number;
    tierSpend?: number;
  } = {},
) {
  const rules = options.rules ?? DEFAULT_RULES;
  const receipt = options.receipt ?? { total: 100_000 };
  const quote = quotePurchase({
    rules,
    receipt,
    redeemPoints: options.redeemPoints ?? 0,
    availablePoints: 1_000_000,
    tierSpend: options.tierSpend ?? 0,
  });
  return explainEarn(
    {
      rules,
      receipt,
      quote,
      at: options.at ?? WEDNESDAY_NOON,
      timeZone: options.timeZone ?? 'Europe/Moscow',
      outletId: options.outletId === undefined ? OUTLET : options.outletId,
    },
    campaigns,
  );
}

function campaignPoints(result: ReturnType<typeof explain>): Record<string, number> {
  return Object.fromEntries(
    result.earnBreakdown.filter((i) => i.source === 'campaign').map((i) => [i.name, i.points]),
  );
}

describe('earn breakdown without campaigns', () => {
  it('is the base earn alone, or base plus the tier difference', () => {
    expect(explain([]).earnBreakdown).toEqual([
      { source: 'base', campaignId: null, name: 'Base', points: 50 },
    ]);
    const rules = { ...DEFAULT_RULES, tiers: [{ name: 'Gold', minSpend: 0, earnRateBp: 800 }] };
    const result = explain([], { rules });
    expect(result.earnPoints).toBe(80);
    expect(result.earnBreakdown).toEqual([
      { source: 'base', campaignId: null, name: 'Base', points: 50 },
      { source: 'tier', campaignId: null, name: 'Gold', points: 30 },
    ]);
  });
});

describe('campaign effects and conditions', () => {
  it('a x2 multiplier doubles the programme earn; bonus points add once', () => {
    const x2 = campaign({ name: 'x2', kind: 'multiplier', effect: { multiplierBp: 20_000 } });
    const bonus = campaign({ name: 'bonus', effect: { points: 25 } });
    const result = explain([x2, bonus]);
    expect(campaignPoints(result)).toEqual({ x2: 50, bonus: 25 });
    expect(result.earnPoints).toBe(125);
  });

  it('a multiplier counts only the lines of its categories that earn, after the points discount', () => {
    const x3 = campaign({
      name: 'coffee x3',
      kind: 'multiplier',
      effect: { multiplierBp: 30_000 },
      conditions: { categories: ['coffee'] },
    });
    const receipt = {
      total: 100_000,
      items: [
        { category: 'coffee', amount: 40_000 },
        { category: 'food', amount: 40_000 },
        { category: 'coffee', amount: 20_000, excluded: true },
      ],
    };
    // Eligible 80 000; coffee earns 5% of 40 000 = 20 points; x3 adds 40.
    expect(campaignPoints(explain([x3], { receipt }))).toEqual({ 'coffee x3': 40 });
    // 200 points (20 000) paid for the eligible 80 000: coffee's money-paid share is 30 000 -> 15 -> +30.
    expect(campaignPoints(explain([x3], { receipt, redeemPoints: 200 }))).toEqual({ 'coffee x3': 30 });
    // Without lines of that category, or without lines at all, nothing.
    expect(campaignPoints(explain([x3], { receipt: { total: 100_000 } }))).toEqual({});
  });

  it('bonus points need a line of the category, the outlet, the tier and the minimum total', () => {
    const receipt = { total: 50_000, items: [{ category: 'tea', amount: 50_000 }] };
    const gold = { ...DEFAULT_RULES, tiers: [{ name: 'Gold', minSpend: 100, earnRateBp: 500 }] };
    const cases: Array<[Partial<RuleCampaign['conditions']>, Parameters<typeof explain>[1], boolean]> = [
      [{ categories: ['tea'] }, { receipt }, true],
      [{ categories: ['coffee'] }, { receipt }, false],
      [{ outletIds: [OUTLET] }, {}, true],
      [{ outletIds: [OTHER_OUTLET] }, {}, false],
      [{ outletIds: [OUTLET] }, { outletId: null }, false],
      [{ tiers: ['Gold'] }, { rules: gold, tierSpend: 100 }, true],
      [{ tiers: ['Gold'] }, { rules: gold, tierSpend: 99 }, false],
      [{ minTotal: 100_000 }, {}, true],
      [{ minTotal: 100_001 }, {}, false],
      [{ minTotal: 50_000, categories: ['tea'] }, { receipt }, true],
    ];
    for (const [conditions, options, applies] of cases) {
      const result = explain([campaign({ name: 'c', conditions })], options);
      expect(campaignPoints(result), JSON.stringify(conditions)).toEqual(applies ? { c: 10 } : {});
    }
  });

  it('applies only active campaigns within startsAt (inclusive) and endsAt (exclusive)', () => {
    const at = WEDNESDAY_NOON;
    const later = new Date(at.getTime() + 1);
    for (const [overrides, applies] of [
      [{ status: 'draft' }, false],
      [{ status: 'paused' }, false],
      [{ status: 'ended' }, false],
      [{ startsAt: at }, true],
      [{ startsAt: later }, false],
      [{ endsAt: later }, true],
      [{ endsAt: at }, false],
    ] as Array<[Partial<RuleCampaign>, boolean]>) {
      expect(campaignPoints(explain([campaign({ name: 'c', ...overrides })], { at }))).toEqual(
        applies ? { c: 10 } : {},
      );
    }
  });

  it('welcome, birthday and referral campaigns add nothing to a purchase', () => {
    const kinds = ['welcome', 'birthday', 'referral'] as const;
    const result = explain(kinds.map((kind) => campaign({ kind, effect: { points: 5, daysBefore: 0 } })));
    expect(result.earnBreakdown).toHaveLength(1);
  });
});

describe('stacking', () => {
  it('an exclusive campaign that applies stops those of lower priority, not higher ones', () => {
    const high = campaign({ name: 'high', priority: 10 });
    const exclusive = campaign({ name: 'exclusive', priority: 5, exclusive: true, effect: { points: 7 } });
    const low = campaign({ name: 'low', priority: 1 });
    expect(campaignPoints(explain([low, exclusive, high]))).toEqual({ high: 10, exclusive: 7 });
    // An exclusive campaign that does not apply stops nothing.
    const notHere = campaign({ ...exclusive, id: exclusive.id, conditions: { minTotal: 10_000_000 } });
    expect(campaignPoints(explain([low, notHere, high]))).toEqual({ high: 10, low: 10 });
  });

  it('lists campaigns in priority order', () => {
    const a = campaign({ name: 'a', priority: 1 });
    const b = campaign({ name: 'b', priority: 3 });
    const c = campaign({ name: 'c', priority: 2 });
    const names = explain([a, b, c]).earnBreakdown.map((i) => i.name);
    expect(names).toEqual(['Base', 'b', 'c', 'a']);
  });
});

describe('limits', () => {
  it('perCustomer stops a campaign for a customer who had that many grants', () => {
    const limited = { name: 'c', limits: { perCustomer: 2 } };
    expect(campaignPoints(explain([campaign({ ...limited, customerGrants: 1 })]))).toEqual({ c: 10 });
    expect(campaignPoints(explain([campaign({ ...limited, customerGrants: 2 })]))).toEqual({});
  });

  it('totalPoints caps the grant at what is left of the budget', () => {
    const budget = { name: 'c', limits: { totalPoints: 100 } };
    expect(campaignPoints(explain([campaign({ ...budget, grantedPoints: 95 })]))).toEqual({ c: 5 });
    expect(campaignPoints(explain([campaign({ ...budget, grantedPoints: 100 })]))).toEqual({});
  });
});

describe('schedules on the merchant clocks', () => {
  const friday22to02: CampaignSchedule = { weekdays: [5], from: '22:00', to: '02:00' };
  // 2026-06-19 is a Friday; Moscow is UTC+3.
  const moscow = (local: string) => new Date(`${local}+03:00`);

  it('a window across midnight belongs to the day it starts on', () => {
    const cases: Array<[string, boolean]> = [
      ['2026-06-19T21:59:00', false],
      ['2026-06-19T22:00:00', true],
      ['2026-06-19T23:59:00', true],
      ['2026-06-20T00:00:00', true],
      ['2026-06-20T01:59:00', true],
      ['2026-06-20T02:00:00', false],
      ['2026-06-18T23:00:00', false], // Thursday night
      ['2026-06-20T23:00:00', false], // Saturday night
      ['2026-06-19T01:00:00', false], // early Friday belongs to Thursday's window
    ];
    for (const [local, expected] of cases) {
      expect(isInSchedule(friday22to02, moscow(local), 'Europe/Moscow'), local).toBe(expected);
    }
  });

  it('reads the weekday and time in the merchant zone, not UTC', () => {
    const mondayMorning: CampaignSchedule = { weekdays: [1], from: '08:00', to: '11:00' };
    // Monday 09:00 in Vladivostok (UTC+10) is Sunday 23:00 UTC.
    const at = new Date('2026-06-14T23:00:00Z');
    expect(isInSchedule(mondayMorning, at, 'Asia/Vladivostok')).toBe(true);
    expect(isInSchedule(mondayMorning, at, 'UTC')).toBe(false);
  });

  it('from = to is the whole day', () => {
    const sunday: CampaignSchedule = { weekdays: [7], from: '00:00', to: '00:00' };
    expect(isInSchedule(sunday, moscow('2026-06-21T00:00:00'), 'Europe/Moscow')).toBe(true);
    expect(isInSchedule(sunday, moscow('2026-06-21T23:59:00'), 'Europe/Moscow')).toBe(true);
    expect(isInSchedule(sunday, moscow('2026-06-22T00:00:00'), 'Europe/Moscow')).toBe(false);
  });

  it('follows DST: the skipped hour never matches, the repeated hour matches twice', () => {
    // New York springs forward on 2026-03-08 (Sunday) at 02:00 EST -> 03:00 EDT.
    const sunday0130to0330: CampaignSchedule = { weekdays: [7], from: '01:30', to: '03:30' };
    expect(isInSchedule(sunday0130to0330, new Date('2026-03-08T06:45:00Z'), 'America/New_York')).toBe(true); // 01:45 EST
    expect(isInSchedule(sunday0130to0330, new Date('2026-03-08T07:15:00Z'), 'America/New_York')).toBe(true); // 03:15 EDT
    expect(isInSchedule(sunday0130to0330, new Date('2026-03-08T07:30:00Z'), 'America/New_York')).toBe(false); // 03:30 EDT
    // Berlin falls back on 2026-10-25 (Sunday): 02:00-03:00 happens twice, both match.
    const sunday02to0230: CampaignSchedule = { weekdays: [7], from: '02:00', to: '02:30' };
    expect(isInSchedule(sunday02to0230, new Date('2026-10-25T00:15:00Z'), 'Europe/Berlin')).toBe(true); // 02:15 CEST
    expect(isInSchedule(sunday02to0230, new Date('2026-10-25T01:15:00Z'), 'Europe/Berlin')).toBe(true); // 02:15 CET
    expect(isInSchedule(sunday02to0230, new Date('2026-10-25T01:45:00Z'), 'Europe/Berlin')).toBe(false); // 02:45 CET
    // A window across midnight on the night of the change keeps its wall-clock bounds.
    const saturdayNight: CampaignSchedule = { weekdays: [6], from: '23:00', to: '03:00' };
    expect(isInSchedule(saturdayNight, new Date('2026-10-25T01:59:00Z'), 'Europe/Berlin')).toBe(true); // 02:59 CET
    expect(isInSchedule(saturdayNight, new Date('2026-10-25T02:00:00Z'), 'Europe/Berlin')).toBe(false); // 03:00 CET
  });

  it('agrees with a reference on fixed-offset zones for any instant and window', () => {
    const zones: Array<[string, number]> = [
      ['UTC', 0],
      ['Asia/Kolkata', 330],
      ['Europe/Moscow', 180],
      ['America/Sao_Paulo', -180],
    ];
    const hhmm = fc
      .tuple(fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }))
      .map(([h, m]) => `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}`);
    fc.assert(
      fc.property(
        fc.date({
          min: new Date('2025-01-01T00:00:00Z'),
          max: new Date('2030-01-01T00:00:00Z'),
          noInvalidDate: true,
        }),
        fc.uniqueArray(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 7 }),
        hhmm,
        hhmm,
        fc.constantFrom(...zones),
        (at, weekdays, from, to, [zone, offset]) => {
          const local = new Date(at.getTime() + offset * 60_000);
          const weekday = local.getUTCDay() === 0 ? 7 : local.getUTCDay();
          const minutes = local.getUTCHours() * 60 + local.getUTCMinutes();
          const f = Number(from.slice(0, 2)) * 60 + Number(from.slice(3));
          const t = Number(to.slice(0, 2)) * 60 + Number(to.slice(3));
          const previous = weekday === 1 ? 7 : weekday - 1;
          const expected =
            f === t
              ? weekdays.includes(weekday)
              : f < t
                ? weekdays.includes(weekday) && minutes >= f && minutes < t
                : (weekdays.includes(weekday) && minutes >= f) ||
                  (weekdays.includes(previous) && minutes < t);
          expect(isInSchedule({ weekdays, from, to }, at, zone)).toBe(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

const arbCampaign = fc.record({
  kind: fc.constantFrom('multiplier' as const, 'bonus_points' as const, 'welcome' as const),
  multiplierBp: fc.integer({ min: 10_000, max: 50_000 }),
  points: fc.integer({ min: 1, max: 1000 }),
  priority: fc.integer({ min: -3, max: 3 }),
  exclusive: fc.boolean(),
  status: fc.constantFrom('active' as const, 'active' as const, 'paused' as const),
  categories: fc.option(fc.subarray(['coffee', 'food', 'tea'], { minLength: 1 }), { nil: undefined }),
  minTotal: fc.option(fc.integer({ min: 0, max: 200_000 }), { nil: undefined }),
  totalPoints: fc.option(fc.integer({ min: 1, max: 500 }), { nil: undefined }),
  grantedPoints: fc.integer({ min: 0, max: 600 }),
  perCustomer: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }),
  customerGrants: fc.integer({ min: 0, max: 4 }),
});

const arbReceipt = fc
  .array(
    fc.record({
      category: fc.constantFrom('coffee', 'food', 'tea'),
      amount: fc.integer({ min: 0, max: 100_000 }),
      excluded: fc.boolean(),
    }),
    { minLength: 1, maxLength: 6 },
  )
  .map((items) => ({ total: items.reduce((s, i) => s + i.amount, 0), items }));

describe('properties', () => {
  it('the breakdown adds up to earnPoints; limits hold; an exclusive campaign is the last; no negatives', () => {
    fc.assert(
      fc.property(
        fc.array(arbCampaign, { maxLength: 6 }),
        arbReceipt,
        fc.integer({ min: 0, max: 100 }),
        (specs, receipt, redeemWish) => {
          const campaigns = specs.map((s) =>
            campaign({
              kind: s.kind,
              status: s.status,
              effect: s.kind === 'multiplier' ? { multiplierBp: s.multiplierBp } : { points: s.points },
              priority: s.priority,
              exclusive: s.exclusive,
              conditions: { categories: s.categories, minTotal: s.minTotal },
              limits: { totalPoints: s.totalPoints, perCustomer: s.perCustomer },
              grantedPoints: s.totalPoints === undefined ? 0 : Math.min(s.grantedPoints, s.totalPoints),
              customerGrants: s.customerGrants,
            }),
          );
          const cap = Math.floor(
            (receipt.items.filter((i) => !i.excluded).reduce((a, i) => a + i.amount, 0) * 5000) /
              10_000 /
              100,
          );
          const result = explain(campaigns, { receipt, redeemPoints: Math.min(cap, redeemWish) });
          const sum = result.earnBreakdown.reduce((a, i) => a + i.points, 0);
          expect(sum).toBe(result.earnPoints);
          const applied = result.earnBreakdown.filter((i) => i.source === 'campaign');
          for (const [index, item] of applied.entries()) {
            const c = campaigns.find((x) => x.id === item.campaignId);
            if (!c) throw new Error('unknown campaign in breakdown');
            expect(item.points).toBeGreaterThan(0);
            expect(c.status).toBe('active');
            expect(c.kind).not.toBe('welcome');
            if (c.limits.totalPoints !== undefined)
              expect(item.points).toBeLessThanOrEqual(c.limits.totalPoints - c.grantedPoints);
            if (c.limits.perCustomer !== undefined)
              expect(c.customerGrants).toBeLessThan(c.limits.perCustomer);
            if (c.exclusive) expect(index).toBe(applied.length - 1);
            if (c.kind === 'bonus_points') {
              const left = (c.limits.totalPoints ?? Number.MAX_SAFE_INTEGER) - c.grantedPoints;
              expect(item.points).toBe(Math.min(Number(c.effect.points), left));
            }
            const next = applied[index + 1];
            const nextCampaign = campaigns.find((x) => x.id === next?.campaignId);
            if (nextCampaign) expect(nextCampaign.priority).toBeLessThanOrEqual(c.priority);
          }
          // A multiplier never adds more than (multiplier - 1) times the programme's earn.
          const programme = result.earnBreakdown[0]?.points ?? 0;
          for (const item of applied) {
            const c = campaigns.find((x) => x.id === item.campaignId);
            if (c?.kind === 'multiplier')
              expect(item.points).toBeLessThanOrEqual(
                Math.floor((programme + 1) * ((Number(c.effect.multiplierBp) - 10_000) / 10_000)),
              );
          }
        },
      ),
      { numRuns: 1000 },
    );
  });
});
