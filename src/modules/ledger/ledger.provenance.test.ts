import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import {
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import { addLot, findLedgerViolations, findProvenanceViolations } from '../../../test/helpers/ledger.js';
import {
  balanceOf,
  commitPayload,
  DAY_MS,
  daysFromNow,
  errorCode,
  postCommit,
  postRefund,
  quoteMaxRedeem,
} from '../../../test/helpers/pos.js';
import { type CommitResult, expirePoints, type RefundResult } from './ledger.service.js';

// Where points go when refunds meet expiry and each other (docs/decisions/002-ledger-provenance.md):
// one regression test per defect found by the ledger audit, through the POS API on real Postgres.

const MAX_CODE_FAILURES = 3;

let t: TestApp;
beforeAll(async () => {
  // Few failed code lookups lock a key out, so a miscounted failure shows at once.
  t = await createTestApp({ env: { CODE_RESOLVE_MAX_FAILURES: String(MAX_CODE_FAILURES) } });
});
afterAll(async () => {
  await t.close();
});

async function commit(
  merchant: TestMerchant,
  input: { customerId: string; total: number; redeemPoints?: number },
): Promise<CommitResult['purchase']> {
  const res = await postCommit(t.app, merchant, commitPayload(merchant, input));
  expect(res.statusCode, res.body).toBe(201);
  return res.json<CommitResult>().purchase;
}

async function refund(merchant: TestMerchant, purchaseId: string, amount?: number) {
  const res = await postRefund(t.app, merchant, purchaseId, amount);
  expect(res.statusCode, res.body).toBe(201);
  return res.json<RefundResult>();
}

async function purchaseFigures(merchant: TestMerchant, purchaseId: string) {
  const res = await t.app.inject({
    method: 'GET',
    url: `/api/v1/integration/purchases/${purchaseId}`,
    headers: { 'x-api-key': merchant.apiKey },
  });
  expect(res.statusCode).toBe(200);
  return res.json<{
    purchase: { returnedPoints: number; revokedPoints: number; unrecoveredPoints: number; status: string };
  }>().purchase;
}

/** Moves a lot's expiry to `at`, as if it had been earned earlier. */
async function setLotExpiry(lotWhere: { purchaseId?: string; customerId?: string }, at: Date) {
  const query = t.db.updateTable('point_lots').set({ expires_at: at });
  if (lotWhere.purchaseId) await query.where('purchase_id', '=', lotWhere.purchaseId).execute();
  else if (lotWhere.customerId) await query.where('customer_id', '=', lotWhere.customerId).execute();
}

async function expectBooksBalanced() {
  expect(await findLedgerViolations(t.db)).toEqual([]);
  expect(await findProvenanceViolations(t.db)).toEqual([]);
}

describe('1. a refund after the earned lot expired', () => {
  it('counts what expired as gone, not as owed', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant });
    const p1 = await commit(merchant, { customerId, total: 100_000 });
    const p2 = await commit(merchant, { customerId, total: 1_000_000 });
    expect([p1.earnedPoints, p2.earnedPoints]).toEqual([50, 500]);
    // P1 was earned earlier: its lot expires tomorrow; `points:expire --at` the day after.
    await setLotExpiry({ purchaseId: p1.id }, daysFromNow(1));
    expect(await expirePoints(t.db, { now: daysFromNow(2) })).toEqual({ customers: 1, points: 50 });
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 500, pending: 0, held: 0 });

    const { refund: r, balance } = await refund(merchant, p1.id);
    expect(r).toMatchObject({ returnedPoints: 0, revokedPoints: 0, unrecoveredPoints: 0 });
    expect(balance).toEqual({ available: 500, pending: 0, held: 0 });
    await expectBooksBalanced();
  });

  it('reports nothing unrecovered when the customer kept none of the points', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant });
    const p1 = await commit(merchant, { customerId, total: 100_000 });
    await setLotExpiry({ purchaseId: p1.id }, daysFromNow(1));
    await expirePoints(t.db, { now: daysFromNow(2) });

    const { refund: r, balance } = await refund(merchant, p1.id);
    expect(r).toMatchObject({ revokedPoints: 0, unrecoveredPoints: 0 });
    expect(balance).toEqual({ available: 0, pending: 0, held: 0 });
    expect(await purchaseFigures(merchant, p1.id)).toMatchObject({ revokedPoints: 0, unrecoveredPoints: 0 });
  });
});

