import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestCustomer, createTestMerchant } from '../../../test/helpers/factories.js';
import {
  findLedgerViolations,
  findProvenanceViolations,
  findReferenceViolations,
} from '../../../test/helpers/ledger.js';
import {
  balanceOf,
  commitPayload,
  daysFromNow,
  errorCode,
  postCommit,
  postRefund,
} from '../../../test/helpers/pos.js';
import { AppError } from '../../http/errors.js';
import {
  activatePoints,
  adjustPoints,
  type CommitResult,
  expirePoints,
  type RefundResult,
} from './ledger.service.js';

// The ledger under concurrency, against real Postgres: every request here runs in parallel with
// others that touch the same customers, purchases and idempotency keys, and afterwards the books
// must still add up (test/helpers/ledger.ts) and no answer may be a 5xx.

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

/** Highest ledger entry id so far: entries written after it belong to what the test does next. */
async function lastLedgerId(): Promise<number> {
  const { rows } = await sql<{
    id: number;
  }>`select coalesce(max(id), 0)::bigint as id from ledger_entries`.execute(t.db);
  return rows[0]?.id ?? 0;
}

/**
 * Every purchase of the merchants with its refunds and ledger entries summed, for the checks that
 * tie purchases, refunds and ledger together.
 */
async function auditPurchases(merchantIds: string[]) {
  const { rows } = await sql<{
    id: string;
    status: string;
    total: number;
    earned_points: number;
    redeemed_points: number;
    refunded_amount: number;
    returned_points: number;
    revoked_points: number;
    unrecovered_points: number;
    refunds_amount: number;
    refunds_returned: number;
    refunds_revoked: number;
    refunds_unrecovered: number;
    refunds_count: number;
    ledger_earn: number;
    ledger_redeemed: number;
    ledger_return: number;
    ledger_revoked: number;
    committed_events: number;
    refunded_events: number;
    earned_expired: number;
  }>`
    select p.id, p.status, p.total, p.earned_points, p.redeemed_points, p.refunded_amount, p.returned_points,
      p.revoked_points, p.unrecovered_points,
      coalesce(r.amount, 0)::bigint as refunds_amount,
      coalesce(r.returned, 0)::bigint as refunds_returned,
      coalesce(r.revoked, 0)::bigint as refunds_revoked,
      coalesce(r.unrecovered, 0)::bigint as refunds_unrecovered,
      coalesce(r.count, 0)::bigint as refunds_count,
      coalesce(e.earn, 0)::bigint as ledger_earn,
      (-coalesce(e.redeem, 0))::bigint as ledger_redeemed,
      coalesce(e.ret, 0)::bigint as ledger_return,
      (-coalesce(e.revoke, 0))::bigint as ledger_revoked,
      (select count(*) from outbox_events o
        where o.type = 'purchase.committed' and o.payload->>'purchaseId' = p.id::text
      )::bigint as committed_events,
      (select count(*) from outbox_events o
        where o.type = 'purchase.refunded' and o.payload->>'purchaseId' = p.id::text
      )::bigint as refunded_events,
      (select coalesce(-sum(m.points), 0) from lot_moves m join point_lots l on l.id = m.lot_id
        where l.purchase_id = p.id and l.source = 'earn' and m.kind = 'expire')::bigint as earned_expired
    from purchases p
    left join lateral (
      select sum(amount) as amount, sum(returned_points) as returned, sum(revoked_points) as revoked,
             sum(unrecovered_points) as unrecovered, count(*) as count
      from refunds where purchase_id = p.id
    ) r on true
    left join lateral (
      select sum(points) filter (where kind = 'earn') as earn,
             sum(points) filter (where kind = 'redeem') as redeem,
             sum(points) filter (where kind = 'refund_return') as ret,
             sum(points) filter (where kind = 'refund_revoke') as revoke
      from ledger_entries where purchase_id = p.id
    ) e on true
    where p.merchant_id in (${sql.join(merchantIds)})
  `.execute(t.db);
  return rows;
}

/** Runs `count` copies of `run` at once and returns their results in order. */
function inParallel<T>(count: number, run: (i: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => run(i)));
}

