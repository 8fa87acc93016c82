import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { adminRequest } from '../../../test/helpers/outbox.js';
import { createDatabase } from '../../db/database.js';
import { findFreePort } from '../../db/embedded.js';
import { startHeartbeat } from '../../jobs/heartbeat.js';
import { enqueueEvent } from '../../jobs/outbox.queue.js';

// The admin panel's system page and the worker heartbeats it reads.

const ADMIN_TOKEN = 'admin-test-operator-token-0123456789';
let t: TestApp;

beforeAll(async () => {
  t = await createTestApp({ env: { ADMIN_API_TOKEN: ADMIN_TOKEN } });
});
afterAll(async () => {
  await t.close();
});

function system() {
  return adminRequest(t.app, { method: 'GET', url: '/api/v1/admin/system', token: ADMIN_TOKEN });
}

describe('GET /api/v1/admin/system', () => {
  it('reports Postgres, Redis, workers, the last alert, switches and outbox counts', async () => {
    await enqueueEvent(t.db, { merchantId: null, type: 'test.event', payload: {} });
    const res = await system();
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      postgres: { ok: true, latencyMs: expect.any(Number), version: expect.stringMatching(/^\d+/) },
      redis: { state: 'disabled' },
      workers: [],
      lastAlert: null,
      switches: {
        maintenance: { enabled: false, forcedByEnv: false, runtime: false },
        readOnly: { enabled: false, forcedByEnv: false, runtime: false },
        outboxPaused: { enabled: false },
      },
      outbox: { pending: 1, processing: 0, delivered: 0, dead: 0, deadTotal: 0 },
    });
    expect((await adminRequest(t.app, { method: 'GET', url: '/api/v1/admin/system' })).statusCode).toBe(401);
  });

  it('reports a heartbeat row it cannot remove at shutdown apart from failed beats', async () => {
    // A database that went away (nothing listens on the port): beats fail, and so does the stop.
    const gone = createDatabase({
      connectionString: `postgres://postgres@127.0.0.1:${await findFreePort()}/x`,
    });
    const beats: unknown[] = [];
    const stops: unknown[] = [];
    const stop = startHeartbeat(gone.db, {
      workerId: 'worker-lost',
      onError: (error) => beats.push(error),
      onStopError: (error) => stops.push(error),
    });
    await stop();
    await gone.db.destroy();
    // The first beat and the clean-up of old rows; the row's removal only to onStopError.
    expect(beats).toHaveLength(2);
    expect(stops).toHaveLength(1);
    expect(String(stops[0])).toMatch(/ECONNREFUSED/);
  });

  it('shows live workers from their heartbeats, and a silent one as not alive', async () => {
    const stop = startHeartbeat(t.db, { workerId: 'worker-a', hostname: 'host-a', intervalMs: 50 });
    await t.db
      .insertInto('worker_heartbeats')
      .values({
        worker_id: 'worker-gone',
        hostname: 'host-b',
        started_at: new Date(Date.now() - 3_600_000),
        last_seen_at: sql<Date>`now() - interval '2 minutes'`,
      })
      .execute();
    await expect
      .poll(async () => (await system()).json().workers.map((w: { workerId: string }) => w.workerId))
      .toEqual(['worker-a', 'worker-gone']);
    const first = (await system()).json().workers[0].lastSeenAt;
    await expect.poll(async () => (await system()).json().workers[0].lastSeenAt).not.toBe(first);
    const workers = (await system()).json().workers;
    expect(workers[0]).toMatchObject({ workerId: 'worker-a', hostname: 'host-a', isAlive: true });
    expect(workers[1]).toMatchObject({ workerId: 'worker-gone', isAlive: false });

    // A clean stop removes the worker: it is not shown as a dead one.
    await stop();
    expect((await system()).json().workers.map((w: { workerId: string }) => w.workerId)).toEqual([
      'worker-gone',
    ]);
  });

  it('shows the alert sent last', async () => {
    await t.db
      .insertInto('alert_states')
      .values([
        { name: 'http_5xx', firing: false, last_sent_at: new Date(Date.now() - 3_600_000) },
        { name: 'outbox_dead', firing: true, last_sent_at: new Date(Date.now() - 60_000) },
        { name: 'http_slow', firing: false, last_sent_at: null },
      ])
      .execute();
    expect((await system()).json().lastAlert).toEqual({
      name: 'outbox_dead',
      firing: true,
      lastSentAt: expect.any(String),
    });
  });
});

describe('OpenAPI', () => {
  it('documents the portal and admin routes', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    const paths = Object.keys(res.json().paths);
    for (const path of [
      '/api/v1/portal/dashboard',
      '/api/v1/portal/transactions.csv',
      '/api/v1/portal/customers/{id}/adjustments',
      '/api/v1/portal/webhooks/{id}/deliveries',
      '/api/v1/admin/merchants/{id}',
      '/api/v1/admin/system',
    ]) {
      expect(paths).toContain(path);
    }
  });
});
