import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import {
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import { addLot, findLedgerViolations } from '../../../test/helpers/ledger.js';
import {
  balanceOf,
  commitPayload,
  daysFromNow,
  errorCode,
  postCommit,
  postRefund,
  quoteMaxRedeem,
  resolveCustomer,
} from '../../../test/helpers/pos.js';
import {
  activatePoints,
  adjustPoints,
  type CommitResult,
  expirePoints,
  type RefundResult,
  remindExpiringPoints,
} from './ledger.service.js';

// The ledger's rules, one at a time, through the POS API against real Postgres: idempotency,
// refunds, expiry and pending points, immutable entries and tenancy.

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.close();
});

interface PurchaseBody {
  purchase: {
    id: string;
    status: string;
    total: number;
    earnedPoints: number;
    redeemedPoints: number;
    refundedAmount: number;
    returnedPoints: number;
    revokedPoints: number;
    unrecoveredPoints: number;
    refunds: { id: string; amount: number; returnedPoints: number; revokedPoints: number }[];
  };
}

/** floor(points * refunded / total): the share of points that goes with `refunded` of `total`. */
function proRata(points: number, refunded: number, total: number): number {
  return Math.floor((points * refunded) / total);
}

/** Commits a purchase that must succeed and returns its answer. */
async function commit(
  merchant: TestMerchant,
  input: { customerId: string; total: number; redeemPoints?: number },
): Promise<CommitResult> {
  const res = await postCommit(t.app, merchant, commitPayload(merchant, input));
  expect(res.statusCode, res.body).toBe(201);
  return res.json<CommitResult>();
}

function getPurchase(merchant: TestMerchant, purchaseId: string) {
  return t.app.inject({
    method: 'GET',
    url: `/api/v1/integration/purchases/${purchaseId}`,
    headers: { 'x-api-key': merchant.apiKey },
  });
}

