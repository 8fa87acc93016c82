import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import { createTestCustomer, createTestMerchant } from '../../../test/helpers/factories.js';
import { CreateCampaignBody } from './campaigns.schema.js';
import { CampaignCache, createCampaign, updateCampaign } from './campaigns.service.js';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

function campaign(name: string, extra: Record<string, unknown> = {}) {
  return CreateCampaignBody.parse({
    name,
    kind: 'bonus_points',
    status: 'active',
    effect: { points: 5 },
    ...extra,
  });
}

describe('CampaignCache', () => {
  it('serves a missed change after its time to live, and at once after clear()', async () => {
    const m = await createTestMerchant(t.db);
    const cache = new CampaignCache(t.db, 1_000);
    expect(await cache.active(m.merchantId)).toEqual([]);
    const first = await createCampaign(t.db, { merchantId: m.merchantId, input: campaign('First') });
    // No notification reaches this cache: the change shows once the entry is older than its TTL.
    expect(await cache.active(m.merchantId)).toEqual([]);
    await sleep(1_100);
    expect((await cache.active(m.merchantId)).map((c) => c.id)).toEqual([first.id]);
    await updateCampaign(t.db, { merchantId: m.merchantId, id: first.id, patch: { status: 'paused' } });
    cache.clear();
    expect(await cache.active(m.merchantId)).toEqual([]);
  });

  it('shares one read between requests that miss together', async () => {
    const m = await createTestMerchant(t.db);
    const cache = new CampaignCache(t.db, 60_000);
    const reads = await Promise.all(Array.from({ length: 5 }, () => cache.active(m.merchantId)));
    for (const read of reads) expect(read).toBe(reads[0]);
  });

  it('keeps what a read found before clear() out of the cache', async () => {
    const m = await createTestMerchant(t.db);
    const cache = new CampaignCache(t.db, 60_000);
    const before = cache.active(m.merchantId);
    cache.clear();
    await createCampaign(t.db, { merchantId: m.merchantId, input: campaign('Late') });
    await before;
    expect(await cache.active(m.merchantId)).toHaveLength(1);
  });

  it("applies periods at the time asked, with the customer's grants of campaigns limited per customer", async () => {
    const m = await createTestMerchant(t.db);
    const { customerId } = await createTestCustomer(t.db, { merchant: m });
    const cache = new CampaignCache(t.db, 60_000);
    const later = await createCampaign(t.db, {
      merchantId: m.merchantId,
      input: campaign('Later', { startsAt: '2100-01-01T00:00:00.000Z' }),
    });
    const limited = await createCampaign(t.db, {
      merchantId: m.merchantId,
      input: campaign('Once', { limits: { perCustomer: 1 } }),
    });
    await t.db
      .insertInto('campaign_grants')
      .values({ campaign_id: limited.id, customer_id: customerId, grants: 1, points: 5 })
      .execute();
    const now = await cache.forPurchase({ merchantId: m.merchantId, customerId, at: new Date() });
    expect(now.map((c) => [c.id, c.customerGrants])).toEqual([[limited.id, 1]]);
    const then = await cache.forPurchase({
      merchantId: m.merchantId,
      customerId,
      at: new Date('2100-06-01T00:00:00.000Z'),
    });
    expect(then.map((c) => c.id).sort()).toEqual([later.id, limited.id].sort());
  });
});
