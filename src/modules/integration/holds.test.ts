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
  errorCode,
  postCancelHold,
  postCommit,
  postHold,
  postQuote,
  postRefund,
} from '../../../test/helpers/pos.js';
import { type HoldResult, releaseExpiredHolds } from '../ledger/holds.service.js';
import { type CommitResult, expirePoints } from '../ledger/ledger.service.js';

// Holds (POST /holds, POST /holds/{id}/cancel, a purchase with holdId) through the POS API on a
// real PostgreSQL: the contract, expiry by the job and by a later write, concurrency, and where
// the points go when a hold meets lot expiry and refunds.

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  expect(await findLedgerViolations(t.db)).toEqual([]);
  expect(await findProvenanceViolations(t.db)).toEqual([]);
  await t.close();
});

/** A receipt whose redeem cap (half of it, 1 point = 1 rouble) is far above the points used here. */
const receipt = { total: 100_000 };

async function hold(merchant: TestMerchant, body: Record<string, unknown>): Promise<HoldResult> {
  const res = await postHold(t.app, merchant, { receipt, ...body });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<HoldResult>();
}

/** POST /purchases redeeming hold `holdId` (redeemPoints left out: the hold's), on `receipt` unless given. */
function commitWithHold(
  merchant: TestMerchant,
  holdId: string,
  body: { customer: Record<string, string>; receipt?: { total: number } },
) {
  return postCommit(t.app, merchant, {
    receipt,
    ...body,
    holdId,
    orderId: randomUUID(),
    outletId: merchant.outletId,
  });
}

/** Moves a hold's expiry into the past, as if its time had run out. */
async function expireHold(holdId: string): Promise<void> {
  await sql`update holds set expires_at = now() - interval '1 second' where id = ${holdId}`.execute(t.db);
}

async function eventsOf(merchant: TestMerchant, type: string) {
  const { rows } = await sql<{ payload: Record<string, unknown> }>`
    select payload from outbox_events where merchant_id = ${merchant.merchantId} and type = ${type} order by id
  `.execute(t.db);
  return rows.map((r) => r.payload);
}

async function holdStatus(holdId: string): Promise<string | undefined> {
  const row = await t.db.selectFrom('holds').select('status').where('id', '=', holdId).executeTakeFirst();
  return row?.status;
}