describe('ledger under a randomised concurrent workload', () => {
  // `delay` (ms) only spreads the start of operations so they interleave differently; nothing waits on it.
  type Refund = { amount: number | undefined; delay: number };
  type Op = { delay: number } & (
    | { kind: 'commit'; customer: number; total: number; redeem: number; refunds: Refund[] }
    | { kind: 'adjust'; customer: number; points: number }
    | { kind: 'expire'; days: number }
    | { kind: 'activate'; days: number }
  );

  const CUSTOMERS = 4;
  const customerIndex = fc.nat(CUSTOMERS - 1);
  const delay = fc.integer({ min: 0, max: 150 });
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('commit' as const),
        delay,
        customer: customerIndex,
        // Up to 600 roubles: a 50% cap of up to 300 points; redeem goes above both cap and balance.
        total: fc.integer({ min: 0, max: 60_000 }),
        redeem: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 400 })),
        // undefined = refund all that is left; amounts may exceed the total.
        refunds: fc.array(
          fc.record({ amount: fc.option(fc.integer({ min: 1, max: 70_000 }), { nil: undefined }), delay }),
          { maxLength: 3 },
        ),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('adjust' as const),
        delay,
        customer: customerIndex,
        points: fc.integer({ min: -500, max: 500 }).filter((p) => p !== 0),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('expire' as const),
        delay,
        days: fc.integer({ min: 0, max: 40 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('activate' as const),
        delay,
        days: fc.integer({ min: 0, max: 8 }),
      }),
    },
  );
  const workloadArb = fc.record({
    // Merchant 0 credits at once; merchant 1 holds earned points pending first. Both with short lifetimes
    // and a generous earn rate, so refunds often find the earned points already spent.
    earnRateBp: fc.integer({ min: 500, max: 4000 }),
    instantLifetimeDays: fc.integer({ min: 1, max: 30 }),
    pendingDays: fc.integer({ min: 1, max: 5 }),
    pendingLifetimeDays: fc.integer({ min: 1, max: 10 }),
    initialPoints: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1500 })), {
      minLength: CUSTOMERS,
      maxLength: CUSTOMERS,
    }),
    ops: fc.array(opArb, { minLength: 20, maxLength: 50 }),
  });

  it('keeps every invariant whatever runs at the same time', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(workloadArb, async (w) => {
        const instant = await createTestMerchant(t.db, {
          rules: { earnRateBp: w.earnRateBp, pendingDays: 0, pointsLifetimeDays: w.instantLifetimeDays },
        });
        const pending = await createTestMerchant(t.db, {
          rules: {
            earnRateBp: w.earnRateBp,
            pendingDays: w.pendingDays,
            pointsLifetimeDays: w.pendingLifetimeDays,
          },
        });
        const merchants = [instant, pending];
        const customers = await Promise.all(
          w.initialPoints.map(async (points, i) => {
            const merchant = i % 2 === 0 ? instant : pending;
            const customer = await createTestCustomer(t.db, { merchant, points });
            return { merchant, customerId: customer.customerId };
          }),
        );
        const customerAt = (i: number) => {
          const c = customers[i];
          if (!c) throw new Error(`no customer ${i}`);
          return c;
        };

        const answers: { what: string; status: number; code?: string }[] = [];
        const refundedByResponses = new Map<string, number>();
        const record = (what: string, res: LightMyRequestResponse) => {
          answers.push({
            what,
            status: res.statusCode,
            code: res.statusCode >= 400 ? errorCode(res) : undefined,
          });
        };

        const run = async (op: Op): Promise<void> => {
          await sleep(op.delay);
          switch (op.kind) {
            case 'commit': {
              const { merchant, customerId } = customerAt(op.customer);
              const res = await postCommit(
                t.app,
                merchant,
                commitPayload(merchant, { customerId, total: op.total, redeemPoints: op.redeem }),
              );
              record('commit', res);
              if (res.statusCode !== 201) return;
              const purchaseId = res.json<CommitResult>().purchase.id;
              await Promise.all(
                op.refunds.map(async ({ amount, delay }) => {
                  await sleep(delay);
                  const refund = await postRefund(t.app, merchant, purchaseId, amount);
                  record('refund', refund);
                  if (refund.statusCode === 201) {
                    const body = refund.json<RefundResult>();
                    refundedByResponses.set(
                      purchaseId,
                      (refundedByResponses.get(purchaseId) ?? 0) + body.refund.amount,
                    );
                  }
                }),
              );
              return;
            }
            case 'adjust': {
              const { merchant, customerId } = customerAt(op.customer);
              try {
                await adjustPoints(t.db, {
                  merchantId: merchant.merchantId,
                  customerId,
                  points: op.points,
                  reason: 'workload',
                  rules: merchant.rules,
                });
                answers.push({ what: 'adjust', status: 200 });
              } catch (error) {
                // Taking more than is available is refused; anything else is a failure of the test.
                if (!(error instanceof AppError)) throw error;
                answers.push({ what: 'adjust', status: error.status, code: error.code });
              }
              return;
            }
            case 'expire':
              await expirePoints(t.db, { now: daysFromNow(op.days) });
              return;
            case 'activate':
              await activatePoints(t.db, { now: daysFromNow(op.days) });
              return;
          }
        };
        await Promise.all(w.ops.map(run));

        const allowed: Record<string, string[]> = {
          commit: ['insufficient_points', 'redeem_limit_exceeded'],
          refund: ['refund_exceeds_remaining', 'purchase_fully_refunded'],
          adjust: ['insufficient_points'],
        };
        for (const answer of answers) {
          expect(answer.status, JSON.stringify(answer)).toBeLessThan(500);
          if (answer.status >= 400) {
            expect(answer.status, JSON.stringify(answer)).toBe(422);
            expect(allowed[answer.what], JSON.stringify(answer)).toContain(answer.code);
          }
        }

        expect(await findLedgerViolations(t.db)).toEqual([]);
        expect(await findProvenanceViolations(t.db)).toEqual([]);
        expect(await findReferenceViolations(t.db)).toEqual([]);

        const purchases = await auditPurchases(merchants.map((m) => m.merchantId));
        expect(purchases.length).toBe(answers.filter((a) => a.what === 'commit' && a.status === 201).length);
        for (const p of purchases) {
          const label = JSON.stringify(p);
          // The purchase row, its refunds, the POS's answers and the ledger tell the same story.
          expect(p.refunds_amount, label).toBe(p.refunded_amount);
          expect(p.refunded_amount, label).toBe(refundedByResponses.get(p.id) ?? 0);
          expect(p.refunds_returned, label).toBe(p.returned_points);
          // Refunds record what they did; a shortfall settled later moves from unrecovered to revoked.
          expect(p.refunds_revoked + p.refunds_unrecovered, label).toBe(
            p.revoked_points + p.unrecovered_points,
          );
          expect(p.ledger_earn, label).toBe(p.earned_points);
          expect(p.ledger_redeemed, label).toBe(p.redeemed_points);
          expect(p.ledger_return, label).toBe(p.returned_points);
          expect(p.ledger_revoked, label).toBe(p.revoked_points);
          expect(p.committed_events, label).toBe(1);
          expect(p.refunded_events, label).toBe(p.refunds_count);
          // Never more than was paid.
          expect(p.refunded_amount, label).toBeLessThanOrEqual(p.total);
          expect(p.returned_points, label).toBeLessThanOrEqual(p.redeemed_points);
          expect(p.revoked_points + p.unrecovered_points, label).toBeLessThanOrEqual(p.earned_points);
          // Pro rata, exact for the cumulative refunded amount: all of it returned; of the earned
          // points, all taken back or owed, except what had expired (gone, never owed).
          const share = (points: number) =>
            p.refunded_amount >= p.total ? points : Math.floor((points * p.refunded_amount) / p.total);
          expect(p.returned_points, label).toBe(share(p.redeemed_points));
          const owed = p.revoked_points + p.unrecovered_points;
          expect(owed, label).toBeLessThanOrEqual(share(p.earned_points));
          expect(owed + p.earned_expired, label).toBeGreaterThanOrEqual(share(p.earned_points));
          if (p.total > 0 && p.refunded_amount === p.total) {
            // A fully refunded purchase settles exactly.
            expect(p.status, label).toBe('refunded');
            expect(p.returned_points, label).toBe(p.redeemed_points);
          } else {
            expect(p.status, label).toBe(p.refunded_amount > 0 ? 'partially_refunded' : 'committed');
          }
        }
      }),
      // No shrinking: each run is a few hundred real requests; the seed and counterexample are reported.
      { numRuns: 10, endOnFailure: true },
    );
  });
});

