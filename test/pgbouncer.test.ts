import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiProcess, type ChildHandle, startApi } from '../bench/lib/api-process.js';
import { startWorker } from '../bench/lib/outbox.js';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createDatabase, type Database } from '../src/db/database.js';
import { findFreePort } from '../src/db/embedded.js';
import { NotificationListener } from '../src/db/listener.js';
import { runExclusive } from '../src/jobs/scheduler.js';
import { findCustomerState } from '../src/modules/customers/customers.service.js';
import { revokeApiKey } from '../src/modules/merchants/merchants.service.js';
import { openRuntime, type Runtime } from '../src/runtime.js';
import { startFakeTelegram } from './fakes/telegram-bot-api.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestCustomer, createTestMerchant } from './helpers/factories.js';
import { findLedgerViolations } from './helpers/ledger.js';
import { countByWebhookId, createReceiverEndpoint, pause } from './helpers/outbox.js';
import {
  type PgBouncer,
  pgbouncerKeepsPreparedStatements,
  pgbouncerMissing,
  startPgBouncer,
} from './helpers/pgbouncer.js';

// DATABASE_URL through PgBouncer in transaction pooling mode, DATABASE_DIRECT_URL straight to
// PostgreSQL for what needs a session: the LISTEN connection and the scheduler's advisory locks.