describe('POST /holds', () => {
  it('reserves points: 201 with the hold and a balance whose available excludes them', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 300 });
    const res = await postHold(t.app, merchant, {
      customer: { customerId },
      receipt,
      redeemPoints: 200,
      ttlSeconds: 600,
    });
    expect(res.statusCode, res.body).toBe(201);
    const body = res.json<HoldResult>();
    expect(body).toEqual({
      hold: {
        id: expect.any(String),
        customerId,
        points: 200,
        status: 'active',
        expiresAt: expect.any(String),
        createdAt: expect.any(String),
        releasedAt: null,
        purchaseId: null,
      },
      balance: { available: 100, pending: 0, held: 200 },
    });
    const ttl = Date.parse(body.hold.expiresAt) - Date.parse(body.hold.createdAt);
    expect(ttl).toBe(600_000);
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 100, pending: 0, held: 200 });
    expect(await eventsOf(merchant, 'hold.created')).toEqual([
      expect.objectContaining({
        holdId: body.hold.id,
        customerId,
        points: 200,
        expiresAt: body.hold.expiresAt,
        balance: { available: 100, pending: 0, held: 200 },
      }),
    ]);
  });

  it('lives 900 seconds unless told otherwise', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 50 });
    const { hold: h } = await hold(merchant, { customer: { customerId }, redeemPoints: 10 });
    expect(Date.parse(h.expiresAt) - Date.parse(h.createdAt)).toBe(900_000);
  });

  it('refuses a ttlSeconds outside 30..86400, naming the field', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 50 });
    for (const ttlSeconds of [29, 86_401, 1.5]) {
      const res = await postHold(t.app, merchant, {
        customer: { customerId },
        receipt,
        redeemPoints: 10,
        ttlSeconds,
      });
      expect(res.statusCode).toBe(400);
      expect(res.body).toContain('ttlSeconds');
    }
  });

  it('needs an Idempotency-Key, a POS context and points to hold', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 50 });
    const noKey = await t.app.inject({
      method: 'POST',
      url: '/api/v1/integration/holds',
      headers: { 'x-api-key': merchant.apiKey },
      payload: { customer: { customerId }, receipt, redeemPoints: 10, outletId: merchant.outletId },
    });
    expect(noKey.statusCode).toBe(400);
    expect(noKey.body).toContain('idempotency-key');
    const noContext = await postHold(t.app, merchant, {
      customer: { customerId },
      receipt,
      redeemPoints: 10,
      outletId: undefined,
    });
    expect(noContext.statusCode).toBe(400);
    expect(noContext.body).toContain('outletId');
    const zero = await postHold(t.app, merchant, { customer: { customerId }, receipt, redeemPoints: 0 });
    expect(zero.statusCode).toBe(400);
    expect(zero.body).toContain('redeemPoints');
  });

  it('replays a repeated request and refuses its key for another body', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 300 });
    const key = randomUUID();
    const body = { customer: { customerId }, receipt, redeemPoints: 100 };
    const first = await postHold(t.app, merchant, body, key);
    expect(first.statusCode).toBe(201);
    const again = await postHold(t.app, merchant, body, key);
    expect(again.statusCode).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json()).toEqual(first.json());
    const other = await postHold(t.app, merchant, { ...body, redeemPoints: 101 }, key);
    expect(other.statusCode).toBe(422);
    expect(errorCode(other)).toBe('idempotency_key_reuse');
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 200, pending: 0, held: 100 });
  });

  it("keeps to the programme's redeem cap for the receipt and to the available balance", async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 300 });
    // 100 roubles: at most half may be paid with points.
    const capped = await postHold(t.app, merchant, {
      customer: { customerId },
      receipt: { total: 10_000 },
      redeemPoints: 51,
    });
    expect(capped.statusCode).toBe(422);
    expect(errorCode(capped)).toBe('redeem_limit_exceeded');
    const tooMany = await postHold(t.app, merchant, { customer: { customerId }, receipt, redeemPoints: 301 });
    expect(tooMany.statusCode).toBe(422);
    expect(errorCode(tooMany)).toBe('insufficient_points');
    // Held points are not available to another hold.
    await hold(merchant, { customer: { customerId }, redeemPoints: 250 });
    const second = await postHold(t.app, merchant, { customer: { customerId }, receipt, redeemPoints: 51 });
    expect(second.statusCode).toBe(422);
    expect(errorCode(second)).toBe('insufficient_points');
  });

  it('never holds more than is available when holds of one wallet run in parallel', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 500 });
    const answers = await Promise.all(
      Array.from({ length: 10 }, () =>
        postHold(t.app, merchant, { customer: { customerId }, receipt, redeemPoints: 120 }),
      ),
    );
    const created = answers.filter((r) => r.statusCode === 201);
    expect(created).toHaveLength(4);
    for (const r of answers.filter((a) => a.statusCode !== 201))
      expect(errorCode(r)).toBe('insufficient_points');
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 20, pending: 0, held: 480 });
  });

  it('does not use up a one-time code: the purchase redeems the hold with the same code', async () => {
    const { customerId, merchant, token } = await createTestCustomer(t.db, { points: 300 });
    const codeRes = await t.app.inject({
      method: 'POST',
      url: '/api/v1/client/code',
      headers: { authorization: `Bearer ${token}` },
    });
    const { code } = codeRes.json<{ code: string }>();
    const { hold: h } = await hold(merchant, { customer: { code }, redeemPoints: 120 });
    expect(h.customerId).toBe(customerId);
    const res = await commitWithHold(merchant, h.id, { customer: { code }, receipt: receipt });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json<CommitResult>().purchase.redeemedPoints).toBe(120);
    // The purchase used the code up.
    const reuse = await postQuote(t.app, merchant, { customer: { code }, receipt });
    expect(errorCode(reuse)).toBe('code_not_found');
  });
});

