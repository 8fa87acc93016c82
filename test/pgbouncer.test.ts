import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { NotificationListener } from '../src/db/listener.js';
import { runExclusive } from '../src/jobs/scheduler.js';
import { revokeApiKey } from '../src/modules/merchants/merchants.service.js';
import { openRuntime, type Runtime } from '../src/runtime.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestCustomer, createTestMerchant } from './helpers/factories.js';
import { type PgBouncer, pgbouncerMissing, startPgBouncer } from './helpers/pgbouncer.js';

// DATABASE_URL through PgBouncer in transaction pooling mode, DATABASE_DIRECT_URL straight to
// PostgreSQL for what needs a session: the LISTEN connection and the scheduler's advisory locks.

const MISSING = pgbouncerMissing();
if (MISSING) console.warn(`test/pgbouncer.test.ts: skipped (${MISSING})`);

let database: TestDatabase;
let bouncer: PgBouncer;
const runtimes: Runtime[] = [];

beforeAll(async () => {
  if (MISSING) return;
  database = await createTestDatabase();
  bouncer = await startPgBouncer({ serverUrl: database.serverUrl, defaultPoolSize: 4 });
});
afterAll(async () => {
  await Promise.all(runtimes.map((r) => r.close()));
  await bouncer?.stop();
  await database?.drop();
});

/** A process's runtime as the entry points open it, with DATABASE_URL through PgBouncer. */
async function open(options: { isDirect: boolean }) {
  const { config } = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    DATABASE_URL: bouncer.urlFor(database.url),
    DATABASE_POOL_MAX: '8',
    ...(options.isDirect ? { DATABASE_DIRECT_URL: database.url } : {}),
  });
  const runtime = await openRuntime(config, { allowEmbedded: false });
  runtimes.push(runtime);
  return { config, runtime };
}

/** Session advisory locks still held on the server (a leak when no job is running). */
async function heldAdvisoryLocks(): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select count(*)::int as n from pg_locks where locktype = 'advisory' and database = (
      select oid from pg_database where datname = current_database())`.execute(database.db);
  return rows[0]?.n ?? 0;
}

describe.skipIf(MISSING !== null)(
  `behind PgBouncer in transaction mode${MISSING ? ` (skipped: ${MISSING})` : ''}`,
  () => {
    it('runs each periodic job once per tick over two workers, and leaks no advisory lock', async () => {
      const workers = [await open({ isDirect: true }), await open({ isDirect: true })];
      let runs = 0;
      for (let tick = 0; tick < 10; tick += 1) {
        // Both workers' schedulers fire at the same moment; the job runs while the lock is held.
        const job = async () => {
          runs += 1;
          await sql`select pg_sleep(0.05)`.execute(workers[0]?.runtime.db ?? database.db);
        };
        const ran = await Promise.all(workers.map((w) => runExclusive(w.runtime.sessionDb, 'tick-job', job)));
        expect(ran.filter(Boolean)).toHaveLength(1);
      }
      expect(runs).toBe(10);
      expect(await heldAdvisoryLocks()).toBe(0);
    });

    it('without DATABASE_DIRECT_URL the lock is released on another server connection and leaks', async () => {
      // The hazard DATABASE_DIRECT_URL exists for: lock and unlock go to different server connections.
      const { runtime } = await open({ isDirect: false });
      expect(runtime.sessionDb).toBe(runtime.db);
      await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          runExclusive(runtime.sessionDb, `leaky-${i % 2}`, () =>
            sql`select pg_sleep(0.02)`.execute(runtime.db),
          ),
        ),
      );
      expect(await heldAdvisoryLocks()).toBeGreaterThan(0);
      // Clean up for the other tests: drop PgBouncer's server connections that hold them.
      await sql`select pg_terminate_backend(pid) from pg_locks where locktype = 'advisory'`.execute(
        database.db,
      );
      await expect.poll(heldAdvisoryLocks).toBe(0);
    });

    it('an API key revoked on one API is refused by the other within a second', async () => {
      const apis = await Promise.all(
        [0, 1].map(async () => {
          const { config, runtime } = await open({ isDirect: true });
          const listener = new NotificationListener(runtime.directUrl);
          await listener.start();
          const app = await buildApp(config, { db: runtime.db, listener, logger: false });
          return { app, listener };
        }),
      );
      try {
        const merchant = await createTestMerchant(database.db);
        const customer = await createTestCustomer(database.db, { merchant });
        const resolve = (i: number) =>
          apis[i]?.app.inject({
            method: 'POST',
            url: '/api/v1/integration/customers/resolve',
            headers: { 'x-api-key': merchant.apiKey },
            payload: { customerId: customer.customerId },
          });
        // Both APIs have the key in their cache (API_KEY_CACHE_SECONDS is 60).
        expect((await resolve(0))?.statusCode).toBe(200);
        expect((await resolve(1))?.statusCode).toBe(200);

        const revokedAt = Date.now();
        await revokeApiKey(runtimes[runtimes.length - 2]?.db ?? database.db, {
          merchantId: merchant.merchantId,
          keyId: merchant.apiKeyId,
        });
        await expect
          .poll(async () => (await resolve(1))?.statusCode, { timeout: 1_000, interval: 50 })
          .toBe(401);
        expect(Date.now() - revokedAt).toBeLessThan(1_000);
      } finally {
        for (const api of apis) {
          await api.app.close();
          await api.listener.close();
        }
      }
    });
  },
);
