import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp } from '../../../test/helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import {
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import {
  findLedgerViolations,
  findProvenanceViolations,
  findReferenceViolations,
} from '../../../test/helpers/ledger.js';
import { commitPayload, postCommit } from '../../../test/helpers/pos.js';
import { AppError } from '../../http/errors.js';
import { findCustomerState } from '../customers/customers.service.js';
import { requestHash } from './idempotency.service.js';
import { CommitBatcher } from './ledger.batcher.js';
import { type CommitResult, commitPurchase } from './ledger.service.js';

// Group commit (GROUP_COMMIT): commits that queue behind a running one run together in one
// transaction. With one slot, the first commit of a test runs alone and every commit issued while
// it runs waits and then forms one batch, so the batches here are known.

let t: TestDatabase;
let merchant: TestMerchant;
beforeAll(async () => {
  t = await createTestDatabase({ poolMax: 10 });
  merchant = await createTestMerchant(t.db);
});
afterAll(async () => {
  await t.drop();
});

async function customerWith(points: number): Promise<string> {
  const { customerId } = await createTestCustomer(t.db, { merchant, points });
  return customerId;
}

interface CommitInput {
  customerId: string;
  total: number;
  redeemPoints?: number;
  orderId?: string;
  key?: string;
}

/**
 * Commits through the batcher the way the POS route does: reads every customer and quotes first,
 * then issues all the commits in the same tick, so the first runs alone and the rest queue behind it.
 */
async function commitAll(
  batcher: CommitBatcher,
  inputs: CommitInput[],
): Promise<PromiseSettledResult<CommitResult & { replayed?: boolean }>[]> {
  const prepared = await Promise.all(
    inputs.map(async (input) => {
      const customer = await findCustomerState(t.db, {
        merchantId: merchant.merchantId,
        ref: { customerId: input.customerId },
        tierWindowDays: null,
      });
      if (!customer) throw new Error('no such customer');
      return { input, customer, orderId: input.orderId ?? `order-${randomUUID()}` };
    }),
  );
  return Promise.allSettled(
    prepared.map(({ input, customer, orderId }) =>
      commitPurchase(t.db, {
        merchantId: merchant.merchantId,
        rules: merchant.rules,
        customer,
        orderId,
        receipt: { total: input.total },
        redeemPoints: input.redeemPoints ?? 0,
        context: { outletId: merchant.outletId },
        idempotencyKey: input.key ?? randomUUID(),
        requestHash: requestHash('purchases.commit', { ...input, orderId }),
        batcher,
      }),
    ),
  );
}

function codeOf(outcome: PromiseSettledResult<unknown> | undefined): string | undefined {
  if (outcome?.status !== 'rejected') return undefined;
  return outcome.reason instanceof AppError ? outcome.reason.code : String(outcome.reason);
}

/** The transaction time (now()) of each purchase: one batch, one transaction, one time. */
async function committedAt(ids: string[]): Promise<Set<string>> {
  const rows = await t.db.selectFrom('purchases').select('created_at').where('id', 'in', ids).execute();
  expect(rows).toHaveLength(ids.length);
  return new Set(rows.map((r) => r.created_at.toISOString()));
}