describe('a purchase with holdId', () => {
  it('redeems the held points, with the figures its quote showed', async () => {
    const { customerId, merchant, phone } = await createTestCustomer(t.db, { points: 300 });
    const { hold: h } = await hold(merchant, { customer: { customerId }, redeemPoints: 200 });
    const quote = await postQuote(t.app, merchant, { customer: { phone }, receipt, holdId: h.id });
    expect(quote.statusCode, quote.body).toBe(200);
    expect(quote.json()).toMatchObject({
      redeemPoints: 200,
      maxRedeemPoints: 300,
      discount: 20_000,
      payable: 80_000,
      balance: { available: 100, pending: 0, held: 200 },
    });
    // Without the hold, the quote sees only what is available.
    const plain = await postQuote(t.app, merchant, { customer: { customerId }, receipt, redeemPoints: 200 });
    expect(errorCode(plain)).toBe('insufficient_points');

    const res = await commitWithHold(merchant, h.id, { customer: { phone }, receipt: receipt });
    expect(res.statusCode, res.body).toBe(201);
    const { purchase, balance } = res.json<CommitResult>();
    expect(purchase).toMatchObject({
      redeemedPoints: 200,
      discount: quote.json().discount,
      payable: quote.json().payable,
      earnedPoints: quote.json().earnPoints,
    });
    // 100 left, plus the earn on what was paid (5% of 800 roubles).
    expect(balance).toEqual({ available: 140, pending: 0, held: 0 });
    expect(await holdStatus(h.id)).toBe('committed');
    expect(await eventsOf(merchant, 'hold.released')).toEqual([
      expect.objectContaining({ holdId: h.id, reason: 'committed', purchaseId: purchase.id, points: 200 }),
    ]);
    // Used: neither a second purchase nor a cancel can have it.
    const twice = await commitWithHold(merchant, h.id, { customer: { customerId }, receipt: receipt });
    expect(twice.statusCode).toBe(409);
    expect(errorCode(twice)).toBe('hold_not_active');
    const cancel = await postCancelHold(t.app, merchant, h.id);
    expect(cancel.statusCode).toBe(409);
    expect(errorCode(cancel)).toBe('hold_not_active');
    // GET /purchases/{id} shows held in nothing but the commit's balance; the refund's balance has it.
    const refund = await postRefund(t.app, merchant, purchase.id, undefined);
    expect(refund.statusCode).toBe(201);
    expect(refund.json().balance).toEqual({ available: 300, pending: 0, held: 0 });
  });

  it('refuses redeemPoints other than the hold (hold_mismatch, naming redeemPoints)', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 300 });
    const { hold: h } = await hold(merchant, { customer: { customerId }, redeemPoints: 200 });
    for (const redeemPoints of [199, 201, 0]) {
      const res = await postCommit(t.app, merchant, {
        ...commitPayload(merchant, { customerId, total: receipt.total, redeemPoints }),
        holdId: h.id,
      });
      expect(res.statusCode).toBe(422);
      expect(res.json().error).toMatchObject({ code: 'hold_mismatch', details: { field: 'redeemPoints' } });
      const quote = await postQuote(t.app, merchant, {
        customer: { customerId },
        receipt,
        redeemPoints,
        holdId: h.id,
      });
      expect(errorCode(quote)).toBe('hold_mismatch');
    }
    const equal = await postCommit(t.app, merchant, {
      ...commitPayload(merchant, { customerId, total: receipt.total, redeemPoints: 200 }),
      holdId: h.id,
    });
    expect(equal.statusCode, equal.body).toBe(201);
  });

  it("refuses another customer's hold (409) and another merchant's (404)", async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 300 });
    const other = await createTestCustomer(t.db, { merchant, points: 300 });
    const { hold: h } = await hold(merchant, { customer: { customerId }, redeemPoints: 100 });
    const wrongCustomer = await commitWithHold(merchant, h.id, {
      customer: { customerId: other.customerId },
    });
    expect(wrongCustomer.statusCode).toBe(409);
    expect(errorCode(wrongCustomer)).toBe('hold_customer_mismatch');

    const stranger = await createTestCustomer(t.db, { points: 300 });
    const foreign = await commitWithHold(stranger.merchant, h.id, {
      customer: { customerId: stranger.customerId },
    });
    expect(foreign.statusCode).toBe(404);
    expect(errorCode(foreign)).toBe('hold_not_found');
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 200, pending: 0, held: 100 });
  });
});