describe('2. returned redeemed points', () => {
  it('go back to the lots they came from, with their expiry', async () => {
    const merchant = await createTestMerchant(t.db, { rules: { earnRateBp: 0 } });
    const { customerId } = await createTestCustomer(t.db, { merchant });
    await addLot(t.db, merchant, customerId, 100, 5);
    const lots = () =>
      t.db
        .selectFrom('point_lots')
        .select(['id', 'remaining', 'expires_at'])
        .where('customer_id', '=', customerId)
        .execute();
    const [before] = await lots();

    const q = await commit(merchant, { customerId, total: 20_000, redeemPoints: 100 });
    const { refund: r, balance } = await refund(merchant, q.id);
    expect(r.returnedPoints).toBe(100);
    expect(balance).toEqual({ available: 100, pending: 0, held: 0 });
    // No new lot with a fresh lifetime: the same lot, the same expiry.
    expect(await lots()).toEqual([{ ...before, remaining: 100 }]);
    await expirePoints(t.db, { now: daysFromNow(6) });
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 0, pending: 0, held: 0 });
    await expectBooksBalanced();
  });

  it('expire at once when their lot expired in the meantime', async () => {
    const merchant = await createTestMerchant(t.db, { rules: { earnRateBp: 0 } });
    const { customerId } = await createTestCustomer(t.db, { merchant });
    await addLot(t.db, merchant, customerId, 100, 5);
    const q = await commit(merchant, { customerId, total: 20_000, redeemPoints: 100 });
    await setLotExpiry({ customerId }, new Date(Date.now() - DAY_MS));

    const { refund: r, balance } = await refund(merchant, q.id);
    expect(r.returnedPoints).toBe(100);
    expect(balance).toEqual({ available: 0, pending: 0, held: 0 });
    const expired = await t.db
      .selectFrom('ledger_entries')
      .select((eb) => eb.fn.sum<number>('points').as('points'))
      .where('customer_id', '=', customerId)
      .where('kind', '=', 'expire')
      .executeTakeFirstOrThrow();
    expect(Number(expired.points)).toBe(-100);
    await expectBooksBalanced();
  });
});

describe('3. the order of refunds', () => {
  it('does not change the final balance, and unrecovered points stay truthful', async () => {
    const merchant = await createTestMerchant(t.db);
    const scenario = async () => {
      const { customerId } = await createTestCustomer(t.db, { merchant });
      const p1 = await commit(merchant, { customerId, total: 100_000 });
      // P2 pays with P1's 50 points; the 140 roubles paid in money earn 7.
      const p2 = await commit(merchant, { customerId, total: 19_000, redeemPoints: 50 });
      expect([p1.earnedPoints, p2.earnedPoints]).toEqual([50, 7]);
      return { customerId, p1, p2 };
    };

    const a = await scenario();
    const first = await refund(merchant, a.p1.id);
    // P1's points were spent on P2: the 7 there are taken, 43 are owed until points come back.
    expect(first.refund).toMatchObject({ revokedPoints: 7, unrecoveredPoints: 43 });
    await refund(merchant, a.p2.id);
    const b = await scenario();
    await refund(merchant, b.p2.id);
    await refund(merchant, b.p1.id);

    expect(await balanceOf(t.app, merchant, a.customerId)).toEqual({ available: 0, pending: 0, held: 0 });
    expect(await balanceOf(t.app, merchant, b.customerId)).toEqual({ available: 0, pending: 0, held: 0 });
    for (const { p1, p2 } of [a, b]) {
      expect(await purchaseFigures(merchant, p1.id)).toMatchObject({
        status: 'refunded',
        revokedPoints: 50,
        unrecoveredPoints: 0,
      });
      expect(await purchaseFigures(merchant, p2.id)).toMatchObject({
        returnedPoints: 50,
        revokedPoints: 7,
        unrecoveredPoints: 0,
      });
    }
    await expectBooksBalanced();
  });
});

describe('4. points past their expiry', () => {
  it('are gone at once for balance, quote and redeem, before the expiry job runs', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId, token } = await createTestCustomer(t.db, { merchant, points: 100 });
    await addLot(t.db, merchant, customerId, 30, null);
    await t.db
      .updateTable('point_lots')
      .set({ expires_at: new Date(Date.now() - 60_000) })
      .where('customer_id', '=', customerId)
      .where('expires_at', 'is not', null)
      .execute();

    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 30, pending: 0, held: 0 });
    const me = await t.app.inject({
      method: 'GET',
      url: '/api/v1/client/me',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(me.json<{ balance: unknown }>().balance).toEqual({ available: 30, pending: 0, held: 0 });
    expect(await quoteMaxRedeem(t.app, merchant, customerId, 100_000)).toBe(30);
    const tooMuch = await postCommit(
      t.app,
      merchant,
      commitPayload(merchant, { customerId, total: 100_000, redeemPoints: 31 }),
    );
    expect(tooMuch.statusCode).toBe(422);
    expect(errorCode(tooMuch)).toBe('insufficient_points');

    // A write expires them itself; the job finds nothing left to do.
    const ok = await commit(merchant, { customerId, total: 6_000, redeemPoints: 30 });
    expect(ok.redeemedPoints).toBe(30);
    expect(await expirePoints(t.db)).toEqual({ customers: 0, points: 0 });
    await expectBooksBalanced();
  });
});

