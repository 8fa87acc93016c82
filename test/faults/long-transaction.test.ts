import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { closeWebhookAgents } from '../../src/modules/webhooks/webhooks.delivery.js';
import { openRuntime, type Runtime } from '../../src/runtime.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createTestCustomer } from '../helpers/factories.js';
import { findLedgerViolations } from '../helpers/ledger.js';
import { scrapeMetrics } from '../helpers/metrics.js';
import {
  commitPurchaseViaApi,
  countByWebhookId,
  createReceiverEndpoint,
  pause,
  type ReceiverEndpoint,
  type RunningDispatcher,
  startTestDispatcher,
} from '../helpers/outbox.js';
import { recordFaultRow } from './report.js';

// Scenario 6: a session left idle inside a transaction (someone's psql after BEGIN) holds back vacuum
// while purchases commit and the outbox delivers them. The API's /metrics shows it
// (loyalty_db_oldest_transaction_seconds, alert LoyaltyLongTransaction) while the outbox itself keeps
// flowing (loyalty_outbox_oldest_pending_seconds stays low); VACUUM cannot remove the outbox's dead
// rows until the session ends. Our own pools can never be that session: every connection carries
// idle_in_transaction_session_timeout (DB_IDLE_IN_TRANSACTION_TIMEOUT_MS) and PostgreSQL ends it.

const SOAK = process.env.FAULTS_SOAK === '1';
const HOLD_MS = SOAK ? 180_000 : 15_000;

const OLDEST_TRANSACTION = 'loyalty_db_oldest_transaction_seconds';
const OLDEST_PENDING = 'loyalty_outbox_oldest_pending_seconds';

/** Dead tuples of outbox_events that VACUUM found but could not remove (an open snapshot needs them). */
async function vacuumOutbox(url: string): Promise<{ removed: number; notRemovable: number }> {
  const client = new pg.Client({ connectionString: url });
  const notices: string[] = [];
  client.on('notice', (notice) => notices.push(notice.message ?? ''));
  await client.connect();
  try {
    await client.query('vacuum (verbose) outbox_events');
  } finally {
    await client.end();
  }
  let removed = 0;
  let notRemovable = 0;
  for (const text of notices) {
    for (const match of text.matchAll(
      /tuples: (\d+) removed, \d+ remain, (\d+) are dead but not yet removable/g,
    )) {
      removed += Number(match[1]);
      notRemovable += Number(match[2]);
    }
  }
  return { removed, notRemovable };
}

