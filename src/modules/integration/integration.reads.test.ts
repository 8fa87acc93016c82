import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import {
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import { createDatabase, type Database } from '../../db/database.js';
import { findCustomerState, issueCustomerCode } from '../customers/customers.service.js';
import { requestHash } from '../ledger/idempotency.service.js';
import { commitPurchase } from '../ledger/ledger.service.js';
import {
  type CustomerStateRequest,
  IntegrationReads,
  type ReplayOrCustomerRequest,
  readReplayOrCustomer,
} from './integration.reads.js';

// Batched reads (GROUP_READS): with one slot, the first read of a test runs alone and every read
// issued while it runs forms one batch, whose answers must be exactly the answers each read gets
// alone, whatever it names (id, phone, code, nothing, another merchant's customer, a used key).

let t: TestDatabase;
let db: Database;
let statements: string[];
let merchant: TestMerchant;
let other: TestMerchant;
let ids: string[];
let phones: string[];
let code: string;
let otherCustomer: string;
const usedKey = randomUUID();

beforeAll(async () => {
  t = await createTestDatabase({ poolMax: 4 });
  statements = [];
  // Every statement this pool runs is recorded (the slow-query hook with a threshold of ~0).
  db = createDatabase({
    connectionString: t.url,
    max: 8,
    slowQueryMs: Number.MIN_VALUE,
    onSlowQuery: (text) => statements.push(text),
  }).db;
  merchant = await createTestMerchant(t.db);
  other = await createTestMerchant(t.db);
  const customers = await Promise.all(
    [0, 1, 2].map(() => createTestCustomer(t.db, { merchant, points: 500 })),
  );
  ids = customers.map((c) => c.customerId);
  phones = customers.map((c) => c.phone);
  code = (
    await issueCustomerCode(t.db, {
      merchantId: merchant.merchantId,
      customerId: ids[2] as string,
      ttlSeconds: 300,
    })
  ).code;
  otherCustomer = (await createTestCustomer(t.db, { merchant: other })).customerId;
  const customer = await findCustomerState(t.db, {
    merchantId: merchant.merchantId,
    ref: { customerId: ids[0] as string },
    tierWindowDays: null,
  });
  if (!customer) throw new Error('no customer');
  await commitPurchase(t.db, {
    merchantId: merchant.merchantId,
    rules: merchant.rules,
    customer,
    orderId: `order-${randomUUID()}`,
    receipt: { total: 10_000 },
    redeemPoints: 0,
    context: { outletId: merchant.outletId },
    idempotencyKey: usedKey,
    requestHash: requestHash('purchases.commit', { test: 1 }),
  });
});
afterAll(async () => {
  await db.destroy();
  await t.drop();
});

function customerRequests(): CustomerStateRequest[] {
  const m = merchant.merchantId;
  return [
    { merchantId: m, ref: { customerId: ids[0] as string }, tierWindowDays: null },
    { merchantId: m, ref: { customerId: ids[1] as string }, tierWindowDays: 365 },
    { merchantId: m, ref: { phone: phones[1] as string }, tierWindowDays: null },
    { merchantId: m, ref: { code }, tierWindowDays: 30 },
    { merchantId: m, ref: { code: '000000' }, tierWindowDays: null },
    { merchantId: m, ref: { customerId: randomUUID() }, tierWindowDays: null },
    // Another merchant's customer is nobody here, and found under its own merchant.
    { merchantId: m, ref: { customerId: otherCustomer }, tierWindowDays: null },
    { merchantId: other.merchantId, ref: { customerId: otherCustomer }, tierWindowDays: null },
  ];
}

describe('batched reads', () => {
  it('answers each customer lookup of a batch as it is answered alone, in one statement', async () => {
    const requests = customerRequests();
    const alone = [];
    for (const request of requests) alone.push(await findCustomerState(db, request));
    expect(alone.filter((state) => state !== null)).toHaveLength(5);

    const reads = new IntegrationReads(db, { maxBatch: 32, inFlight: 1 });
    statements.length = 0;
    const batched = await Promise.all(requests.map((request) => reads.customers.run(request)));
    expect(batched).toEqual(alone);
    // The first ran alone; the seven issued while it ran, together.
    expect(statements).toHaveLength(2);
  });

  it('answers each commit read of a batch as it is answered alone: the stored answer or the customer', async () => {
    const requests: ReplayOrCustomerRequest[] = [
      ...customerRequests().map((request) => ({ ...request, key: randomUUID() })),
      {
        merchantId: merchant.merchantId,
        ref: { customerId: ids[0] as string },
        tierWindowDays: null,
        key: usedKey,
      },
      // The key is the merchant's own: another merchant's request with it finds its customer.
      {
        merchantId: other.merchantId,
        ref: { customerId: otherCustomer },
        tierWindowDays: null,
        key: usedKey,
      },
    ];
    const alone = [];
    for (const request of requests) alone.push(await readReplayOrCustomer(db, request));
    expect(alone[8]?.request_hash).toBe(requestHash('purchases.commit', { test: 1 }));
    expect(alone[8]?.id).toBeNull();
    expect(alone[9]?.id).toBe(otherCustomer);

    const reads = new IntegrationReads(db, { maxBatch: 32, inFlight: 1 });
    statements.length = 0;
    const batched = await Promise.all(requests.map((request) => reads.replays.run(request)));
    expect(batched).toEqual(alone);
    expect(statements).toHaveLength(2);
  });
});