describe('parallel redeems on one customer', () => {
  it('lets exactly as many through as the balance covers', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 1000 });
    // 140 roubles: the 50% cap allows 70 points; the rest (70 roubles) earns 5% = 3 points.
    const responses = await inParallel(50, (i) =>
      postCommit(
        t.app,
        merchant,
        commitPayload(merchant, { customerId, total: 14_000, redeemPoints: 70, orderId: `redeem-${i}` }),
      ),
    );

    const succeeded = responses.filter((r) => r.statusCode === 201);
    const failed = responses.filter((r) => r.statusCode !== 201);
    expect(succeeded.length).toBe(Math.floor(1000 / 70));
    for (const res of failed) {
      expect(res.statusCode).toBe(422);
      expect(errorCode(res)).toBe('insufficient_points');
    }
    const earned = succeeded.reduce((sum, r) => sum + r.json<CommitResult>().purchase.earnedPoints, 0);
    for (const r of succeeded) expect(r.json<CommitResult>().purchase.redeemedPoints).toBe(70);
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({
      available: 1000 - 14 * 70 + earned,
      pending: 0,
      held: 0,
    });
    const purchases = await t.db
      .selectFrom('purchases')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('customer_id', '=', customerId)
      .executeTakeFirstOrThrow();
    expect(Number(purchases.n)).toBe(14);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });
});