describe('fault: a long transaction while the outbox churns', () => {
  let t: TestApp;
  let dispatcher: RunningDispatcher;
  let endpoint: ReceiverEndpoint;
  const runtimes: Runtime[] = [];

  beforeAll(async () => {
    t = await createTestApp({
      env: {
        WEBHOOK_ALLOW_PRIVATE_NETWORKS: '1',
        OUTBOX_POLL_INTERVAL_MS: '100',
        OUTBOX_RETRY_SCHEDULE: '0.2,0.5',
      },
      listen: true,
      database: { poolMax: 6 },
    });
    dispatcher = await startTestDispatcher({ db: t.db, url: t.url, config: t.config });
  });

  afterAll(async () => {
    await dispatcher?.stop();
    await endpoint?.receiver.close();
    await closeWebhookAgents();
    for (const rt of runtimes) await rt.close();
    await t?.close();
  });

  it('shows the open transaction on /metrics and in VACUUM while deliveries keep flowing', async () => {
    const { customerId, merchant } = await createTestCustomer(t.db);
    // Purchase events only, so that waiting for as many deliveries as purchases waits for every
    // purchase: the customer's own events (customer.created, its starting points) would count too,
    // and the wait ended with the last purchases' events still on their way (seen: 2 "lost").
    endpoint = await createReceiverEndpoint(t.db, {
      merchantId: merchant.merchantId,
      eventTypes: ['purchase.committed'],
    });

    // Someone's session: BEGIN, then a statement that takes a transaction id, then nothing.
    const idle = new pg.Client({ connectionString: t.url, application_name: 'psql-left-open' });
    idle.on('error', () => {});
    await idle.connect();
    await idle.query('begin');
    await idle.query('select txid_current()');
    const heldAt = Date.now();

    const purchases: string[] = [];
    let answered = 0;
    const samples: Array<{ atMs: number; transaction: number; pending: number }> = [];
    let nextSample = 0;
    while (Date.now() - heldAt < HOLD_MS) {
      const purchase = await commitPurchaseViaApi(t.app, merchant, { customerId, total: 1_000 });
      purchases.push(purchase.id);
      answered += 1;
      if (Date.now() >= nextSample) {
        nextSample = Date.now() + 1_000;
        const values = await scrapeMetrics(t.app, [OLDEST_TRANSACTION, OLDEST_PENDING]);
        samples.push({
          atMs: Date.now() - heldAt,
          transaction: values[OLDEST_TRANSACTION] ?? -1,
          pending: values[OLDEST_PENDING] ?? -1,
        });
      }
      await pause(20);
    }
    await endpoint.receiver.waitForDeliveries(purchases.length, 60_000);
    const heldVacuum = await vacuumOutbox(t.url);
    const last = samples.at(-1);

    // The session is seen: its age on /metrics grows with the hold (scraped each second).
    expect(last?.transaction).toBeGreaterThanOrEqual((HOLD_MS - 3_000) / 1000);
    for (const [i, sample] of samples.entries()) {
      const previous = samples[i - 1];
      if (previous) expect(sample.transaction).toBeGreaterThanOrEqual(previous.transaction);
    }
    // ...while the outbox does not wait on it: no event waited long for delivery.
    expect(Math.max(...samples.map((s) => s.pending))).toBeLessThan(10);
    // Delivered events leave dead row versions in outbox_events that VACUUM must keep for the session.
    expect(heldVacuum.notRemovable).toBeGreaterThan(0);

    // The session ends; the next VACUUM removes what was held back and the gauge drops.
    await idle.query('rollback');
    await idle.end();
    const releasedAt = Date.now();
    let afterVacuum = await vacuumOutbox(t.url);
    while (afterVacuum.notRemovable > 0 && Date.now() - releasedAt < 30_000) {
      await pause(200);
      afterVacuum = await vacuumOutbox(t.url);
    }
    const recoveryMs = Date.now() - releasedAt;
    expect(afterVacuum.notRemovable).toBe(0);
    const after = await scrapeMetrics(t.app, [OLDEST_TRANSACTION, OLDEST_PENDING]);
    expect(after[OLDEST_TRANSACTION]).toBeLessThan(5);

    // Every purchase is in the ledger once and its event reached the receiver once.
    const counts = countByWebhookId(endpoint.receiver, 'purchase.committed');
    const events = await t.db
      .selectFrom('outbox_events')
      .select(['status'])
      .where('target', '=', 'webhook')
      .execute();
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from purchases where id = any(${purchases}::uuid[])
    `.execute(t.db);
    const violations = await findLedgerViolations(t.db);
    const lost = purchases.length - counts.size;
    const duplicated = [...counts.values()].filter((n) => n > 1).length;
    recordFaultRow({
      scenario: '6 long-transaction',
      operations: purchases.length,
      answered,
      lost,
      duplicated,
      violations: violations.length + (rows[0]?.n === purchases.length ? 0 : 1),
      recoveryMs,
      notes:
        `idle in transaction ${Math.round(HOLD_MS / 1000)} s: ${OLDEST_TRANSACTION} reached ${last?.transaction.toFixed(0)} s, ` +
        `${OLDEST_PENDING} max ${Math.max(...samples.map((s) => s.pending)).toFixed(1)} s, ` +
        `VACUUM kept ${heldVacuum.notRemovable} dead outbox rows until it ended; recovery = VACUUM clean`,
    });
    expect(rows[0]?.n).toBe(purchases.length);
    expect(events.every((e) => e.status === 'delivered')).toBe(true);
    expect(lost).toBe(0);
    expect(duplicated).toBe(0);
    expect(violations).toEqual([]);
  });

  it('sets idle_in_transaction_session_timeout on every connection of every pool of ours', async () => {
    const { config } = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: t.url,
      DATABASE_READ_URL: t.url,
      DATABASE_DIRECT_URL: t.url,
      DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: '1000',
    });
    const rt = await openRuntime(config, { allowEmbedded: false, poolMax: 3 });
    runtimes.push(rt);
    const pools = [
      { name: 'main', db: rt.db, size: 3 },
      { name: 'read replica', db: rt.readDb, size: 3 },
      { name: 'session (direct)', db: rt.sessionDb, size: 2 },
    ];
    // With DATABASE_READ_URL and DATABASE_DIRECT_URL set, each is a pool of its own.
    expect(new Set(pools.map((p) => p.db)).size).toBe(3);
    for (const pool of pools) {
      // As many transactions at once as the pool has connections: each one is on its own connection.
      const seen = await Promise.all(
        Array.from({ length: pool.size }, () =>
          pool.db.transaction().execute(async (trx) => {
            const { rows } = await sql<{ pid: number; timeout: string }>`
              select pg_backend_pid() as pid, current_setting('idle_in_transaction_session_timeout') as timeout
            `.execute(trx);
            await sql`select pg_sleep(0.3)`.execute(trx);
            return rows[0];
          }),
        ),
      );
      expect(new Set(seen.map((s) => s?.pid)).size, pool.name).toBe(pool.size);
      expect(
        seen.map((s) => s?.timeout),
        pool.name,
      ).toEqual(Array(pool.size).fill('1s'));
    }
    // The default holds too.
    const defaults = await openRuntime(loadConfig({ NODE_ENV: 'test', DATABASE_URL: t.url }).config, {
      allowEmbedded: false,
      poolMax: 1,
    });
    runtimes.push(defaults);
    const { rows } = await sql<{ timeout: string }>`
      select current_setting('idle_in_transaction_session_timeout') as timeout
    `.execute(defaults.db);
    expect(rows[0]?.timeout).toBe('1min');
  });

  it('ends a transaction of ours left idle, and the pool carries on', async () => {
    const { config } = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: t.url,
      DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: '500',
    });
    const rt = await openRuntime(config, { allowEmbedded: false, poolMax: 2 });
    runtimes.push(rt);
    let pid = 0;
    const stuck = rt.db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid, txid_current()`.execute(
        trx,
      );
      pid = rows[0]?.pid ?? 0;
      // A bug of ours: the transaction waits on something else, far longer than the timeout.
      await pause(2_000);
      await sql`select 1`.execute(trx);
    });
    await expect(stuck).rejects.toThrow();
    const { rows: left } = await sql<{ n: number }>`
      select count(*)::int as n from pg_stat_activity where pid = ${pid}
    `.execute(t.db);
    expect(left[0]?.n).toBe(0);
    const { rows } = await sql<{ one: number }>`select 1 as one`.execute(rt.db);
    expect(rows[0]?.one).toBe(1);
  });
});
