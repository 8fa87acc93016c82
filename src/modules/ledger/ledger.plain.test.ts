import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import {
  createTestCampaign,
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import { addLot, findLedgerViolations } from '../../../test/helpers/ledger.js';
import type { DB } from '../../db/types.js';
import { issueCustomerCode } from '../customers/customers.service.js';
import { createHold } from './holds.service.js';
import { adjustPoints } from './ledger.service.js';

// Group commit's set-based part (loyalty_commit_plain_purchases): a batch's plain purchases are
// committed with one statement per table. Whatever a batch holds, its outcome must be the one of
// committing its items one by one with loyalty_commit_purchase, each customer's items in the order
// given: the same answers (or errors) and the same rows. Each case runs both ways in a transaction
// that is rolled back, on the same data.

let t: TestDatabase;
let merchant: TestMerchant;
/** Campaigns a purchase's earn breakdown may name: no limits, a points budget, once per customer, paused. */
const campaigns: Record<CampaignRole, string> = { bonus: '', budget: '', once: '', paused: '' };
const CAMPAIGN_ROLES = ['bonus', 'budget', 'once', 'paused'] as const;
type CampaignRole = (typeof CAMPAIGN_ROLES)[number];
/** What each campaign's line asks for: the budget's runs out within a batch of three of them. */
const CAMPAIGN_POINTS: Record<CampaignRole, number> = { bonus: 15, budget: 40, once: 5, paused: 9 };
/** The customers a generated batch may name, by role. */
const customers: Record<string, string> = {};
/** Purchases committed before the batches (their customer, key and payload), to retry in a batch. */
const earlier = new Map<string, { key: string; payload: Payload }>();
/** A live one-time code of the `coded` customer. */
let liveCode: string;
/** Holds a purchase may redeem: the `holder`'s (active) and the `lapsed` customer's (past its expiry). */
const holds = { active: '', lapsed: '' };
/** The points of each hold. */
const HOLD_POINTS = 30;

const ROLES = [
  'plain',
  'rich',
  'pending',
  'due',
  'referred',
  'coded',
  'regular',
  'spread',
  'many',
  'holder',
  'lapsed',
] as const;
type Role = (typeof ROLES)[number];

type Payload = Record<string, unknown> & { customerId: string; orderId: string };

beforeAll(async () => {
  t = await createTestDatabase({ poolMax: 4 });
  merchant = await createTestMerchant(t.db, { rules: { pointsLifetimeDays: 365 } });
  for (const role of ROLES) {
    customers[role] = (
      await createTestCustomer(t.db, {
        merchant,
        points: role === 'rich' ? 5_000 : role === 'holder' || role === 'lapsed' ? 200 : 0,
      })
    ).customerId;
  }
  // Lots a redeem takes from in expiry order, never-expiring last: 7 (10 days), 6 (20), 5 (30), 8 (60), 20.
  for (const [points, days] of [
    [5, 30],
    [7, 10],
    [20, null],
    [8, 60],
    [6, 20],
  ] as const) {
    await addLot(t.db, merchant, customers.spread as string, points, days);
  }
  // More lots than the set-based part reads for one redeem (32): a redeem of more than 32 points.
  for (let lot = 0; lot < 36; lot++) await addLot(t.db, merchant, customers.many as string, 1, 90);
  // A lot past its expiry that the expiry job has not reached yet.
  await addLot(t.db, merchant, customers.due as string, 70, 30);
  await sql`update point_lots set expires_at = now() - interval '1 hour' where customer_id = ${customers.due}`.execute(
    t.db,
  );
  // Points reserved before payment: each run is rolled back, so the active hold stays active.
  for (const [role, hold] of [
    ['holder', 'active'],
    ['lapsed', 'lapsed'],
  ] as const) {
    holds[hold] = (
      await createHold(t.db, {
        merchantId: merchant.merchantId,
        customerId: customers[role] as string,
        points: HOLD_POINTS,
        ttlSeconds: 600,
        receipt: { total: 50_000 },
        context: {},
      })
    ).hold.id;
  }
  await sql`update holds set expires_at = now() - interval '1 minute' where id = ${holds.lapsed}`.execute(
    t.db,
  );
  // A referred customer without purchases: the first one grants the referral points.
  const referrer = await createTestCustomer(t.db, { merchant });
  await sql`update customers set referred_by = ${referrer.customerId} where id = ${customers.referred}`.execute(
    t.db,
  );
  await createTestCampaign(t.db, merchant, {
    kind: 'referral',
    effect: { referrerPoints: 40, refereePoints: 25 },
  });
  campaigns.bonus = (
    await createTestCampaign(t.db, merchant, { kind: 'bonus_points', effect: { points: 15 } })
  ).id;
  campaigns.budget = (
    await createTestCampaign(t.db, merchant, {
      kind: 'bonus_points',
      effect: { points: 40 },
      limits: { totalPoints: 100 },
    })
  ).id;
  campaigns.once = (
    await createTestCampaign(t.db, merchant, {
      kind: 'bonus_points',
      effect: { points: 5 },
      limits: { perCustomer: 1 },
    })
  ).id;
  campaigns.paused = (
    await createTestCampaign(t.db, merchant, {
      kind: 'bonus_points',
      effect: { points: 9 },
      status: 'paused',
    })
  ).id;
  liveCode = (
    await issueCustomerCode(t.db, {
      merchantId: merchant.merchantId,
      customerId: customers.coded as string,
      ttlSeconds: 3600,
    })
  ).code;
  // A purchase with an Idempotency-Key, committed before: a batch may retry it.
  const key = randomUUID();
  // It had the once-per-customer campaign's points: a batch's line of it grants the regular nothing.
  const payload = purchase('regular', { total: 4_000, key, campaigns: ['once'] });
  await sql`select loyalty_commit_purchase(${JSON.stringify(payload)}::jsonb)`.execute(t.db);
  earlier.set(customers.regular as string, { key, payload });
});
afterAll(async () => {
  await t.drop();
});

interface ItemSpec {
  role: Role | 'unknown';
  total: number;
  redeem: boolean;
  key: 'none' | 'fresh' | 'retry' | 'reuse' | 'retry-earlier';
  dupOrder: boolean;
  code: 'none' | 'live' | 'wrong';
  campaigns: CampaignRole[];
  pendingDays: 0 | 3;
  lines: boolean;
  /** A hold to redeem: the active one (its points, or one more), or the one past its expiry. */
  hold: 'none' | 'active' | 'mismatch' | 'lapsed';
}

/** A loyalty_commit_purchase argument, as commitPurchase builds it. */
function purchase(
  role: Role | 'unknown',
  options: {
    total: number;
    key?: string;
    orderId?: string;
    redeem?: number;
    code?: string;
    campaigns?: CampaignRole[];
    pendingDays?: number;
    lines?: boolean;
    holdId?: string;
  },
): Payload {
  const earn = Math.floor(options.total / 100);
  const breakdown: object[] = [{ source: 'base', campaignId: null, name: 'Base', points: earn }];
  for (const role of options.campaigns ?? []) {
    breakdown.push({
      source: 'campaign',
      campaignId: campaigns[role],
      name: role,
      points: CAMPAIGN_POINTS[role],
    });
  }
  const receipt = options.lines
    ? {
        total: options.total,
        items: [
          { sku: 'a', amount: options.total - 100 },
          { sku: 'b', amount: 100 },
        ],
      }
    : { total: options.total };
  return {
    merchantId: merchant.merchantId,
    customerId: role === 'unknown' ? randomUUID() : (customers[role] as string),
    orderId: options.orderId ?? `order-${randomUUID()}`,
    code: options.code ?? null,
    idempotencyKey: options.key ?? null,
    requestHash: options.key ? `hash-${options.total}-${options.redeem ?? 0}` : null,
    outletId: merchant.outletId,
    deviceId: merchant.deviceId,
    managerId: null,
    total: options.total,
    eligibleAmount: options.total,
    discount: options.redeem ?? 0,
    earnPoints: earn,
    earnBreakdown: breakdown,
    redeemPoints: options.redeem ?? 0,
    earnRateBp: 100,
    tier: null,
    receipt,
    lineEligible: options.lines ? [true, false] : null,
    pendingDays: options.pendingDays ?? 0,
    lifetimeDays: 365,
    holdId: options.holdId ?? null,
  };
}

/** Points a redeeming item asks for: across lots, the whole balance, one more than it, past 32 lots. */
function redeemOf(role: Role | 'unknown', total: number): number {
  if (role === 'rich') return 300;
  if (role === 'spread') return [4, 7, 12, 19, 40, 46, 47][total % 7] as number;
  if (role === 'many') return [3, 33][total % 2] as number;
  return 10;
}

/** The hold an item redeems, and its points to redeem (they must equal the hold's). */
function holdOf(hold: ItemSpec['hold']): { holdId?: string; redeem?: number } {
  if (hold === 'none') return {};
  return {
    holdId: hold === 'lapsed' ? holds.lapsed : holds.active,
    redeem: hold === 'mismatch' ? HOLD_POINTS + 1 : HOLD_POINTS,
  };
}

/** The batch's payloads: retries and reused keys or orderIds refer to the previous item of the customer. */
function payloadsOf(specs: ItemSpec[]): Payload[] {
  const last = new Map<string, Payload>();
  return specs.map((spec) => {
    const previous = spec.role === 'unknown' ? undefined : last.get(spec.role);
    let payload: Payload;
    if (spec.key === 'retry' && previous?.idempotencyKey) {
      payload = previous;
    } else if (spec.key === 'retry-earlier' && spec.role === 'regular') {
      payload = (earlier.get(customers.regular as string) as { payload: Payload }).payload;
    } else {
      payload = purchase(spec.role, {
        total: spec.total,
        key:
          spec.key === 'reuse' && typeof previous?.idempotencyKey === 'string'
            ? previous.idempotencyKey
            : spec.key === 'none'
              ? undefined
              : randomUUID(),
        orderId: spec.dupOrder && previous ? previous.orderId : undefined,
        redeem: spec.redeem ? Math.min(redeemOf(spec.role, spec.total), spec.total) : 0,
        code: spec.code === 'live' ? liveCode : spec.code === 'wrong' ? '000000' : undefined,
        campaigns: spec.campaigns,
        pendingDays: spec.pendingDays,
        lines: spec.lines,
        ...holdOf(spec.hold),
      });
    }
    if (spec.role !== 'unknown') last.set(spec.role, payload);
    return payload;
  });
}

const itemSpec: fc.Arbitrary<ItemSpec> = fc.record({
  // The customer with lots of several expiries twice as often: its redeems test the order lots go in.
  role: fc.constantFrom<Role | 'unknown'>(...ROLES, 'spread', 'unknown'),
  total: fc.integer({ min: 100, max: 50_000 }),
  redeem: fc.constantFrom(false, false, false, true),
  key: fc.constantFrom<ItemSpec['key']>('none', 'fresh', 'fresh', 'retry', 'reuse', 'retry-earlier'),
  dupOrder: fc.constantFrom(false, false, false, false, true),
  code: fc.constantFrom<ItemSpec['code']>('none', 'none', 'none', 'live', 'wrong'),
  // Mostly none or one line; a campaign at most once (the quote never names one twice).
  campaigns: fc.oneof(
    { arbitrary: fc.constant<CampaignRole[]>([]), weight: 3 },
    { arbitrary: fc.subarray([...CAMPAIGN_ROLES], { minLength: 1, maxLength: 2 }), weight: 1 },
  ),
  pendingDays: fc.constantFrom<0 | 3>(0, 0, 3),
  lines: fc.boolean(),
  // Mostly the holder's own hold; the others fail (one by one), as any hold named by another customer.
  hold: fc.constantFrom<ItemSpec['hold']>('none', 'none', 'none', 'active', 'active', 'mismatch', 'lapsed'),
});

interface Outcome {
  answers: unknown[];
  rows: Record<string, string[]>;
  /** Calls of loyalty_commit_purchase in the transaction that returned (a call that raised is not counted). */
  singleCommits: number;
}

/** Runs `work` in a transaction that is rolled back, and what it left: answers by item, rows, calls. */
async function inRolledBack(work: (db: Kysely<DB>) => Promise<unknown[]>): Promise<Outcome> {
  return t.db.connection().execute(async (db) => {
    await sql`begin`.execute(db);
    try {
      await sql`set local track_functions = 'pl'`.execute(db);
      // Counted since the statistics were last sent, which is not at every transaction: a difference.
      const before = await singleCommitCalls(db);
      const answers = await work(db);
      const rows = await snapshot(db);
      const singleCommits = (await singleCommitCalls(db)) - before;
      return { answers: normalise(answers), rows, singleCommits };
    } finally {
      await sql`rollback`.execute(db);
    }
  });
}

async function singleCommitCalls(db: Kysely<DB>): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select coalesce(pg_stat_get_xact_function_calls('loyalty_commit_purchase'::regproc), 0)::int as n`.execute(
    db,
  );
  return rows[0]?.n ?? 0;
}

/** Everything the transaction wrote, without ids and times (relative to now() where they matter). */
async function snapshot(db: Kysely<DB>): Promise<Record<string, string[]>> {
  const queries = {
    balances: sql`select customer_id, available, pending, held from balances where merchant_id = ${merchant.merchantId}`,
    purchases: sql`
      select p.customer_id, p.order_id, p.outlet_id, p.device_id, p.manager_id, p.total, p.eligible_amount,
             p.discount, p.earned_points, p.redeemed_points, p.earn_rate_bp, p.tier, p.receipt, p.line_eligible,
             p.earn_breakdown, p.idempotency_key, p.request_hash, p.balance_available, p.balance_pending,
             p.balance_held, p.status, p.refunded_amount
      from purchases p where p.created_at = now()`,
    lots: sql`
      select l.customer_id, l.source, (select order_id from purchases where id = l.purchase_id) as order_id,
             l.points, l.remaining, l.state,
             case when l.created_at = now() then (l.available_at - now())::text else l.available_at::text end as available,
             case when l.created_at = now() then (l.expires_at - now())::text else l.expires_at::text end as expires,
             l.campaign_id
      from point_lots l where l.merchant_id = ${merchant.merchantId}`,
    entries: sql`
      select e.customer_id, e.kind, e.bucket, e.points, (select order_id from purchases where id = e.purchase_id) as order_id,
             (select points || '/' || source from point_lots where id = e.lot_id) as lot, e.reason
      from ledger_entries e where e.created_at = now()`,
    events: sql`
      select o.merchant_id, o.type, o.payload - 'purchaseId' - 'occurredAt' - 'expiresAt' as payload,
             -- A granted lot's expiry is taken from the clock: to the minute.
             round(extract(epoch from (o.payload->>'expiresAt')::timestamptz - now()) / 60) as expires_in,
             (select order_id from purchases where id = (o.payload->>'purchaseId')::uuid) as order_id,
             o.payload->>'occurredAt' = loyalty_iso(now()) as occurred_now
      from outbox_events o where o.created_at = now()`,
    moves: sql`
      select m.kind, m.points, (select order_id from purchases where id = m.purchase_id) as order_id,
             (select e.kind || '/' || e.points from ledger_entries e where e.id = m.entry_id) as entry,
             -- A lot from before the batch by its id (the same in both runs), a new one by its points.
             (select case when l.created_at = now() then 'new/' || l.points else l.id::text end
              from point_lots l where l.id = m.lot_id) as lot
      from lot_moves m where m.created_at = now()`,
    grants: sql`
      select g.campaign_id, g.customer_id, g.grants, g.points from campaign_grants g
      where g.campaign_id in (select id from campaigns where merchant_id = ${merchant.merchantId})`,
    budgets: sql`select id, granted_points from campaigns where merchant_id = ${merchant.merchantId}`,
    holds: sql`
      select h.customer_id, h.points, h.status, h.released_at = now() as released_now,
             (select order_id from purchases where id = h.purchase_id) as order_id
      from holds h where h.merchant_id = ${merchant.merchantId}`,
    codes: sql`
      select c.code, c.consumed_at = now() as consumed_now, (select order_id from purchases where id = c.purchase_id) as order_id
      from customer_codes c where c.merchant_id = ${merchant.merchantId}`,
  };
  const out: Record<string, string[]> = {};
  for (const [name, query] of Object.entries(queries)) {
    const { rows } = await query.execute(db);
    out[name] = rows.map((row) => JSON.stringify(row)).sort();
  }
  return out;
}

/** Answers without what differs between two runs (ids, times); errors by code, message and detail. */
function normalise(answers: unknown[]): unknown[] {
  return answers.map((answer) =>
    JSON.parse(JSON.stringify(answer ?? null), (key, value) =>
      key === 'id' || key === 'createdAt' ? typeof value : value,
    ),
  );
}

/** The batch through loyalty_commit_purchases: answers by item index. */
async function batched(db: Kysely<DB>, payloads: Payload[]): Promise<unknown[]> {
  const { rows } = await sql<{
    r: { i: number; result?: unknown; error?: { code: string; message: string; detail: string | null } }[];
  }>`
    select loyalty_commit_purchases(${JSON.stringify(payloads)}::jsonb) as r`.execute(db);
  const answers: unknown[] = [];
  for (const answer of rows[0]?.r ?? []) {
    answers[answer.i] = answer.error
      ? { error: { code: answer.error.code, message: answer.error.message, detail: answer.error.detail } }
      : { result: answer.result };
  }
  return answers;
}

/** The same items one by one, in customer id order, each in a savepoint: answers by item index. */
async function oneByOne(db: Kysely<DB>, payloads: Payload[]): Promise<unknown[]> {
  const order = payloads
    .map((payload, i) => ({ payload, i }))
    .sort((a, b) => compareUuid(a.payload.customerId, b.payload.customerId) || a.i - b.i);
  const answers: unknown[] = [];
  for (const { payload, i } of order) {
    await sql`savepoint item`.execute(db);
    try {
      const { rows } = await sql<{
        r: unknown;
      }>`select loyalty_commit_purchase(${JSON.stringify(payload)}::jsonb) as r`.execute(db);
      answers[i] = { result: rows[0]?.r };
      await sql`release savepoint item`.execute(db);
    } catch (error) {
      await sql`rollback to savepoint item`.execute(db);
      const e = error as { code: string; message: string; detail?: string };
      answers[i] = { error: { code: e.code, message: e.message, detail: e.detail || null } };
    }
  }
  return answers;
}

/** PostgreSQL's order of uuids (bytewise, as their hex digits compare). */
function compareUuid(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

describe('set-based group commit', () => {
  it('commits a batch exactly as its items one by one, whatever the batch holds', {
    timeout: 300_000,
  }, async () => {
    let setBased = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(itemSpec, { minLength: 2, maxLength: 10 }), async (specs) => {
        const payloads = payloadsOf(specs);
        const together = await inRolledBack((db) => batched(db, payloads));
        const alone = await inRolledBack((db) => oneByOne(db, payloads));
        expect(together.answers).toEqual(alone.answers);
        expect(together.rows).toEqual(alone.rows);
        const committed = together.answers.filter((answer) => (answer as { result?: unknown }).result).length;
        setBased += committed - together.singleCommits;
      }),
      { numRuns: 150 },
    );
    // Many purchases were committed by the set-based part (else this compared the loop with itself).
    expect(setBased).toBeGreaterThan(40);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('commits plain purchases without a single commit per purchase', async () => {
    const roles: Role[] = ['plain', 'rich', 'pending', 'coded', 'regular'];
    const payloads = roles.map((role, i) =>
      purchase(role, {
        total: 1_000 * (i + 1),
        key: randomUUID(),
        pendingDays: role === 'pending' ? 3 : 0,
        code: role === 'coded' ? liveCode : undefined,
      }),
    );
    const together = await inRolledBack((db) => batched(db, payloads));
    expect(together.singleCommits).toBe(0);
    expect(
      together.answers.every((answer) => answer && typeof answer === 'object' && 'result' in answer),
    ).toBe(true);
    const alone = await inRolledBack((db) => oneByOne(db, payloads));
    expect(together.answers).toEqual(alone.answers);
    expect(together.rows).toEqual(alone.rows);
  });

  it('commits redeeming purchases set-based, taking from lots soonest expiry first', async () => {
    const payloads = [
      purchase('spread', { total: 1_900, redeem: 19, key: randomUUID() }),
      purchase('rich', { total: 2_000, redeem: 300, pendingDays: 3 }),
      purchase('regular', { total: 500, redeem: 40 }),
      purchase('many', { total: 300, redeem: 3 }),
    ];
    const together = await inRolledBack((db) => batched(db, payloads));
    expect(together.singleCommits).toBe(0);
    // 19 points: the 7 (10 days), the 6 (20 days), the 5 (30 days) and 1 of the 8 (60 days).
    const spreadMoves = together.rows.moves?.filter((row) => row.includes('"entry":"redeem/-19"'));
    expect(spreadMoves?.map((row) => Number((JSON.parse(row) as { points: unknown }).points)).sort()).toEqual(
      [-1, -5, -6, -7].sort(),
    );
    const alone = await inRolledBack((db) => oneByOne(db, payloads));
    expect(together.answers).toEqual(alone.answers);
    expect(together.rows).toEqual(alone.rows);
  });

  it('commits purchases that redeem a hold set-based, its points back to their lots and out again', async () => {
    const payloads = [
      purchase('holder', { total: 3_000, redeem: HOLD_POINTS, holdId: holds.active, campaigns: ['bonus'] }),
      purchase('plain', { total: 1_000 }),
      purchase('spread', { total: 1_900, redeem: 19 }),
    ];
    const together = await inRolledBack((db) => batched(db, payloads));
    expect(together.singleCommits).toBe(0);
    const alone = await inRolledBack((db) => oneByOne(db, payloads));
    expect(together.answers).toEqual(alone.answers);
    expect(together.rows).toEqual(alone.rows);
    const held = together.rows.balances?.map(
      (row) => JSON.parse(row) as { customer_id: string; held: number },
    );
    expect(held?.find((row) => row.customer_id === customers.holder)?.held).toBe(0);
    expect(together.rows.holds).toContainEqual(
      expect.stringContaining('"status":"committed","released_now":true'),
    );
    // The hold's points: released (+30) into the lot they were reserved from and redeemed (-30) from it.
    expect(together.rows.moves?.filter((row) => row.includes('"entry":"release/30"'))).toHaveLength(1);
    expect(together.rows.moves?.filter((row) => row.includes('"entry":"redeem/-30"'))).toHaveLength(1);
    expect(together.rows.events?.filter((row) => row.includes('"type":"hold.released"'))).toHaveLength(1);
  });

  it('commits a purchase whose hold does not fit alone, with its own error, and the rest set-based', async () => {
    const payloads = [
      // Another customer's hold, one past its expiry, the wrong points.
      purchase('plain', { total: 1_000, redeem: HOLD_POINTS, holdId: holds.active }),
      purchase('lapsed', { total: 1_000, redeem: HOLD_POINTS, holdId: holds.lapsed }),
      purchase('holder', { total: 1_000, redeem: HOLD_POINTS + 1, holdId: holds.active }),
      purchase('rich', { total: 2_000, redeem: 300 }),
    ];
    const together = await inRolledBack((db) => batched(db, payloads));
    const codes = together.answers.map(
      (answer) => (answer as { error?: { message: string } }).error?.message ?? 'ok',
    );
    expect(codes).toEqual(['hold_customer_mismatch', 'hold_expired', 'hold_mismatch', 'ok']);
    expect(together.singleCommits).toBe(0);
    const alone = await inRolledBack((db) => oneByOne(db, payloads));
    expect(together.answers).toEqual(alone.answers);
    expect(together.rows).toEqual(alone.rows);
  });

  it('commits them all one by one when a redeem needs more lots than are read at once', async () => {
    const payloads = [purchase('many', { total: 3_300, redeem: 33 }), purchase('plain', { total: 1_000 })];
    const together = await inRolledBack((db) => batched(db, payloads));
    expect(together.singleCommits).toBe(2);
    const alone = await inRolledBack((db) => oneByOne(db, payloads));
    expect(together.answers).toEqual(alone.answers);
    expect(together.rows).toEqual(alone.rows);
    expect(together.rows.moves?.filter((row) => row.includes('"entry":"redeem/-33"'))).toHaveLength(33);
  });

  it('commits purchases with campaign points set-based, within each campaign limits', async () => {
    const payloads = [
      purchase('plain', { total: 1_000, campaigns: ['bonus', 'budget'] }),
      purchase('rich', { total: 2_000, redeem: 300, campaigns: ['budget', 'once'] }),
      purchase('pending', { total: 3_000, pendingDays: 3, campaigns: ['once', 'paused'] }),
      // Had the once-per-customer campaign's points before: this line grants nothing.
      purchase('regular', { total: 4_000, key: randomUUID(), campaigns: ['once'] }),
      purchase('spread', { total: 1_900, redeem: 19, campaigns: ['bonus'] }),
    ];
    const together = await inRolledBack((db) => batched(db, payloads));
    expect(together.singleCommits).toBe(0);
    const alone = await inRolledBack((db) => oneByOne(db, payloads));
    expect(together.answers).toEqual(alone.answers);
    expect(together.rows).toEqual(alone.rows);
    const earned = together.answers.map(
      (answer) => (answer as { result: { purchase: { earnedPoints: number } } }).result.purchase.earnedPoints,
    );
    // Base points (a hundredth of the total) plus each line granted; the paused campaign and the
    // regular's second once-per-customer line grant nothing.
    expect(earned).toEqual([10 + 15 + 40, 20 + 40 + 5, 30 + 5, 40, 19 + 15]);
    expect(together.rows.budgets).toContain(JSON.stringify({ id: campaigns.budget, granted_points: 80 }));
    expect(together.rows.events?.filter((row) => row.includes('"type":"bonus.granted"'))).toHaveLength(6);
  });

  it('commits them one by one when a campaign budget does not cover every line of the batch', async () => {
    // 3 x 40 points from a budget of 100: the third purchase gets the 20 left, as one by one.
    const payloads = (['plain', 'rich', 'coded'] as const).map((role) =>
      purchase(role, { total: 1_000, campaigns: ['budget'] }),
    );
    const together = await inRolledBack((db) => batched(db, payloads));
    expect(together.singleCommits).toBe(3);
    const alone = await inRolledBack((db) => oneByOne(db, payloads));
    expect(together.answers).toEqual(alone.answers);
    expect(together.rows).toEqual(alone.rows);
    expect(together.rows.budgets).toContain(JSON.stringify({ id: campaigns.budget, granted_points: 100 }));
  });

  it('commits them one by one when one of them does not fit, each with its own answer', async () => {
    const payloads = [
      purchase('plain', { total: 1_000 }),
      purchase('rich', { total: 2_000 }),
      purchase('unknown', { total: 3_000 }),
      purchase('coded', { total: 4_000, code: '000000' }),
    ];
    const together = await inRolledBack((db) => batched(db, payloads));
    // The two that commit, one by one (a call that raised is not counted).
    expect(together.singleCommits).toBe(2);
    const codes = together.answers.map(
      (answer) => (answer as { error?: { message: string } }).error?.message ?? 'ok',
    );
    expect(codes).toEqual(['ok', 'ok', 'customer_not_found', 'code_not_found']);
    const alone = await inRolledBack((db) => oneByOne(db, payloads));
    expect(together.answers).toEqual(alone.answers);
    expect(together.rows).toEqual(alone.rows);
  });
});

describe('set-based group commit under concurrency', () => {
  /** Eight customers of a new merchant, with a commit payload for one of them. */
  async function shopWithCustomers(breakdown: (points: number) => object[] = () => []) {
    const shop = await createTestMerchant(t.db);
    const ids = await Promise.all(
      Array.from({ length: 8 }, async () => (await createTestCustomer(t.db, { merchant: shop })).customerId),
    );
    const payload = (customerId: string) => ({
      merchantId: shop.merchantId,
      customerId,
      orderId: `order-${randomUUID()}`,
      total: 1_000,
      eligibleAmount: 1_000,
      discount: 0,
      earnPoints: 10,
      earnBreakdown: [{ source: 'base', campaignId: null, name: 'Base', points: 10 }, ...breakdown(10)],
      redeemPoints: 0,
      earnRateBp: 100,
      receipt: { total: 1_000 },
      pendingDays: 0,
      lifetimeDays: null,
    });
    return { shop, ids, payload };
  }

  /**
   * Batches of several API processes may name the same customers (one process's never do at the
   * same time): four connections, each committing `rounds` batches of the same customers, shuffled.
   * Returns the errors.
   */
  async function commitConcurrently(ids: string[], payload: (customerId: string) => object, rounds: number) {
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let round = 0; round < rounds; round++) {
          const batch = [...ids].sort(() => Math.random() - 0.5).map(payload);
          try {
            const { rows } = await sql<{ r: { error?: { message: string } }[] }>`
              select loyalty_commit_purchases(${JSON.stringify(batch)}::jsonb) as r`.execute(t.db);
            for (const answer of rows[0]?.r ?? []) if (answer.error) failures.push(answer.error.message);
          } catch (error) {
            failures.push(String(error));
          }
        }
      }),
    );
    return failures;
  }

  it('runs batches of other processes over the same customers in any order without a deadlock', {
    timeout: 120_000,
  }, async () => {
    const { shop, ids, payload } = await shopWithCustomers();
    const rounds = 25;
    expect(await commitConcurrently(ids, payload, rounds)).toEqual([]);
    const { rows } = await sql<{ n: number; points: number }>`
      select count(*)::int as n, sum(earned_points)::int as points from purchases where merchant_id = ${shop.merchantId}`.execute(
      t.db,
    );
    expect(rows[0]).toEqual({ n: 4 * rounds * ids.length, points: 4 * rounds * ids.length * 10 });
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('commits each hold once across concurrent batches and cancels, never both', {
    timeout: 120_000,
  }, async () => {
    const { shop, ids, payload } = await shopWithCustomers();
    const holdOf = new Map<string, string>();
    for (const customerId of ids) {
      await adjustPoints(t.db, {
        merchantId: shop.merchantId,
        customerId,
        points: 100,
        reason: 'test',
        rules: shop.rules,
      });
      const hold = await createHold(t.db, {
        merchantId: shop.merchantId,
        customerId,
        points: HOLD_POINTS,
        ttlSeconds: 600,
        receipt: { total: 50_000 },
        context: {},
      });
      holdOf.set(customerId, hold.hold.id);
    }
    const withHold = (customerId: string) => ({
      ...payload(customerId),
      redeemPoints: HOLD_POINTS,
      holdId: holdOf.get(customerId),
    });
    const failures: string[] = [];
    const batches = Array.from({ length: 3 }, async () => {
      for (let round = 0; round < 4; round++) {
        const batch = [...ids].sort(() => Math.random() - 0.5).map(withHold);
        const { rows } = await sql<{ r: { error?: { message: string } }[] }>`
          select loyalty_commit_purchases(${JSON.stringify(batch)}::jsonb) as r`.execute(t.db);
        for (const answer of rows[0]?.r ?? []) if (answer.error) failures.push(answer.error.message);
      }
    });
    const cancels = (async () => {
      for (const customerId of [...ids].sort(() => Math.random() - 0.5)) {
        try {
          await sql`select loyalty_cancel_hold(${JSON.stringify({ merchantId: shop.merchantId, holdId: holdOf.get(customerId) })}::jsonb)`.execute(
            t.db,
          );
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
    })();
    await Promise.all([...batches, cancels]);
    // Every commit after the first of a hold, and every cancel after its commit, is refused.
    expect(new Set(failures)).toEqual(new Set(['hold_not_active']));
    const { rows } = await sql<{ status: string; n: number; purchases: number; linked: number }>`
      select h.status, count(*)::int as n,
             (select count(*)::int from purchases p
              where p.merchant_id = ${shop.merchantId} and p.redeemed_points = ${HOLD_POINTS}) as purchases,
             count(p.id)::int as linked
      from holds h left join purchases p on p.id = h.purchase_id and p.customer_id = h.customer_id
      where h.merchant_id = ${shop.merchantId}
      group by h.status`.execute(t.db);
    const committed = rows.find((row) => row.status === 'committed');
    expect(rows.reduce((sum, row) => sum + row.n, 0)).toBe(ids.length);
    expect(rows.every((row) => row.status === 'committed' || row.status === 'cancelled')).toBe(true);
    // One purchase per committed hold, linked to it; every other purchase redeemed nothing.
    expect(committed?.purchases ?? 0).toBe(committed?.n ?? 0);
    expect(committed?.linked ?? 0).toBe(committed?.n ?? 0);
    const { rows: held } = await sql<{ held: number }>`
      select coalesce(sum(held), 0)::int as held from balances where merchant_id = ${shop.merchantId}`.execute(
      t.db,
    );
    expect(held[0]?.held).toBe(0);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('grants a campaign budget to the point across concurrent batches, never past it', {
    timeout: 120_000,
  }, async () => {
    // 800 purchases ask 5 points each of a budget of 2,000 (it runs out half way) and 3 of a
    // campaign without limits.
    let budget = '';
    let unlimited = '';
    const { shop, ids, payload } = await shopWithCustomers(() => [
      { source: 'campaign', campaignId: budget, name: 'Budget', points: 5 },
      { source: 'campaign', campaignId: unlimited, name: 'Always', points: 3 },
    ]);
    budget = (
      await createTestCampaign(t.db, shop, {
        kind: 'bonus_points',
        effect: { points: 5 },
        limits: { totalPoints: 2_000 },
      })
    ).id;
    unlimited = (await createTestCampaign(t.db, shop, { kind: 'bonus_points', effect: { points: 3 } })).id;
    const rounds = 25;
    const purchases = 4 * rounds * ids.length;
    expect(await commitConcurrently(ids, payload, rounds)).toEqual([]);
    const { rows } = await sql<{ n: number; points: number; budget: number; lots: number; grants: number }>`
      select count(*)::int as n, sum(earned_points)::int as points,
             (select granted_points::int from campaigns where id = ${budget}) as budget,
             (select sum(points)::int from point_lots where campaign_id = ${budget}) as lots,
             (select sum(points)::int from campaign_grants where campaign_id = ${budget}) as grants
      from purchases where merchant_id = ${shop.merchantId}`.execute(t.db);
    expect(rows[0]).toEqual({
      n: purchases,
      points: purchases * (10 + 3) + 2_000,
      budget: 2_000,
      lots: 2_000,
      grants: 2_000,
    });
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });
});