const MISSING = pgbouncerMissing();
if (MISSING) console.warn(`test/pgbouncer.test.ts: skipped (${MISSING})`);
// Named prepared statements (DATABASE_PREPARED_STATEMENTS) where this PgBouncer keeps them
// (max_prepared_statements, 1.21+, as the Kubernetes component runs); off with Debian 12's 1.18.
const PREPARED_STATEMENTS = MISSING === null && pgbouncerKeepsPreparedStatements() ? '1' : '0';

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
    DATABASE_PREPARED_STATEMENTS: PREPARED_STATEMENTS,
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

    it('named statements through a PgBouncer that does not keep them: one fails saying what to set, then the pool goes on unnamed', async () => {
      // One server connection: the statement one client prepared there is unknown to the next client.
      const single = await startPgBouncer({
        serverUrl: database.serverUrl,
        defaultPoolSize: 1,
        maxPreparedStatements: 0,
      });
      const pools: Database[] = [];
      const told: string[] = [];
      const pool = (preparedStatements: boolean) => {
        const { db } = createDatabase({
          connectionString: single.urlFor(database.url),
          max: 1,
          preparedStatements,
          onPreparedStatementsOff: (message) => told.push(message),
        });
        pools.push(db);
        return db;
      };
      try {
        const merchant = await createTestMerchant(database.db);
        const { customerId } = await createTestCustomer(database.db, { merchant });
        const find = (db: Database) =>
          findCustomerState(db, {
            merchantId: merchant.merchantId,
            ref: { customerId },
            tierWindowDays: null,
          });
        expect((await find(pool(true)))?.id).toBe(customerId);
        const second = pool(true);
        await expect(find(second)).rejects.toThrow(/DATABASE_PREPARED_STATEMENTS=0/);
        expect(told).toEqual([expect.stringContaining('unnamed from now on')]);
        // That pool now sends them unnamed: every later read works, and it is told once.
        for (let i = 0; i < 3; i += 1) expect((await find(second))?.id).toBe(customerId);
        expect(told).toHaveLength(1);
        // Switched off, both clients read through the same server connection.
        const [a, b] = [pool(false), pool(false)];
        expect((await find(a))?.id).toBe(customerId);
        expect((await find(b))?.id).toBe(customerId);
      } finally {
        await Promise.all(pools.map((db) => db.destroy()));
        await single.stop();
      }
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

    it('two API and two worker processes on one database through it: POS load, delivery, switches, one alert, one run per tick', async () => {
      const ROOT = fileURLToPath(new URL('..', import.meta.url));
      const ADMIN_API_TOKEN = `adm_${randomUUID()}`;
      const merchant = await createTestMerchant(database.db);
      const customers = await Promise.all(
        Array.from({ length: 20 }, () => createTestCustomer(database.db, { merchant, points: 1_000 })),
      );
      const { receiver, endpointId } = await createReceiverEndpoint(database.db, {
        merchantId: merchant.merchantId,
        eventTypes: ['purchase.committed'],
      });
      // An endpoint that is gone (410): its one refund event goes dead, which the alert monitor reports.
      const gone = await createReceiverEndpoint(database.db, {
        merchantId: merchant.merchantId,
        eventTypes: ['purchase.refunded'],
        mode: 'status:410',
      });
      const telegram = await startFakeTelegram();
      const ALERT_CHAT_ID = '-100500';
      // The workers log each periodic job run (debug) with the tick it ran for.
      const jobRunsLogged: string[] = [];
      const onWorkerLine = (line: string) => {
        if (!line.includes('"job finished"')) return;
        const entry = JSON.parse(line) as { job: string; scheduledAt: string };
        jobRunsLogged.push(`${entry.job} ${entry.scheduledAt}`);
      };
      const env = {
        NODE_ENV: 'test',
        LOG_LEVEL: 'warn',
        SEED_DEMO: '0',
        DATABASE_URL: bouncer.urlFor(database.url),
        DATABASE_DIRECT_URL: database.url,
        DATABASE_POOL_MAX: '6',
        DATABASE_PREPARED_STATEMENTS: PREPARED_STATEMENTS,
        ADMIN_API_TOKEN,
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: '1',
        OUTBOX_POLL_INTERVAL_MS: '500',
        OUTBOX_CONCURRENCY: '4',
        WORKER_PORT: '0',
        ALERT_TELEGRAM_BOT_TOKEN: telegram.createBot(),
        ALERT_TELEGRAM_CHAT_ID: ALERT_CHAT_ID,
        TELEGRAM_API_BASE_URL: telegram.baseUrl,
        ALERT_OUTBOX_DEAD_DELTA: '0',
        // Slow requests under this load on a shared machine are not what this test is about.
        ALERT_HTTP_SLOW_PER_MIN: '1000000',
        // Both jobs every second, in both workers.
        JOB_SCHEDULES: 'alerts:monitor=* * * * * *;points:activate=* * * * * *',
      };
      const apis: ApiProcess[] = [];
      const workers: ChildHandle[] = [];
      try {
        for (let i = 0; i < 2; i += 1) {
          const port = await findFreePort();
          apis.push(
            await startApi({ cwd: ROOT, port, env: { ...env, PORT: String(port), WORKERS_ENABLED: '0' } }),
          );
          workers.push(
            startWorker({
              cwd: ROOT,
              env: { ...env, WORKERS_ENABLED: '1', LOG_LEVEL: 'debug' },
              onLine: onWorkerLine,
            }),
          );
        }
        const call = (
          i: number,
          method: string,
          url: string,
          headers: Record<string, string>,
          body?: object,
        ) =>
          fetch(`http://127.0.0.1:${apis[i % 2]?.port}${url}`, {
            method,
            headers: { 'content-type': 'application/json', ...headers },
            body: body ? JSON.stringify(body) : undefined,
          });

        // POS load over both APIs: 8 tills, 25 purchases each, alternating between the APIs.
        const statuses: number[] = [];
        await Promise.all(
          Array.from({ length: 8 }, async (_, till) => {
            for (let n = 0; n < 25; n += 1) {
              const orderId = `till-${till}-${n}`;
              const customer = customers[(till * 25 + n) % customers.length];
              const res = await call(
                till + n,
                'POST',
                '/api/v1/integration/purchases',
                { 'x-api-key': merchant.apiKey, 'idempotency-key': orderId },
                {
                  customer: { customerId: customer?.customerId },
                  receipt: { total: 10_000 + n },
                  redeemPoints: n % 3 === 0 ? 10 : 0,
                  orderId,
                  outletId: merchant.outletId,
                },
              );
              statuses.push(res.status);
              await res.arrayBuffer();
            }
          }),
        );
        expect(statuses.filter((s) => s !== 201)).toEqual([]);
        expect(await findLedgerViolations(database.db)).toEqual([]);

        // Every event reaches the receiver; duplicates only as at-least-once allows (counted).
        await expect
          .poll(async () => countByWebhookId(receiver).size, { timeout: 30_000, interval: 250 })
          .toBe(200);
        // The receiver answers before the worker records the delivery: wait for the last records.
        const delivered = async () => {
          const events = await database.db
            .selectFrom('outbox_events')
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('endpoint_id', '=', endpointId)
            .where('status', '=', 'delivered')
            .executeTakeFirst();
          return Number(events?.n);
        };
        await expect.poll(delivered, { timeout: 10_000, interval: 250 }).toBe(200);
        const duplicates = [...countByWebhookId(receiver).values()].filter((n) => n > 1).length;
        console.log(
          `two APIs + two workers through PgBouncer: 200 commits, 200 events, ${duplicates} duplicated`,
        );
        expect(workers.map((w) => w.exitReason())).toEqual([null, null]);

        // A run-time switch set on one API takes effect on the other within 2 s.
        const admin = { authorization: `Bearer ${ADMIN_API_TOKEN}` };
        const set = await call(0, 'PUT', '/api/v1/admin/switches', admin, { readOnly: true });
        expect(set.status, await set.text()).toBe(200);
        const setAt = Date.now();
        const write = () =>
          call(
            1,
            'POST',
            '/api/v1/integration/purchases',
            { 'x-api-key': merchant.apiKey, 'idempotency-key': 'read-only' },
            {
              customer: { customerId: customers[0]?.customerId },
              receipt: { total: 100 },
              orderId: 'read-only',
              outletId: merchant.outletId,
            },
          ).then((r) => r.status);
        await expect.poll(write, { timeout: 2_000, interval: 100 }).toBe(503);
        expect(Date.now() - setAt).toBeLessThan(2_000);
        await call(0, 'PUT', '/api/v1/admin/switches', admin, { readOnly: false });

        // A refund through one API; its event dies at the gone endpoint. Both workers run the alert
        // monitor every second: exactly one alert reaches the chat, then exactly one "resolved".
        const purchase = await database.db
          .selectFrom('purchases')
          .select('id')
          .where('order_id', '=', 'till-0-0')
          .executeTakeFirstOrThrow();
        // The other API hears that read-only is off within a second, as it heard it on: until then it
        // answers 503 read_only and writes nothing, so the refund is sent again.
        const refund = async () => {
          const response = await call(
            1,
            'POST',
            `/api/v1/integration/purchases/${purchase.id}/refunds`,
            { 'x-api-key': merchant.apiKey, 'idempotency-key': 'refund-1' },
            { outletId: merchant.outletId },
          );
          return `${response.status} ${await response.text()}`;
        };
        await expect.poll(refund, { timeout: 2_000, interval: 100 }).toMatch(/^201 /);
        const deadAlerts = (kind: 'ALERT' | 'RESOLVED') =>
          telegram
            .sentMessages(ALERT_CHAT_ID)
            .filter((m) => m.text.includes(`${kind}: new dead outbox events`));
        // Up to a minute, as for the activation ticks below: the workers' ticks run late on a loaded machine.
        await expect.poll(() => deadAlerts('RESOLVED').length, { timeout: 60_000, interval: 250 }).toBe(1);
        // A few more ticks of both monitors: nothing is repeated.
        await pause(3_000);
        expect(deadAlerts('ALERT').map((m) => m.text)).toEqual([
          '🔴 ALERT: new dead outbox events: 1 (threshold 0)',
        ]);
        expect(deadAlerts('RESOLVED')).toHaveLength(1);
        expect(gone.receiver.deliveries).toHaveLength(1);

        // Each tick of each job ran once over both workers: the runs the workers logged, and the
        // claims in job_runs, are the same ticks, none twice.
        // (Ticks of the last second before the stop are left out: their log lines may still be in
        // the pipe when a worker exits.)
        // Enough ticks to compare (workers that started late under load have run only a few).
        const activationClaims = async () =>
          (
            await database.db
              .selectFrom('job_runs')
              .select('job')
              .where('job', '=', 'points:activate')
              .where('finished_at', 'is not', null)
              .execute()
          ).length;
        await expect.poll(activationClaims, { timeout: 60_000, interval: 250 }).toBeGreaterThanOrEqual(7);
        const cutoff = new Date(Date.now() - 1_000);
        await Promise.all(workers.map((w) => w.stop()));
        const claimed = await database.db
          .selectFrom('job_runs')
          .select(['job', 'scheduled_at', 'error'])
          .where('finished_at', 'is not', null)
          .where('scheduled_at', '<', cutoff)
          .execute();
        expect(claimed.filter((r) => r.error !== null)).toEqual([]);
        const ticks = claimed.map((r) => `${r.job} ${r.scheduled_at.toISOString()}`);
        const logged = jobRunsLogged.filter((t) => new Date(t.split(' ')[1] ?? '') < cutoff);
        expect(logged.sort()).toEqual([...ticks].sort());
        expect(new Set(logged).size).toBe(logged.length);
        const activations = ticks.filter((t) => t.startsWith('points:activate '));
        expect(activations.length).toBeGreaterThanOrEqual(5);
        const ranBy = await database.db.selectFrom('job_runs').select('worker_id').distinct().execute();
        console.log(
          `periodic jobs: ${ticks.length} ticks run once each (${activations.length} of points:activate) by ${ranBy.length} workers`,
        );
      } finally {
        await Promise.all([...apis, ...workers].map((p) => p.stop()));
        await Promise.all([receiver.close(), gone.receiver.close(), telegram.close()]);
      }
    }, 300_000);
  },
);