async function countPurchases(merchantId: string): Promise<number> {
  const row = await t.db
    .selectFrom('purchases')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('merchant_id', '=', merchantId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

describe('Idempotency-Key and orderId', () => {
  it('refuses the same key with another body and keeps the first purchase', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 500 });
    const key = randomUUID();
    const first = await postCommit(
      t.app,
      merchant,
      commitPayload(merchant, { customerId, total: 10_000 }),
      key,
    );
    expect(first.statusCode).toBe(201);
    const balance = await balanceOf(t.app, merchant, customerId);

    const other = await postCommit(
      t.app,
      merchant,
      commitPayload(merchant, { customerId, total: 20_000, redeemPoints: 100 }),
      key,
    );
    expect(other.statusCode).toBe(422);
    expect(errorCode(other)).toBe('idempotency_key_reuse');
    expect(await countPurchases(merchant.merchantId)).toBe(1);
    expect(await balanceOf(t.app, merchant, customerId)).toEqual(balance);

    // The same holds for refunds: one key, one refund amount.
    const purchaseId = first.json<CommitResult>().purchase.id;
    const refundKey = randomUUID();
    expect((await postRefund(t.app, merchant, purchaseId, 1_000, refundKey)).statusCode).toBe(201);
    const otherRefund = await postRefund(t.app, merchant, purchaseId, 2_000, refundKey);
    expect(otherRefund.statusCode).toBe(422);
    expect(errorCode(otherRefund)).toBe('idempotency_key_reuse');
    const purchase = (await getPurchase(merchant, purchaseId)).json<PurchaseBody>().purchase;
    expect(purchase.refundedAmount).toBe(1_000);
    expect(purchase.refunds).toHaveLength(1);
  });

  it('does not burn a key on a failed request: the retry after a top-up commits', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 30 });
    const key = randomUUID();
    const payload = commitPayload(merchant, { customerId, total: 20_000, redeemPoints: 80 });

    const refused = await postCommit(t.app, merchant, payload, key);
    expect(refused.statusCode).toBe(422);
    expect(errorCode(refused)).toBe('insufficient_points');
    expect(await countPurchases(merchant.merchantId)).toBe(0);

    await adjustPoints(t.db, {
      merchantId: merchant.merchantId,
      customerId,
      points: 100,
      reason: 'top-up',
      rules: merchant.rules,
    });
    const retried = await postCommit(t.app, merchant, payload, key);
    expect(retried.statusCode).toBe(201);
    expect(retried.headers['idempotent-replayed']).toBeUndefined();
    const body = retried.json<CommitResult>();
    expect(body.purchase.redeemedPoints).toBe(80);
    expect(body.balance).toEqual({ available: 130 - 80 + body.purchase.earnedPoints, pending: 0, held: 0 });

    const replayed = await postCommit(t.app, merchant, payload, key);
    expect(replayed.statusCode).toBe(201);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(replayed.json()).toEqual(body);
    expect(await countPurchases(merchant.merchantId)).toBe(1);
  });

  it('refuses an orderId used before, even under a new key', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 500 });
    const orderId = `pos-${randomUUID()}`;
    const first = await postCommit(
      t.app,
      merchant,
      commitPayload(merchant, { customerId, total: 10_000, orderId }),
    );
    expect(first.statusCode).toBe(201);
    const balance = await balanceOf(t.app, merchant, customerId);

    const again = await postCommit(
      t.app,
      merchant,
      commitPayload(merchant, { customerId, total: 30_000, redeemPoints: 50, orderId }),
    );
    expect(again.statusCode).toBe(409);
    expect(errorCode(again)).toBe('duplicate_order_id');
    expect(await countPurchases(merchant.merchantId)).toBe(1);
    expect(await balanceOf(t.app, merchant, customerId)).toEqual(balance);
  });

  it('keeps keys and orderIds per merchant', async () => {
    const merchantA = await createTestMerchant(t.db, { name: 'A' });
    const merchantB = await createTestMerchant(t.db, { name: 'B' });
    const a = await createTestCustomer(t.db, { merchant: merchantA, points: 100 });
    const b = await createTestCustomer(t.db, { merchant: merchantB, points: 100 });
    const key = randomUUID();
    const orderId = `pos-${randomUUID()}`;

    const resA = await postCommit(
      t.app,
      merchantA,
      commitPayload(merchantA, { customerId: a.customerId, total: 10_000, orderId }),
      key,
    );
    const resB = await postCommit(
      t.app,
      merchantB,
      commitPayload(merchantB, { customerId: b.customerId, total: 10_000, orderId }),
      key,
    );
    expect(resA.statusCode).toBe(201);
    expect(resB.statusCode).toBe(201);
    expect(resB.headers['idempotent-replayed']).toBeUndefined();
    const purchaseA = resA.json<CommitResult>().purchase;
    const purchaseB = resB.json<CommitResult>().purchase;
    expect(purchaseB.id).not.toBe(purchaseA.id);
    expect(await countPurchases(merchantA.merchantId)).toBe(1);
    expect(await countPurchases(merchantB.merchantId)).toBe(1);
    expect(await balanceOf(t.app, merchantB, b.customerId)).toEqual({
      available: 100 + purchaseB.earnedPoints,
      pending: 0,
      held: 0,
    });
  });
});