describe('one Idempotency-Key sent many times at once', () => {
  /** Checks 20 parallel answers to one key: one original, replays identical to it, or 409 in use. */
  function expectOneOriginal(responses: LightMyRequestResponse[]) {
    const originals = responses.filter(
      (r) => r.statusCode === 201 && r.headers['idempotent-replayed'] !== 'true',
    );
    expect(originals.length).toBe(1);
    const original = originals[0];
    if (!original) throw new Error('no original answer');
    for (const res of responses) {
      if (res.statusCode === 201) {
        expect(res.json()).toEqual(original.json());
        if (res !== original) expect(res.headers['idempotent-replayed']).toBe('true');
      } else {
        expect(res.statusCode).toBe(409);
        expect(errorCode(res)).toBe('idempotency_key_in_use');
      }
    }
    return original;
  }

  it('commits a purchase once and replays it', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 500 });
    const key = `commit-${randomUUID()}`;
    const payload = commitPayload(merchant, { customerId, total: 10_000, redeemPoints: 50 });

    const responses = await inParallel(20, () => postCommit(t.app, merchant, payload, key));
    const original = expectOneOriginal(responses);
    const body = original.json<CommitResult>();

    const purchases = await t.db
      .selectFrom('purchases')
      .select('id')
      .where('merchant_id', '=', merchant.merchantId)
      .execute();
    expect(purchases.map((p) => p.id)).toEqual([body.purchase.id]);
    const entries = await t.db
      .selectFrom('ledger_entries')
      .select(['kind', 'points'])
      .where('purchase_id', '=', body.purchase.id)
      .orderBy('kind')
      .execute();
    expect(entries).toEqual([
      { kind: 'earn', points: body.purchase.earnedPoints },
      { kind: 'redeem', points: -50 },
    ]);
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({
      available: 500 - 50 + body.purchase.earnedPoints,
      pending: 0,
      held: 0,
    });

    const again = await postCommit(t.app, merchant, payload, key);
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(body);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('refunds once and replays it', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 500 });
    const commit = await postCommit(
      t.app,
      merchant,
      commitPayload(merchant, { customerId, total: 100_000, redeemPoints: 300 }),
    );
    expect(commit.statusCode).toBe(201);
    const purchase = commit.json<CommitResult>().purchase;
    // 700 roubles paid earn 35 points; refunding 40% returns 120 and revokes 14.
    expect(purchase.earnedPoints).toBe(35);
    const key = `refund-${randomUUID()}`;

    const responses = await inParallel(20, () => postRefund(t.app, merchant, purchase.id, 40_000, key));
    const original = expectOneOriginal(responses);
    const body = original.json<RefundResult>();
    expect(body.refund).toMatchObject({ amount: 40_000, returnedPoints: 120, revokedPoints: 14 });

    const refunds = await t.db
      .selectFrom('refunds')
      .select(['id', 'amount'])
      .where('purchase_id', '=', purchase.id)
      .execute();
    expect(refunds).toEqual([{ id: body.refund.id, amount: 40_000 }]);
    const entries = await t.db
      .selectFrom('ledger_entries')
      .select(['kind', 'points'])
      .where('refund_id', '=', body.refund.id)
      .orderBy('kind')
      .execute();
    expect(entries).toEqual([
      { kind: 'refund_return', points: 120 },
      { kind: 'refund_revoke', points: -14 },
    ]);
    const stored = await t.db
      .selectFrom('purchases')
      .select(['refunded_amount', 'status'])
      .where('id', '=', purchase.id)
      .executeTakeFirstOrThrow();
    expect(stored).toEqual({ refunded_amount: 40_000, status: 'partially_refunded' });
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({
      available: 500 - 300 + 35 + 120 - 14,
      pending: 0,
      held: 0,
    });

    const again = await postRefund(t.app, merchant, purchase.id, 40_000, key);
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(body);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });
});