describe('5. one Idempotency-Key with a customer code, sent many times at once', () => {
  it('answers 201 or 409, never 404, and counts no failed code lookup', async () => {
    const merchant = await createTestMerchant(t.db);
    const customer = await createTestCustomer(t.db, { merchant, points: 500 });
    const issueCode = async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/client/code',
        headers: { authorization: `Bearer ${customer.token}` },
      });
      expect(res.statusCode).toBe(200);
      return res.json<{ code: string }>().code;
    };

    for (let round = 0; round < 2; round++) {
      const code = await issueCode();
      const key = randomUUID();
      const payload = { ...commitPayload(merchant, { customerId: customer.customerId, total: 10_000 }) };
      const body = { ...payload, customer: { code } };
      const responses = await Promise.all(
        Array.from({ length: 20 }, () => postCommit(t.app, merchant, body, key)),
      );
      const statuses = responses.map((r) => r.statusCode);
      expect(
        statuses.filter((s) => s !== 201 && s !== 409),
        statuses.join(','),
      ).toEqual([]);
      expect(
        responses.filter((r) => r.statusCode === 201 && r.headers['idempotent-replayed'] !== 'true'),
      ).toHaveLength(1);
      for (const r of responses.filter((r) => r.statusCode === 409)) {
        expect(errorCode(r)).toBe('idempotency_key_in_use');
      }
      // Afterwards the key replays, though the code is used up.
      const replay = await postCommit(t.app, merchant, body, key);
      expect(replay.statusCode).toBe(201);
      expect(replay.headers['idempotent-replayed']).toBe('true');
    }

    // The key may still look customers up by code: none of the above was a guess.
    const resolved = await t.app.inject({
      method: 'POST',
      url: '/api/v1/integration/customers/resolve',
      headers: { 'x-api-key': merchant.apiKey },
      payload: { code: await issueCode() },
    });
    expect(resolved.statusCode).toBe(200);
    // A real miss still counts.
    const miss = await t.app.inject({
      method: 'POST',
      url: '/api/v1/integration/customers/resolve',
      headers: { 'x-api-key': merchant.apiKey },
      payload: { code: '000000' },
    });
    expect(miss.statusCode).toBe(404);
  });
});

describe('6. a refund request hash', () => {
  it('does not depend on how the ids are spelled', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 100 });
    const p = await commit(merchant, { customerId, total: 10_000, redeemPoints: 20 });
    const key = randomUUID();
    const upper = await t.app.inject({
      method: 'POST',
      url: `/api/v1/integration/purchases/${p.id.toUpperCase()}/refunds`,
      headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': key },
      payload: { amount: 5_000, outletId: merchant.outletId.toUpperCase() },
    });
    expect(upper.statusCode, upper.body).toBe(201);
    const lower = await postRefund(t.app, merchant, p.id, 5_000, key);
    expect(lower.statusCode, lower.body).toBe(201);
    expect(lower.headers['idempotent-replayed']).toBe('true');
    expect(lower.json()).toEqual(upper.json());
    expect((await purchaseFigures(merchant, p.id)).status).toBe('partially_refunded');
  });
});