describe('refunds', () => {
  it('refunds in parts pro rata, the last part settling exactly', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 1000 });
    // 1000 roubles, 333 paid with points; the 667 roubles paid earn 5% = 33 points.
    const { purchase } = await commit(merchant, { customerId, total: 100_000, redeemPoints: 333 });
    expect(purchase).toMatchObject({ redeemedPoints: 333, earnedPoints: 33 });
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 700, pending: 0, held: 0 });

    let refunded = 0;
    let available = 700;
    for (const amount of [30_000, 30_000, 30_000, undefined]) {
      const res = await postRefund(t.app, merchant, purchase.id, amount);
      expect(res.statusCode).toBe(201);
      const { refund, balance } = res.json<RefundResult>();
      const after = refunded + (amount ?? 100_000 - refunded);
      const returned = proRata(333, after, 100_000) - proRata(333, refunded, 100_000);
      const revoked = proRata(33, after, 100_000) - proRata(33, refunded, 100_000);
      expect(refund).toMatchObject({
        amount: after - refunded,
        returnedPoints: returned,
        revokedPoints: revoked,
        unrecoveredPoints: 0,
      });
      available += returned - revoked;
      expect(balance).toEqual({ available, pending: 0, held: 0 });
      refunded = after;
      const stored = (await getPurchase(merchant, purchase.id)).json<PurchaseBody>().purchase;
      expect(stored.status).toBe(refunded === 100_000 ? 'refunded' : 'partially_refunded');
      expect(stored.refundedAmount).toBe(refunded);
    }

    const stored = (await getPurchase(merchant, purchase.id)).json<PurchaseBody>().purchase;
    expect(stored.refunds.map((r) => [r.amount, r.returnedPoints, r.revokedPoints])).toEqual([
      [30_000, 99, 9],
      [30_000, 100, 10],
      [30_000, 100, 10],
      [10_000, 34, 4],
    ]);
    expect(stored).toMatchObject({ returnedPoints: 333, revokedPoints: 33, unrecoveredPoints: 0 });
    // All that was paid with points came back and all that was earned went: where the customer began.
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 1000, pending: 0, held: 0 });
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('refuses more than is left, and anything once fully refunded', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 200 });
    const { purchase } = await commit(merchant, { customerId, total: 20_000, redeemPoints: 100 });
    expect((await postRefund(t.app, merchant, purchase.id, 15_000)).statusCode).toBe(201);
    const balance = await balanceOf(t.app, merchant, customerId);

    const tooMuch = await postRefund(t.app, merchant, purchase.id, 5_001);
    expect(tooMuch.statusCode).toBe(422);
    expect(errorCode(tooMuch)).toBe('refund_exceeds_remaining');
    expect(await balanceOf(t.app, merchant, customerId)).toEqual(balance);
    expect((await getPurchase(merchant, purchase.id)).json<PurchaseBody>().purchase.refundedAmount).toBe(
      15_000,
    );

    const rest = await postRefund(t.app, merchant, purchase.id, 5_000);
    expect(rest.statusCode).toBe(201);
    const done = await postRefund(t.app, merchant, purchase.id, 1);
    expect(done.statusCode).toBe(422);
    expect(errorCode(done)).toBe('purchase_fully_refunded');
    const noAmount = await postRefund(t.app, merchant, purchase.id, undefined);
    expect(noAmount.statusCode).toBe(422);
    expect(errorCode(noAmount)).toBe('purchase_fully_refunded');
    const stored = (await getPurchase(merchant, purchase.id)).json<PurchaseBody>().purchase;
    expect(stored).toMatchObject({ status: 'refunded', refundedAmount: 20_000, returnedPoints: 100 });
    expect(stored.refunds).toHaveLength(2);
  });

  it('refunds all that is left when no amount is given', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 300 });
    const { purchase } = await commit(merchant, { customerId, total: 55_555, redeemPoints: 200 });

    const res = await postRefund(t.app, merchant, purchase.id, undefined);
    expect(res.statusCode).toBe(201);
    expect(res.json<RefundResult>().refund).toMatchObject({
      amount: 55_555,
      returnedPoints: 200,
      revokedPoints: purchase.earnedPoints,
      unrecoveredPoints: 0,
    });
    expect(res.json<RefundResult>().balance).toEqual({ available: 300, pending: 0, held: 0 });
    const stored = (await getPurchase(merchant, purchase.id)).json<PurchaseBody>().purchase;
    expect(stored).toMatchObject({ status: 'refunded', refundedAmount: 55_555 });
  });

  it('never takes the balance below zero when the earned points are already spent', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant });
    // 100 roubles earn 5 points...
    const earned = await commit(merchant, { customerId, total: 10_000 });
    expect(earned.purchase.earnedPoints).toBe(5);
    // ...spent on a 10-rouble purchase (which earns nothing itself).
    const spent = await commit(merchant, { customerId, total: 1_000, redeemPoints: 5 });
    expect(spent.purchase.earnedPoints).toBe(0);
    expect(spent.balance).toEqual({ available: 0, pending: 0, held: 0 });
    await adjustPoints(t.db, {
      merchantId: merchant.merchantId,
      customerId,
      points: 3,
      reason: 'goodwill',
      rules: merchant.rules,
    });

    const res = await postRefund(t.app, merchant, earned.purchase.id, undefined);
    expect(res.statusCode).toBe(201);
    const { refund, balance } = res.json<RefundResult>();
    // What is there is taken back, the rest is recorded as unrecovered.
    expect(refund).toMatchObject({ returnedPoints: 0, revokedPoints: 3, unrecoveredPoints: 2 });
    expect(balance).toEqual({ available: 0, pending: 0, held: 0 });
    const stored = (await getPurchase(merchant, earned.purchase.id)).json<PurchaseBody>().purchase;
    expect(stored).toMatchObject({ status: 'refunded', revokedPoints: 3, unrecoveredPoints: 2 });
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('revokes earned points that are still pending from pending', async () => {
    const merchant = await createTestMerchant(t.db, { rules: { pendingDays: 7 } });
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 100 });
    const { purchase, balance } = await commit(merchant, { customerId, total: 20_000 });
    expect(purchase.earnedPoints).toBe(10);
    expect(balance).toEqual({ available: 100, pending: 10, held: 0 });

    const part = await postRefund(t.app, merchant, purchase.id, 5_000);
    expect(part.statusCode).toBe(201);
    expect(part.json<RefundResult>().refund).toMatchObject({ revokedPoints: 2, unrecoveredPoints: 0 });
    expect(part.json<RefundResult>().balance).toEqual({ available: 100, pending: 8, held: 0 });

    const rest = await postRefund(t.app, merchant, purchase.id, undefined);
    expect(rest.statusCode).toBe(201);
    expect(rest.json<RefundResult>().refund).toMatchObject({ revokedPoints: 8, unrecoveredPoints: 0 });
    expect(rest.json<RefundResult>().balance).toEqual({ available: 100, pending: 0, held: 0 });
    const revokes = await t.db
      .selectFrom('ledger_entries')
      .select(['bucket', 'points'])
      .where('purchase_id', '=', purchase.id)
      .where('kind', '=', 'refund_revoke')
      .orderBy('id')
      .execute();
    expect(revokes).toEqual([
      { bucket: 'pending', points: -2 },
      { bucket: 'pending', points: -8 },
    ]);

    // Nothing is left to become available once the pending period ends.
    await activatePoints(t.db, { now: daysFromNow(8) });
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 100, pending: 0, held: 0 });
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });
});