describe('POST /holds/{id}/cancel', () => {
  it('gives the points back, and answers the same when repeated', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 300 });
    const { hold: h } = await hold(merchant, { customer: { customerId }, redeemPoints: 200 });
    const res = await postCancelHold(t.app, merchant, h.id);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({
      hold: { id: h.id, points: 200, status: 'cancelled', releasedAt: expect.any(String) },
      balance: { available: 300, pending: 0, held: 0 },
    });
    const again = await postCancelHold(t.app, merchant, h.id);
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(res.json());
    expect(await eventsOf(merchant, 'hold.released')).toEqual([
      expect.objectContaining({
        holdId: h.id,
        reason: 'cancelled',
        balance: { available: 300, pending: 0, held: 0 },
      }),
    ]);
    const commit = await postCommit(t.app, merchant, {
      ...commitPayload(merchant, { customerId, total: receipt.total }),
      redeemPoints: undefined,
      holdId: h.id,
    });
    expect(commit.statusCode).toBe(409);
    expect(errorCode(commit)).toBe('hold_not_active');
  });

  it("answers 404 hold_not_found for an unknown or another merchant's hold, and needs a POS context", async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 300 });
    const { hold: h } = await hold(merchant, { customer: { customerId }, redeemPoints: 100 });
    const stranger = await createTestMerchant(t.db);
    const foreign = await postCancelHold(t.app, stranger, h.id);
    expect(foreign.statusCode).toBe(404);
    expect(errorCode(foreign)).toBe('hold_not_found');
    const unknown = await postCancelHold(t.app, merchant, randomUUID());
    expect(errorCode(unknown)).toBe('hold_not_found');
    const noContext = await t.app.inject({
      method: 'POST',
      url: `/api/v1/integration/holds/${h.id}/cancel`,
      headers: { 'x-api-key': merchant.apiKey },
      payload: {},
    });
    expect(noContext.statusCode).toBe(400);
    expect(noContext.body).toContain('outletId');
    expect(await holdStatus(h.id)).toBe('active');
  });
});

describe('a hold past its expiry', () => {
  it('is released by the holds:release job, and shown released before it runs', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 300 });
    const { hold: h } = await hold(merchant, { customer: { customerId }, redeemPoints: 200 });
    await expireHold(h.id);
    // Reads show it released at once.
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 300, pending: 0, held: 0 });
    const result = await releaseExpiredHolds(t.db);
    expect(result.customers).toBeGreaterThanOrEqual(1);
    expect(await holdStatus(h.id)).toBe('expired');
    expect(await eventsOf(merchant, 'hold.released')).toEqual([
      expect.objectContaining({
        holdId: h.id,
        reason: 'expired',
        balance: { available: 300, pending: 0, held: 0 },
      }),
    ]);
    const stored = await t.db
      .selectFrom('balances')
      .select(['available', 'held'])
      .where('customer_id', '=', customerId)
      .executeTakeFirstOrThrow();
    expect(stored).toEqual({ available: 300, held: 0 });
    // A purchase cannot redeem it any more; a cancel answers how it ended.
    const commit = await postCommit(t.app, merchant, {
      ...commitPayload(merchant, { customerId, total: receipt.total }),
      redeemPoints: undefined,
      holdId: h.id,
    });
    expect(commit.statusCode).toBe(409);
    expect(errorCode(commit)).toBe('hold_expired');
    const cancel = await postCancelHold(t.app, merchant, h.id);
    expect(cancel.statusCode).toBe(200);
    expect(cancel.json().hold.status).toBe('expired');
  });

  it('is released by the next write of the customer, before the job runs', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 300 });
    const { hold: h } = await hold(merchant, { customer: { customerId }, redeemPoints: 250 });
    await expireHold(h.id);
    // A purchase redeeming the points the hold kept: the hold gives them back first.
    const res = await postCommit(
      t.app,
      merchant,
      commitPayload(merchant, { customerId, total: 100_000, redeemPoints: 300 }),
    );
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json<CommitResult>().balance).toMatchObject({ held: 0 });
    expect(await holdStatus(h.id)).toBe('expired');
  });

  it('is released by an earn-only purchase and by a new hold too', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db, { points: 300 });
    const first = await hold(merchant, { customer: { customerId }, redeemPoints: 100 });
    await expireHold(first.hold.id);
    const earn = await postCommit(t.app, merchant, commitPayload(merchant, { customerId, total: 100_000 }));
    expect(earn.json<CommitResult>().balance).toEqual({ available: 350, pending: 0, held: 0 });
    expect(await holdStatus(first.hold.id)).toBe('expired');
    const second = await hold(merchant, { customer: { customerId }, redeemPoints: 300 });
    await expireHold(second.hold.id);
    const third = await hold(merchant, { customer: { customerId }, redeemPoints: 350 });
    expect(third.balance).toEqual({ available: 0, pending: 0, held: 350 });
    expect(await holdStatus(second.hold.id)).toBe('expired');
  });
});