describe('7. refunds by receipt line', () => {
  const receipt = {
    total: 150_000,
    items: [
      { sku: 'coffee-beans', amount: 100_000 },
      { sku: 'cigarettes', amount: 50_000, excluded: true },
    ],
  };

  async function commitReceipt(merchant: TestMerchant, customerId: string) {
    const res = await postCommit(t.app, merchant, {
      ...commitPayload(merchant, { customerId, total: receipt.total, redeemPoints: 200 }),
      receipt,
    });
    expect(res.statusCode, res.body).toBe(201);
    // 200 points pay for 200 roubles of the eligible 1000; the 800 paid in money earn 5% = 40.
    const purchase = res.json<CommitResult>().purchase;
    expect(purchase).toMatchObject({ redeemedPoints: 200, earnedPoints: 40 });
    return purchase;
  }

  function refundItems(merchant: TestMerchant, purchaseId: string, items: object[]) {
    return t.app.inject({
      method: 'POST',
      url: `/api/v1/integration/purchases/${purchaseId}/refunds`,
      headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': randomUUID() },
      payload: { items, outletId: merchant.outletId },
    });
  }

  it('moves no points for an excluded line, and the points of an eligible line', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 300 });
    const p = await commitReceipt(merchant, customerId);

    const excluded = await refundItems(merchant, p.id, [{ sku: 'cigarettes', amount: 50_000 }]);
    expect(excluded.statusCode, excluded.body).toBe(201);
    expect(excluded.json<RefundResult>().refund).toMatchObject({
      amount: 50_000,
      returnedPoints: 0,
      revokedPoints: 0,
    });
    const half = await refundItems(merchant, p.id, [{ index: 0, amount: 50_000 }]);
    expect(half.json<RefundResult>().refund).toMatchObject({ returnedPoints: 100, revokedPoints: 20 });
    const rest = await postRefund(t.app, merchant, p.id, undefined);
    expect(rest.json<RefundResult>().refund).toMatchObject({
      amount: 50_000,
      returnedPoints: 100,
      revokedPoints: 20,
    });
    expect(rest.json<RefundResult>().balance).toEqual({ available: 300, pending: 0, held: 0 });
    await expectBooksBalanced();
  });

  it('refuses lines that do not exist or have nothing left, and mixing with a part amount', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 300 });
    const p = await commitReceipt(merchant, customerId);

    const unknown = await refundItems(merchant, p.id, [{ sku: 'tea', amount: 1 }]);
    expect(unknown.statusCode).toBe(422);
    expect(unknown.json()).toMatchObject({
      error: { code: 'refund_item_not_found', details: { field: 'items.0.sku' } },
    });
    const beyond = await refundItems(merchant, p.id, [{ index: 2, amount: 1 }]);
    expect(errorCode(beyond)).toBe('refund_item_not_found');
    const tooMuch = await refundItems(merchant, p.id, [{ index: 1, amount: 50_001 }]);
    expect(tooMuch.statusCode).toBe(422);
    expect(tooMuch.json()).toMatchObject({
      error: { code: 'refund_exceeds_remaining', details: { field: 'items.0.amount', remaining: 50_000 } },
    });
    const both = await t.app.inject({
      method: 'POST',
      url: `/api/v1/integration/purchases/${p.id}/refunds`,
      headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': randomUUID() },
      payload: { amount: 1_000, items: [{ index: 0, amount: 1_000 }], outletId: merchant.outletId },
    });
    expect(both.statusCode).toBe(400);

    expect((await refundItems(merchant, p.id, [{ index: 0, amount: 1_000 }])).statusCode).toBe(201);
    const part = await postRefund(t.app, merchant, p.id, 1_000);
    expect(errorCode(part)).toBe('refund_mode_conflict');
    const noItems = await commit(merchant, { customerId, total: 10_000 });
    const byLine = await refundItems(merchant, noItems.id, [{ index: 0, amount: 1 }]);
    expect(errorCode(byLine)).toBe('refund_items_unavailable');
  });
});

describe('ledger history', () => {
  it('cannot be truncated', async () => {
    await expect(sql`truncate ledger_entries cascade`.execute(t.db)).rejects.toThrow(/immutable/);
    await expect(sql`truncate lot_moves`.execute(t.db)).rejects.toThrow(/immutable/);
  });

  it('goes with its merchant', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 100 });
    await commit(merchant, { customerId, total: 10_000, redeemPoints: 50 });
    await t.db.deleteFrom('merchants').where('id', '=', merchant.merchantId).execute();
    const left = await t.db
      .selectFrom('ledger_entries')
      .select('id')
      .where('customer_id', '=', customerId)
      .execute();
    expect(left).toEqual([]);
    // Its events too (outbox_events keep no foreign key: decision 005).
    const events = await t.db
      .selectFrom('outbox_events')
      .select('id')
      .where('merchant_id', '=', merchant.merchantId)
      .execute();
    expect(events).toEqual([]);
  });

  it('keeps the outlet a purchase names: deleting it is refused as a foreign key would', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant, points: 100 });
    await commit(merchant, { customerId, total: 10_000 });
    await expect(
      t.db.deleteFrom('outlets').where('id', '=', merchant.outletId).execute(),
    ).rejects.toMatchObject({
      code: '23503',
    });
  });
});