describe('expiry and pending points', () => {
  it('spends the soonest-expiring points first and expires exactly what is left of due lots', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant });
    await addLot(t.db, merchant, customerId, 100, 10);
    await addLot(t.db, merchant, customerId, 100, null);
    await addLot(t.db, merchant, customerId, 100, 5);
    const lotsOf = async () => {
      const lots = await t.db
        .selectFrom('point_lots')
        .select(['source', 'remaining', 'state'])
        .where('customer_id', '=', customerId)
        .orderBy('id')
        .execute();
      return lots;
    };

    // 300 roubles: up to 150 points; 150 paid in money earns 7 points (a new lot).
    const { purchase } = await commit(merchant, { customerId, total: 30_000, redeemPoints: 150 });
    expect(purchase.earnedPoints).toBe(7);
    expect(await lotsOf()).toEqual([
      { source: 'adjust', remaining: 50, state: 'active' },
      { source: 'adjust', remaining: 100, state: 'active' },
      { source: 'adjust', remaining: 0, state: 'active' },
      { source: 'earn', remaining: 7, state: 'active' },
    ]);

    const expiredEntries = () =>
      t.db
        .selectFrom('ledger_entries')
        .select('points')
        .where('customer_id', '=', customerId)
        .where('kind', '=', 'expire')
        .execute();
    // At day 7 only the 5-day lot is due, and nothing of it is left.
    await expirePoints(t.db, { now: daysFromNow(7) });
    expect(await expiredEntries()).toEqual([]);
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 157, pending: 0, held: 0 });

    // At day 11 the 10-day lot is due: its 50 remaining points go, nothing else.
    await expirePoints(t.db, { now: daysFromNow(11) });
    expect(await expiredEntries()).toEqual([{ points: -50 }]);
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 107, pending: 0, held: 0 });
    expect((await lotsOf())[0]).toEqual({ source: 'adjust', remaining: 0, state: 'expired' });
    await expirePoints(t.db, { now: daysFromNow(11) });
    expect(await expiredEntries()).toEqual([{ points: -50 }]);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('makes pending points available once their pending period is over, once', async () => {
    const merchant = await createTestMerchant(t.db, { rules: { pendingDays: 3 } });
    const { customerId } = await createTestCustomer(t.db, { merchant });
    const { purchase } = await commit(merchant, { customerId, total: 20_000 });
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({
      available: 0,
      pending: purchase.earnedPoints,
      held: 0,
    });

    await activatePoints(t.db, { now: daysFromNow(1) });
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({
      available: 0,
      pending: purchase.earnedPoints,
      held: 0,
    });
    await activatePoints(t.db, { now: daysFromNow(3.5) });
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({
      available: purchase.earnedPoints,
      pending: 0,
      held: 0,
    });
    await activatePoints(t.db, { now: daysFromNow(4) });
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({
      available: purchase.earnedPoints,
      pending: 0,
      held: 0,
    });
    const entries = await t.db
      .selectFrom('ledger_entries')
      .select(['bucket', 'points'])
      .where('customer_id', '=', customerId)
      .where('kind', '=', 'activate')
      .orderBy('bucket')
      .execute();
    expect(entries).toEqual([
      { bucket: 'available', points: purchase.earnedPoints },
      { bucket: 'pending', points: -purchase.earnedPoints },
    ]);
  });

  it('activates every due pending lot in batches, also when some were refunded while pending', async () => {
    const merchant = await createTestMerchant(t.db, { rules: { pendingDays: 2 } });
    const earners: { customerId: string; earned: number }[] = [];
    for (let i = 0; i < 6; i++) {
      const { customerId } = await createTestCustomer(t.db, { merchant });
      const { purchase } = await commit(merchant, { customerId, total: 20_000 });
      earners.push({ customerId, earned: purchase.earnedPoints });
      // A customer who returned the purchase during the pending period: a pending lot with nothing left.
      const returner = await createTestCustomer(t.db, { merchant });
      const returned = await commit(merchant, { customerId: returner.customerId, total: 20_000 });
      expect((await postRefund(t.app, merchant, returned.purchase.id, undefined)).statusCode).toBe(201);
    }

    // Small batches, as a big backlog would be processed.
    await activatePoints(t.db, { now: daysFromNow(3), batchSize: 2 });

    for (const { customerId, earned } of earners) {
      expect(await balanceOf(t.app, merchant, customerId)).toEqual({
        available: earned,
        pending: 0,
        held: 0,
      });
    }
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('expires every due lot in batches, when customers have several due lots each', async () => {
    const merchant = await createTestMerchant(t.db);
    const customers: string[] = [];
    for (const lots of [3, 1, 2]) {
      const { customerId } = await createTestCustomer(t.db, { merchant });
      for (let i = 1; i <= lots; i++) await addLot(t.db, merchant, customerId, 10 * i, i);
      await addLot(t.db, merchant, customerId, 5, null);
      customers.push(customerId);
    }

    // Batches of two lots: a batch may hold fewer customers than lots, and the run goes on.
    await expirePoints(t.db, { now: daysFromNow(5), batchSize: 2 });

    for (const customerId of customers) {
      expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 5, pending: 0, held: 0 });
    }
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from ledger_entries where kind = 'expire' and merchant_id = ${merchant.merchantId}`.execute(
      t.db,
    );
    expect(rows[0]?.n).toBe(6);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('does not let pending points be redeemed', async () => {
    const merchant = await createTestMerchant(t.db, { rules: { pendingDays: 3 } });
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 10 });
    await commit(merchant, { customerId, total: 20_000 });
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 10, pending: 10, held: 0 });

    expect(await quoteMaxRedeem(t.app, merchant, customerId, 100_000)).toBe(10);

    const tooMuch = await postCommit(
      t.app,
      merchant,
      commitPayload(merchant, { customerId, total: 100_000, redeemPoints: 15 }),
    );
    expect(tooMuch.statusCode).toBe(422);
    expect(errorCode(tooMuch)).toBe('insufficient_points');
    const allAvailable = await commit(merchant, { customerId, total: 100_000, redeemPoints: 10 });
    expect(allAvailable.balance.available).toBe(0);
  });
});

describe('expiry reminders', () => {
  it('tells each customer once about the points that expire within the window', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant });
    const other = await createTestCustomer(t.db, { merchant });
    await addLot(t.db, merchant, customerId, 30, 3);
    await addLot(t.db, merchant, customerId, 20, 5);
    await addLot(t.db, merchant, customerId, 40, 30);
    await addLot(t.db, merchant, other.customerId, 10, null);
    const events = () =>
      t.db
        .selectFrom('outbox_events')
        .select(['payload'])
        .where('type', '=', 'points.expiring')
        .where('merchant_id', '=', merchant.merchantId)
        .execute();

    const first = await remindExpiringPoints(t.db, { withinDays: 7 });
    expect(first).toEqual({ customers: 1, points: 50 });
    const [event] = await events();
    expect(event?.payload).toMatchObject({
      customerId,
      points: 50,
      balance: { available: 90, pending: 0, held: 0 },
    });
    const payload = (event?.payload ?? {}) as { expiresAt?: string };
    const expiresAt = new Date(String(payload.expiresAt)).getTime();
    expect(Math.abs(expiresAt - daysFromNow(3).getTime())).toBeLessThan(60_000);

    // Nothing twice; the 30-day lot is reminded of when its time comes.
    expect(await remindExpiringPoints(t.db, { withinDays: 7 })).toEqual({ customers: 0, points: 0 });
    expect(await remindExpiringPoints(t.db, { withinDays: 7, now: daysFromNow(25) })).toEqual({
      customers: 1,
      points: 40,
    });
    expect(await events()).toHaveLength(2);
  });
});

describe('ledger entries', () => {
  it('cannot be changed or deleted', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 50 });
    const entry = await t.db
      .selectFrom('ledger_entries')
      .selectAll()
      .where('customer_id', '=', customerId)
      .executeTakeFirstOrThrow();

    await expect(
      sql`update ledger_entries set points = points + 1 where id = ${entry.id}`.execute(t.db),
    ).rejects.toThrow(/immutable/);
    await expect(sql`delete from ledger_entries where id = ${entry.id}`.execute(t.db)).rejects.toThrow(
      /immutable/,
    );
    expect(
      await t.db.selectFrom('ledger_entries').selectAll().where('id', '=', entry.id).executeTakeFirst(),
    ).toEqual(entry);
  });
});

describe('tenancy', () => {
  it("hides one merchant's purchases and customers from another's key", async () => {
    const merchantA = await createTestMerchant(t.db, { name: 'A' });
    const merchantB = await createTestMerchant(t.db, { name: 'B' });
    const a = await createTestCustomer(t.db, { merchant: merchantA, points: 100 });
    const { purchase } = await commit(merchantA, {
      customerId: a.customerId,
      total: 10_000,
      redeemPoints: 50,
    });

    const fetched = await getPurchase(merchantB, purchase.id);
    expect(fetched.statusCode).toBe(404);
    expect(errorCode(fetched)).toBe('purchase_not_found');
    const refunded = await postRefund(t.app, merchantB, purchase.id, undefined);
    expect(refunded.statusCode).toBe(404);
    expect(errorCode(refunded)).toBe('purchase_not_found');
    const stored = (await getPurchase(merchantA, purchase.id)).json<PurchaseBody>().purchase;
    expect(stored).toMatchObject({ status: 'committed', refundedAmount: 0, refunds: [] });

    for (const ref of [{ customerId: a.customerId }, { phone: a.phone }]) {
      const res = await resolveCustomer(t.app, merchantB, ref);
      expect(res.statusCode).toBe(404);
      expect(errorCode(res)).toBe('customer_not_found');
    }
    const foreignCommit = await postCommit(
      t.app,
      merchantB,
      commitPayload(merchantB, { customerId: a.customerId, total: 10_000, redeemPoints: 10 }),
    );
    expect(foreignCommit.statusCode).toBe(404);
    expect(errorCode(foreignCommit)).toBe('customer_not_found');
    expect(await countPurchases(merchantB.merchantId)).toBe(0);
    expect(await balanceOf(t.app, merchantA, a.customerId)).toEqual({
      available: 50 + purchase.earnedPoints,
      pending: 0,
      held: 0,
    });
  });
});