describe('group commit', () => {
  it('fails only the bad item of a batch; its batch-mates commit together', async () => {
    const batcher = new CommitBatcher(t.db, { maxBatch: 16, inFlight: 1 });
    const rich = await Promise.all([customerWith(1_000), customerWith(1_000), customerWith(1_000)]);
    const duplicateOrder = `order-${randomUUID()}`;
    const outcomes = await commitAll(batcher, [
      { customerId: rich[0] as string, total: 10_000 },
      { customerId: rich[1] as string, total: 20_000, orderId: duplicateOrder },
      { customerId: rich[2] as string, total: 30_000, redeemPoints: 50 },
      { customerId: rich[0] as string, total: 40_000, orderId: duplicateOrder },
      { customerId: rich[1] as string, total: 50_000, redeemPoints: 20 },
    ]);
    // The same orderId twice in one batch: one of the two is refused as it would be alone (which
    // one depends on the lock order, customers by id); every other item commits.
    const statuses = outcomes.map((o) => o.status);
    expect([statuses[0], statuses[2], statuses[4]]).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect([statuses[1], statuses[3]].sort()).toEqual(['fulfilled', 'rejected']);
    expect(codeOf(outcomes[statuses[1] === 'rejected' ? 1 : 3])).toBe('duplicate_order_id');

    const ids = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value.purchase.id] : []));
    // The first ran alone; the three others committed together, in one transaction.
    expect(await committedAt(ids.slice(1))).toHaveProperty('size', 1);
    expect(await committedAt(ids.slice(0, 2))).toHaveProperty('size', 2);
    expect(await findLedgerViolations(t.db)).toEqual([]);
    expect(await findProvenanceViolations(t.db)).toEqual([]);
    expect(await findReferenceViolations(t.db)).toEqual([]);
  });

  it('refuses an overspend inside a batch with insufficient_points and commits the rest', async () => {
    const batcher = new CommitBatcher(t.db, { maxBatch: 16, inFlight: 1 });
    const customerId = await customerWith(100);
    const other = await customerWith(0);
    // Both quotes see 100 points; together they ask for 160, so the second (in order) cannot have them.
    const outcomes = await commitAll(batcher, [
      { customerId: other, total: 5_000 },
      { customerId, total: 100_000, redeemPoints: 80 },
      { customerId, total: 100_000, redeemPoints: 80 },
      { customerId: other, total: 7_000 },
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(codeOf(outcomes[2])).toBe('insufficient_points');
    expect(await findLedgerViolations(t.db)).toEqual([]);
  });

  it('replays an idempotent retry that lands in the same batch, and refuses the key with another body', async () => {
    const batcher = new CommitBatcher(t.db, { maxBatch: 16, inFlight: 1 });
    const customerId = await customerWith(0);
    const key = randomUUID();
    const orderId = `order-${randomUUID()}`;
    const [, original, retry, otherBody] = await commitAll(batcher, [
      { customerId: await customerWith(0), total: 1_000 },
      { customerId, total: 12_000, orderId, key },
      { customerId, total: 12_000, orderId, key },
      { customerId, total: 13_000, orderId, key },
    ]);
    expect(original?.status).toBe('fulfilled');
    expect(retry?.status).toBe('fulfilled');
    if (original?.status !== 'fulfilled' || retry?.status !== 'fulfilled') return;
    expect(retry.value.replayed).toBe(true);
    const { replayed: _, ...replay } = retry.value;
    expect(replay).toEqual(original.value);
    expect(codeOf(otherBody)).toBe('idempotency_key_reuse');
    const purchases = await t.db
      .selectFrom('purchases')
      .select('id')
      .where('customer_id', '=', customerId)
      .execute();
    expect(purchases).toHaveLength(1);
  });

  it('answers each commit only after its batch committed', async () => {
    const batcher = new CommitBatcher(t.db, { maxBatch: 16, inFlight: 1 });
    const customers = await Promise.all(Array.from({ length: 6 }, () => customerWith(0)));
    // Another connection sees the purchase the moment its commit is answered.
    const seen: boolean[] = [];
    const watch = async (result: CommitResult) => {
      const row = await t.db
        .selectFrom('purchases')
        .select('id')
        .where('id', '=', result.purchase.id)
        .executeTakeFirst();
      seen.push(row?.id === result.purchase.id);
    };
    const customersState = await Promise.all(
      customers.map((customerId) =>
        findCustomerState(t.db, {
          merchantId: merchant.merchantId,
          ref: { customerId },
          tierWindowDays: null,
        }),
      ),
    );
    await Promise.all(
      customersState.map((customer) => {
        if (!customer) throw new Error('no such customer');
        return commitPurchase(t.db, {
          merchantId: merchant.merchantId,
          rules: merchant.rules,
          customer,
          orderId: `order-${randomUUID()}`,
          receipt: { total: 3_000 },
          redeemPoints: 0,
          context: { outletId: merchant.outletId },
          batcher,
        }).then(watch);
      }),
    );
    expect(seen).toEqual(customers.map(() => true));
  });

  // Redeeming (one by one in each batch) and earning only (the set-based part, customers' first items).
  it.each([
    { kind: 'redeeming', redeemPoints: 5 },
    { kind: 'earn-only', redeemPoints: 0 },
  ])(
    'runs parallel $kind batches over the same customers in any order without a deadlock',
    {
      timeout: 120_000,
    },
    async ({ redeemPoints }) => {
      // Four slots, batches of up to 8, every batch naming the same customers in a different order:
      // they lock in customer id order, so they wait for each other but never deadlock.
      const batcher = new CommitBatcher(t.db, { maxBatch: 8, inFlight: 4 });
      const customers = await Promise.all(Array.from({ length: 8 }, () => customerWith(10_000)));
      const rounds = 6;
      const outcomes = await commitAll(
        batcher,
        Array.from({ length: rounds }, (_, round) =>
          Array.from({ length: 32 }, (_, i) => {
            const position = round % 2 === 0 ? i : 31 - i;
            return {
              customerId: customers[position % customers.length] as string,
              total: 10_000,
              redeemPoints,
            };
          }),
        ).flat(),
      );
      const failures = outcomes.flatMap((o) => (o.status === 'rejected' ? [String(o.reason)] : []));
      expect(failures).toEqual([]);
      const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from purchases where customer_id in (${sql.join(customers)})`.execute(t.db);
      expect(rows[0]?.n).toBe(rounds * 32);
      expect(await findLedgerViolations(t.db)).toEqual([]);
      expect(await findProvenanceViolations(t.db)).toEqual([]);
      expect(await findReferenceViolations(t.db)).toEqual([]);
    },
  );
});

describe('group commit through the POS API (GROUP_COMMIT=1)', () => {
  it('answers every parallel commit once, with the books adding up', { timeout: 120_000 }, async () => {
    const api = await createTestApp({ env: { GROUP_COMMIT: '1', GROUP_COMMIT_IN_FLIGHT: '2' } });
    try {
      const shop = await createTestMerchant(api.db);
      const customers = await Promise.all(
        Array.from(
          { length: 4 },
          async () => (await createTestCustomer(api.db, { merchant: shop, points: 500 })).customerId,
        ),
      );
      const bodies = Array.from({ length: 24 }, (_, i) =>
        commitPayload(shop, {
          customerId: customers[i % customers.length] as string,
          total: 10_000,
          redeemPoints: i % 2,
        }),
      );
      const answers = await Promise.all(bodies.map((body) => postCommit(api.app, shop, body)));
      expect(answers.map((res) => res.statusCode)).toEqual(bodies.map(() => 201));
      const orderIds = answers.map((res) => res.json<CommitResult>().purchase.orderId);
      expect(orderIds).toEqual(bodies.map((body) => body.orderId));
      expect(await findLedgerViolations(api.db)).toEqual([]);
      expect(await findProvenanceViolations(api.db)).toEqual([]);
      expect(await findReferenceViolations(api.db)).toEqual([]);
    } finally {
      await api.close();
    }
  });
});

describe('one group commit in flight, and a batch stuck on a lock (GROUP_BATCH_SLOW_MS)', () => {
  /**
   * Holds customer `held`'s balance row locked in a transaction of its own, commits for `held` (it
   * waits on the lock) and then for `other`; tells whether `other` was answered while the lock was
   * still held, then releases it. Both must end 201.
   */
  async function otherAnsweredDuringLock(env: Record<string, string>): Promise<boolean> {
    const api = await createTestApp({ env: { GROUP_COMMIT: '1', GROUP_COMMIT_IN_FLIGHT: '1', ...env } });
    try {
      const shop = await createTestMerchant(api.db);
      const [held, other] = await Promise.all(
        [1, 2].map(
          async () => (await createTestCustomer(api.db, { merchant: shop, points: 100 })).customerId,
        ),
      );
      let release = () => {};
      let locked = () => {};
      const isLocked = new Promise<void>((resolve) => {
        locked = resolve;
      });
      const lock = api.db.transaction().execute(async (trx) => {
        await sql`select 1 from balances where customer_id = ${held} for update`.execute(trx);
        locked();
        await new Promise<void>((resolve) => {
          release = resolve;
        });
      });
      await isLocked;
      const stuck = postCommit(
        api.app,
        shop,
        commitPayload(shop, { customerId: held as string, total: 1_000 }),
      );
      // The stuck commit holds the one slot before the other arrives.
      await new Promise((resolve) => setTimeout(resolve, 20));
      const answered = postCommit(
        api.app,
        shop,
        commitPayload(shop, { customerId: other as string, total: 1_000 }),
      );
      const first = await Promise.race([
        answered.then(() => 'other' as const),
        new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 1_500)),
      ]);
      release();
      await lock;
      const [stuckAnswer, otherAnswer] = await Promise.all([stuck, answered]);
      expect([stuckAnswer.statusCode, otherAnswer.statusCode]).toEqual([201, 201]);
      expect(await findLedgerViolations(api.db)).toEqual([]);
      const metrics = await api.app.inject({ method: 'GET', url: '/metrics' });
      const slow = /pos_slow_batches_total\{kind="commit"\} (\d+)/.exec(metrics.body)?.[1] ?? '0';
      expect(slow).toBe(first === 'other' ? '1' : '0');
      return first === 'other';
    } finally {
      await api.close();
    }
  }

  it('answers other customers while a batch waits on a lock', { timeout: 30_000 }, async () => {
    expect(await otherAnsweredDuringLock({ GROUP_BATCH_SLOW_MS: '50' })).toBe(true);
  });

  it('with GROUP_BATCH_SLOW_MS=0 the slot stays held until the stuck batch ends', {
    timeout: 30_000,
  }, async () => {
    expect(await otherAnsweredDuringLock({ GROUP_BATCH_SLOW_MS: '0' })).toBe(false);
  });
});