describe('parallel partial refunds of one purchase', () => {
  it('never refunds more than the total, and the last refund settles exactly', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 1000 });
    const commit = await postCommit(
      t.app,
      merchant,
      commitPayload(merchant, { customerId, total: 100_000, redeemPoints: 333 }),
    );
    expect(commit.statusCode).toBe(201);
    const purchase = commit.json<CommitResult>().purchase;

    const responses = await inParallel(30, () => postRefund(t.app, merchant, purchase.id, 7_000));
    const succeeded = responses.filter((r) => r.statusCode === 201);
    for (const res of responses) {
      if (res.statusCode === 201) continue;
      expect(res.statusCode).toBe(422);
      expect(['refund_exceeds_remaining', 'purchase_fully_refunded']).toContain(errorCode(res));
    }
    // 100_000 / 7_000: 14 fit, leaving 2_000.
    expect(succeeded.length).toBe(14);
    const refunded = succeeded.reduce((sum, r) => sum + r.json<RefundResult>().refund.amount, 0);
    expect(refunded).toBe(98_000);

    const rest = await postRefund(t.app, merchant, purchase.id, undefined);
    expect(rest.statusCode).toBe(201);
    expect(rest.json<RefundResult>().refund.amount).toBe(2_000);

    const refunds = await t.db
      .selectFrom('refunds')
      .select(['amount', 'returned_points', 'revoked_points', 'unrecovered_points'])
      .where('purchase_id', '=', purchase.id)
      .execute();
    expect(refunds.reduce((s, r) => s + r.amount, 0)).toBe(100_000);
    expect(refunds.reduce((s, r) => s + r.returned_points, 0)).toBe(333);
    expect(refunds.reduce((s, r) => s + r.revoked_points + r.unrecovered_points, 0)).toBe(
      purchase.earnedPoints,
    );
    // Everything redeemed came back, everything earned was taken back: the customer is where they began.
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 1000, pending: 0, held: 0 });
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });
});