describe('holds and lots', () => {
  it('reserve the lots a redeem would take; a refund of the purchase returns the points to them', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant });
    await addLot(t.db, merchant, customerId, 100, 30);
    await addLot(t.db, merchant, customerId, 100, 5);
    await addLot(t.db, merchant, customerId, 100, null);
    const lotsBefore = await lotsOf(customerId);
    const { hold: h } = await hold(merchant, { customer: { customerId }, redeemPoints: 150 });
    // Soonest expiry first: all of the 5-day lot, half of the 30-day one.
    expect((await lotsOf(customerId)).map((l) => l.remaining)).toEqual([50, 0, 100]);
    const res = await commitWithHold(merchant, h.id, {
      customer: { customerId },
      receipt: { total: 1_000_000 },
    });
    expect(res.statusCode, res.body).toBe(201);
    const { purchase } = res.json<CommitResult>();
    const refund = await postRefund(t.app, merchant, purchase.id, undefined);
    expect(refund.statusCode).toBe(201);
    expect(refund.json().refund.returnedPoints).toBe(150);
    const lotsAfter = (await lotsOf(customerId)).slice(0, 3);
    expect(lotsAfter).toEqual(lotsBefore);
  });

  it('keep held points through the expiry of their lot: the purchase still redeems them', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant });
    await addLot(t.db, merchant, customerId, 100, 1);
    await addLot(t.db, merchant, customerId, 50, null);
    const { hold: h } = await hold(merchant, { customer: { customerId }, redeemPoints: 120 });
    await ageLots(customerId, 2);
    await expirePoints(t.db);
    // Nothing left in the expired lot to expire: no bucket went negative, the hold kept its points.
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 30, pending: 0, held: 120 });
    expect(await findLedgerViolations(t.db)).toEqual([]);
    const res = await commitWithHold(merchant, h.id, { customer: { customerId }, receipt: receipt });
    expect(res.statusCode, res.body).toBe(201);
    const { purchase } = res.json<CommitResult>();
    // A refund returns the 100 to their lot, which has expired: they expire at once (decision 002).
    const refund = await postRefund(t.app, merchant, purchase.id, undefined);
    expect(refund.statusCode).toBe(201);
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 50, pending: 0, held: 0 });
    expect(await findProvenanceViolations(t.db)).toEqual([]);
  });

  it('released by the job into a lot past its expiry, expire with the rest of that lot', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant });
    await addLot(t.db, merchant, customerId, 100, 1);
    await addLot(t.db, merchant, customerId, 50, null);
    const { hold: h } = await hold(merchant, { customer: { customerId }, redeemPoints: 30 });
    await expireHold(h.id);
    await ageLots(customerId, 2);
    // Neither the expiry job nor a write of the customer ran: the hold job finds both due.
    await releaseExpiredHolds(t.db);
    expect(await holdStatus(h.id)).toBe('expired');
    expect(await balanceOf(t.app, merchant, customerId)).toEqual({ available: 50, pending: 0, held: 0 });
    expect((await lotsOf(customerId)).map((l) => [l.remaining, l.state])).toEqual([
      [0, 'expired'],
      [50, 'active'],
    ]);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('give points of a lot that expired meanwhile back expired when cancelled', async () => {
    const merchant = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant });
    await addLot(t.db, merchant, customerId, 100, 1);
    await addLot(t.db, merchant, customerId, 50, null);
    const { hold: h } = await hold(merchant, { customer: { customerId }, redeemPoints: 120 });
    await ageLots(customerId, 2);
    const res = await postCancelHold(t.app, merchant, h.id);
    expect(res.statusCode).toBe(200);
    expect(res.json().balance).toEqual({ available: 50, pending: 0, held: 0 });
    expect((await lotsOf(customerId)).map((l) => [l.remaining, l.state])).toEqual([
      [0, 'expired'],
      [50, 'active'],
    ]);
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });
});

async function lotsOf(customerId: string) {
  return t.db
    .selectFrom('point_lots')
    .select(['remaining', 'state', 'expires_at'])
    .where('customer_id', '=', customerId)
    .orderBy('id')
    .execute();
}

/** Moves the customer's lots `days` into the past (their expiry passes as time would). */
async function ageLots(customerId: string, days: number): Promise<void> {
  await sql`update point_lots set available_at = available_at - make_interval(days => ${days}),
              expires_at = expires_at - make_interval(days => ${days})
            where customer_id = ${customerId}`.execute(t.db);
}
