import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import { createTestCustomer } from '../../../test/helpers/factories.js';
import { commitPurchaseViaApi } from '../../../test/helpers/outbox.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../../../test/helpers/portal.js';
import { buildApp } from '../../app.js';
import { loadConfig } from '../../config.js';
import { openRuntime } from '../../runtime.js';

// DATABASE_READ_URL: the portal's dashboard and CSV export read the replica; everything else,
// sign-in included, uses DATABASE_URL. Wired as src/server.ts wires it (openRuntime -> buildApp).

let primary: TestDatabase;
let other: TestDatabase;

beforeAll(async () => {
  [primary, other] = await Promise.all([createTestDatabase(), createTestDatabase()]);
});
afterAll(async () => {
  await Promise.all([primary?.drop(), other?.drop()]);
});

async function startApi(readUrl: string | undefined) {
  const { config } = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: primary.url,
    ...(readUrl ? { DATABASE_READ_URL: readUrl } : {}),
  });
  const runtime = await openRuntime(config, { allowEmbedded: false });
  const app = await buildApp(config, { db: runtime.db, readDb: runtime.readDb, logger: false });
  return { app, runtime };
}

async function analytics(api: Awaited<ReturnType<typeof startApi>>, team: MerchantTeam) {
  const dashboard = await portalRequest(api.app, team.manager, { method: 'GET', url: '/dashboard' });
  expect(dashboard.statusCode, dashboard.body).toBe(200);
  const csv = await portalRequest(api.app, team.owner, { method: 'GET', url: '/transactions.csv' });
  expect(csv.statusCode, csv.body).toBe(200);
  const list = await portalRequest(api.app, team.manager, { method: 'GET', url: '/transactions' });
  expect(list.statusCode, list.body).toBe(200);
  return {
    purchases: dashboard.json<{ totals: { purchases: number } }>().totals.purchases,
    csvRows: csv.body.trim().split('\r\n').length - 1,
    listed: list.json<{ items: unknown[] }>().items.length,
  };
}

describe('DATABASE_READ_URL', () => {
  let api: Awaited<ReturnType<typeof startApi>> | undefined;
  afterAll(async () => {
    await api?.app.close();
    await api?.runtime.close();
  });

  it('sends the dashboard and the CSV export to the read database, and nothing else', async () => {
    // The read database here is another database, so where each figure comes from shows.
    api = await startApi(other.url);
    const team = await createMerchantTeam(api.app, primary.db);
    const customer = await createTestCustomer(primary.db, { merchant: team.merchant });
    await commitPurchaseViaApi(api.app, team.merchant, { customerId: customer.customerId, total: 10_000 });

    expect(await analytics(api, team)).toEqual({ purchases: 0, csvRows: 0, listed: 1 });
  });

  it('works on a read-only connection, as a hot standby gives, and reads the primary when unset', async () => {
    await api?.app.close();
    await api?.runtime.close();
    // The same data through a session that refuses writes (what a standby enforces).
    const readOnlyUrl = `${primary.url}?options=${encodeURIComponent('-c default_transaction_read_only=on')}`;
    api = await startApi(readOnlyUrl);
    const team = await createMerchantTeam(api.app, primary.db);
    const customer = await createTestCustomer(primary.db, { merchant: team.merchant });
    await commitPurchaseViaApi(api.app, team.merchant, { customerId: customer.customerId, total: 10_000 });
    await commitPurchaseViaApi(api.app, team.merchant, { customerId: customer.customerId, total: 5_000 });
    expect(await analytics(api, team)).toEqual({ purchases: 2, csvRows: 2, listed: 2 });
    await expect(api.runtime.readDb.deleteFrom('merchants').execute()).rejects.toThrow(
      /read-only transaction/,
    );

    await api.app.close();
    await api.runtime.close();
    api = await startApi(undefined);
    expect(api.runtime.readDb).toBe(api.runtime.db);
    expect(await analytics(api, team)).toEqual({ purchases: 2, csvRows: 2, listed: 2 });
  });
});