describe('expiry and activation runs at the same time', () => {
  it('expires each due lot exactly once across ten concurrent runs', async () => {
    const merchant = await createTestMerchant(t.db);
    const lifetimes = [2, 5, 9, 30, null];
    const customers = await inParallel(7, async () => {
      const { customerId } = await createTestCustomer(t.db, { merchant });
      for (const [i, lifetime] of lifetimes.entries()) {
        await adjustPoints(t.db, {
          merchantId: merchant.merchantId,
          customerId,
          points: 100 + i,
          reason: 'lot',
          rules: { ...merchant.rules, pointsLifetimeDays: lifetime },
        });
      }
      // Spend a little so the soonest lot is only partly left.
      await adjustPoints(t.db, {
        merchantId: merchant.merchantId,
        customerId,
        points: -40,
        reason: 'spend',
        rules: merchant.rules,
      });
      return customerId;
    });
    // Due at day 10: the 2-, 5- and 9-day lots: (100 - 40) + 101 + 102.
    const duePerCustomer = 60 + 101 + 102;
    const now = daysFromNow(10);
    const before = await lastLedgerId();

    const results = await inParallel(10, (i) =>
      expirePoints(t.db, { now, batchSize: i % 2 === 0 ? 500 : 2 }),
    );

    const expired = await t.db
      .selectFrom('ledger_entries')
      .select(['customer_id', 'lot_id', 'points'])
      .where('kind', '=', 'expire')
      .where('id', '>', before)
      .execute();
    // What the runs say they did is what the ledger holds (other tests' lots may fall due too).
    expect(results.reduce((sum, r) => sum + r.points, 0)).toBe(
      -expired.reduce((sum, e) => sum + e.points, 0),
    );
    const lotIds = expired.map((e) => e.lot_id);
    expect(new Set(lotIds).size).toBe(lotIds.length);
    for (const customerId of customers) {
      const mine = expired.filter((e) => e.customer_id === customerId);
      expect(mine.length).toBe(3);
      expect(mine.reduce((sum, e) => sum + e.points, 0)).toBe(-duePerCustomer);
      expect(await balanceOf(t.app, merchant, customerId)).toEqual({
        available: 100 + 101 + 102 + 103 + 104 - 40 - duePerCustomer,
        pending: 0,
        held: 0,
      });
    }
    const stillDue = await t.db
      .selectFrom('point_lots')
      .select('id')
      .where('customer_id', 'in', customers)
      .where('state', '=', 'active')
      .where('remaining', '>', 0)
      .where('expires_at', '<=', now)
      .execute();
    expect(stillDue).toEqual([]);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('activates each pending lot exactly once across ten concurrent runs', async () => {
    const merchant = await createTestMerchant(t.db, { rules: { pendingDays: 3 } });
    const customers = await inParallel(5, async () => {
      const { customerId } = await createTestCustomer(t.db, { merchant });
      const earned: number[] = [];
      for (const total of [10_000, 24_000]) {
        const res = await postCommit(t.app, merchant, commitPayload(merchant, { customerId, total }));
        expect(res.statusCode).toBe(201);
        earned.push(res.json<CommitResult>().purchase.earnedPoints);
      }
      return { customerId, earned: earned.reduce((a, b) => a + b, 0) };
    });
    for (const c of customers) {
      expect(await balanceOf(t.app, merchant, c.customerId)).toEqual({
        available: 0,
        pending: c.earned,
        held: 0,
      });
    }
    const before = await lastLedgerId();

    const now = daysFromNow(4);
    const results = await inParallel(10, (i) =>
      activatePoints(t.db, { now, batchSize: i % 2 === 0 ? 500 : 2 }),
    );

    const activated = await t.db
      .selectFrom('ledger_entries')
      .select(['customer_id', 'lot_id', 'bucket', 'points'])
      .where('kind', '=', 'activate')
      .where('id', '>', before)
      .execute();
    const intoAvailable = activated.filter((e) => e.bucket === 'available');
    expect(results.reduce((sum, r) => sum + r.points, 0)).toBe(
      intoAvailable.reduce((s, e) => s + e.points, 0),
    );
    const lotIds = intoAvailable.map((e) => e.lot_id);
    expect(new Set(lotIds).size).toBe(lotIds.length);
    for (const c of customers) {
      const mine = intoAvailable.filter((e) => e.customer_id === c.customerId);
      expect(mine.length).toBe(2);
      expect(await balanceOf(t.app, merchant, c.customerId)).toEqual({
        available: c.earned,
        pending: 0,
        held: 0,
      });
    }
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });
  it('lets expiry and activation runs overlap without failing (one lock order)', {
    timeout: 60_000,
  }, async () => {
    // Each run locks the balance rows of up to batchSize customers in one transaction, so two runs
    // that visit the same customers in different orders deadlock. Enough customers, and real
    // statistics (as autovacuum keeps them in production), that Postgres plans each run's customer
    // list as it would in production; the two lists then come in different orders.
    const merchant = await createTestMerchant(t.db, { rules: { pendingDays: 2, pointsLifetimeDays: 1 } });
    const both = 200;
    const customers = await inParallel(600, async (i) => {
      // Every customer has a lot due to expire; the first `both` also have pending points due.
      const { customerId } = await createTestCustomer(t.db, { merchant, points: 10 });
      if (i < both) {
        const res = await postCommit(t.app, merchant, commitPayload(merchant, { customerId, total: 10_000 }));
        expect(res.statusCode).toBe(201);
      }
      return customerId;
    });
    await sql`analyze point_lots`.execute(t.db);
    const now = daysFromNow(5);

    const outcomes = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? expirePoints : activatePoints)(t.db, { now })),
    );

    expect(outcomes.filter((o) => o.status === 'rejected').map((o) => String(o.reason))).toEqual([]);
    const stillPending = await t.db
      .selectFrom('point_lots')
      .select('id')
      .where('customer_id', 'in', customers)
      .where('state', '=', 'pending')
      .execute();
    expect(stillPending).toEqual([]);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });
});
