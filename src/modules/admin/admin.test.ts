import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import {
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import { adminRequest, commitPurchaseViaApi } from '../../../test/helpers/outbox.js';
import { buildApp } from '../../app.js';
import { loadConfig } from '../../config.js';
import { createDatabase } from '../../db/database.js';
import { NotificationListener } from '../../db/listener.js';
import { enqueueEvent, markFailed, outboxCounts, recordAttempt } from '../../jobs/outbox.queue.js';

// The operators' admin API (Bearer ADMIN_API_TOKEN): outbox views and controls, the run-time
// maintenance and read-only switches (obeyed by every replica), and merchants' webhook endpoints.

const ADMIN_TOKEN = 'admin-test-operator-token-0123456789';
let t: TestApp;

/** Another API replica on the same database (its own pool; a LISTEN connection only when asked). */
interface Replica {
  app: FastifyInstance;
  close(): Promise<void>;
}
const replicas: Replica[] = [];

async function startReplica(
  options: { env?: Record<string, string>; listen?: boolean } = {},
): Promise<Replica> {
  const { config } = loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: 'silent',
    ADMIN_API_TOKEN: ADMIN_TOKEN,
    ...options.env,
  });
  const { db } = createDatabase({ connectionString: t.url, max: 4 });
  const listener = options.listen ? new NotificationListener(t.url) : undefined;
  await listener?.start();
  const app = await buildApp(config, { db, logger: false, listener });
  await app.ready();
  const replica = {
    app,
    async close() {
      await app.close();
      await listener?.close();
      await db.destroy();
    },
  };
  replicas.push(replica);
  return replica;
}

beforeAll(async () => {
  t = await createTestApp({ env: { ADMIN_API_TOKEN: ADMIN_TOKEN }, listen: true });
});
afterEach(async () => {
  // Modes off again (through the API, which answers in every mode), so tests stay independent.
  const res = await admin(t.app, 'PUT', '/api/v1/admin/switches', { maintenance: false, readOnly: false });
  expect(res.statusCode).toBe(200);
  await Promise.all(replicas.splice(0).map((r) => r.close()));
});
afterAll(async () => {
  await t.close();
});

function admin(
  app: FastifyInstance,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  url: string,
  payload?: object,
) {
  return adminRequest(app, { method, url, token: ADMIN_TOKEN, payload });
}

function errorCode(res: LightMyRequestResponse): string | undefined {
  return (res.json() as { error?: { code?: string } }).error?.code;
}

function resolveCustomer(app: FastifyInstance, merchant: TestMerchant, phone: string) {
  return app.inject({
    method: 'POST',
    url: '/api/v1/integration/customers/resolve',
    headers: { 'x-api-key': merchant.apiKey },
    payload: { phone, outletId: merchant.outletId },
  });
}

describe('operator authentication', () => {
  const routes: Array<{ method: 'GET' | 'POST' | 'PUT'; url: string; payload?: object }> = [
    { method: 'GET', url: '/api/v1/admin/outbox' },
    { method: 'GET', url: '/api/v1/admin/outbox/events' },
    { method: 'POST', url: '/api/v1/admin/outbox/pause', payload: {} },
    { method: 'GET', url: '/api/v1/admin/switches' },
    { method: 'PUT', url: '/api/v1/admin/switches', payload: { maintenance: true } },
  ];

  it('answers 401 without the token, with a wrong one, and changes nothing', async () => {
    const merchant = await createTestMerchant(t.db);
    const all = [
      ...routes,
      { method: 'GET' as const, url: `/api/v1/admin/merchants/${merchant.merchantId}/webhooks` },
    ];
    const wrong = [null, 'nope', `${ADMIN_TOKEN.slice(0, -1)}x`, `${ADMIN_TOKEN}x`];
    for (const route of all) {
      for (const token of wrong) {
        const res = await adminRequest(t.app, { ...route, token });
        expect(res.statusCode, `${route.method} ${route.url} with ${token}`).toBe(401);
        expect(errorCode(res)).toBe('unauthorized');
      }
      // The right token in the wrong scheme is no better.
      const basic = await t.app.inject({
        method: route.method,
        url: route.url,
        headers: { authorization: `Basic ${ADMIN_TOKEN}` },
        ...(route.payload ? { payload: route.payload } : {}),
      });
      expect(basic.statusCode).toBe(401);
    }
    const switches = await sql<{ name: string }>`select name from runtime_switches where enabled`.execute(
      t.db,
    );
    expect(switches.rows).toEqual([]);
    expect((await resolveCustomer(t.app, merchant, '+79990000000')).statusCode).not.toBe(503);
  });

  it('accepts no static token when ADMIN_API_TOKEN is not set', async () => {
    const replica = await startReplica({ env: { ADMIN_API_TOKEN: '' } });
    for (const route of routes) {
      for (const token of [ADMIN_TOKEN, '', 'undefined']) {
        const res = await adminRequest(replica.app, { ...route, token });
        expect(res.statusCode, `${route.method} ${route.url}`).toBe(401);
        expect(res.json().error.message).toContain('ADMIN_API_TOKEN');
      }
    }
  });
});

describe('outbox views and controls', () => {
  async function seedEvents(merchantId: string) {
    const payload = { message: 'seeded', occurredAt: new Date().toISOString() };
    const ids: number[] = [];
    for (let i = 0; i < 4; i += 1)
      ids.push(await enqueueEvent(t.db, { merchantId, type: 'webhook.test', payload }));
    const [pendingA, pendingB, delivered, dead] = ids as [number, number, number, number];
    await t.db
      .updateTable('outbox_events')
      .set({ status: 'delivered', delivered_at: new Date(), attempts: 1 })
      .where('id', '=', delivered)
      .execute();
    // Dead the way the dispatcher makes it: a claimed event whose schedule is used up.
    await t.db
      .updateTable('outbox_events')
      .set({ status: 'processing', attempts: 2 })
      .where('id', '=', dead)
      .execute();
    await recordAttempt(t.db, {
      eventId: dead,
      attempt: 1,
      result: {
        result: 'http_error',
        statusCode: 500,
        durationMs: 42,
        error: 'HTTP 500',
        responseExcerpt: 'boom',
      },
    });
    await recordAttempt(t.db, {
      eventId: dead,
      attempt: 2,
      result: { result: 'timeout', durationMs: 10_000, error: 'no response within 10000 ms' },
    });
    expect(
      await markFailed(t.db, {
        id: dead,
        attempt: 2,
        error: 'no response within 10000 ms',
        delaySeconds: null,
      }),
    ).toBe('dead');
    return { pendingA, pendingB, delivered, dead };
  }

  it('shows counts by status and the ever-dead counter', async () => {
    const before = await admin(t.app, 'GET', '/api/v1/admin/outbox');
    expect(before.statusCode).toBe(200);
    const merchant = await createTestMerchant(t.db);
    await seedEvents(merchant.merchantId);

    const after = await admin(t.app, 'GET', '/api/v1/admin/outbox');
    const b = before.json().counts;
    expect(after.json().counts).toEqual({
      pending: b.pending + 2,
      processing: b.processing,
      delivered: b.delivered + 1,
      dead: b.dead + 1,
      deadTotal: b.deadTotal + 1,
    });
    expect(after.json().counts).toEqual(await outboxCounts(t.db));
  });

  it('lists events by status and merchant, newest first, paged', async () => {
    const merchant = await createTestMerchant(t.db);
    const other = await createTestMerchant(t.db);
    const ids = await seedEvents(merchant.merchantId);
    await seedEvents(other.merchantId);
    const base = `/api/v1/admin/outbox/events?merchantId=${merchant.merchantId}`;

    const dead = await admin(t.app, 'GET', `${base}&status=dead`);
    expect(dead.statusCode).toBe(200);
    expect(dead.json().items).toEqual([
      expect.objectContaining({
        id: ids.dead,
        merchantId: merchant.merchantId,
        type: 'webhook.test',
        status: 'dead',
        attempts: 2,
        lastError: 'no response within 10000 ms',
      }),
    ]);
    const pending = await admin(t.app, 'GET', `${base}&status=pending`);
    expect(pending.json().items.map((e: { id: number }) => e.id)).toEqual([ids.pendingB, ids.pendingA]);

    const firstPage = await admin(t.app, 'GET', `${base}&limit=3`);
    expect(firstPage.json().items.map((e: { id: number }) => e.id)).toEqual([
      ids.dead,
      ids.delivered,
      ids.pendingB,
    ]);
    const secondPage = await admin(t.app, 'GET', `${base}&limit=3&before=${ids.pendingB}`);
    expect(secondPage.json().items.map((e: { id: number }) => e.id)).toEqual([ids.pendingA]);

    const bad = await admin(t.app, 'GET', '/api/v1/admin/outbox/events?status=lost');
    expect(bad.statusCode).toBe(400);
    expect(errorCode(bad)).toBe('validation_error');
  });

  it('shows one event with its payload and every attempt', async () => {
    const merchant = await createTestMerchant(t.db);
    const ids = await seedEvents(merchant.merchantId);
    const res = await admin(t.app, 'GET', `/api/v1/admin/outbox/events/${ids.dead}`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      id: ids.dead,
      merchantId: merchant.merchantId,
      type: 'webhook.test',
      status: 'dead',
      attempts: 2,
      lastError: 'no response within 10000 ms',
      payload: { message: 'seeded' },
      attemptLog: [
        {
          attempt: 1,
          statusCode: 500,
          result: 'http_error',
          durationMs: 42,
          error: 'HTTP 500',
          responseExcerpt: 'boom',
        },
        { attempt: 2, statusCode: null, result: 'timeout', durationMs: 10_000 },
      ],
    });
    expect(res.json().deadAt).toEqual(expect.any(String));

    expect((await admin(t.app, 'GET', '/api/v1/admin/outbox/events/999999999')).statusCode).toBe(404);
    expect((await admin(t.app, 'GET', '/api/v1/admin/outbox/events/abc')).statusCode).toBe(400);
  });

  it('reports a global pause in the outbox view as soon as the pause call has answered', async () => {
    // A replica whose NOTIFY connection is down (or that has none) must still show what it just did,
    // as PUT /switches does; otherwise an operator pausing delivery reads "not paused" right after.
    const replica = await startReplica();
    const paused = await admin(replica.app, 'POST', '/api/v1/admin/outbox/pause', {});
    expect(paused.statusCode).toBe(200);
    try {
      const view = await admin(replica.app, 'GET', '/api/v1/admin/outbox');
      expect(view.json().paused.global).toBe(true);
    } finally {
      const resumed = await admin(replica.app, 'POST', '/api/v1/admin/outbox/resume', {});
      expect(resumed.statusCode).toBe(200);
    }
    const view = await admin(replica.app, 'GET', '/api/v1/admin/outbox');
    expect(view.json().paused.global).toBe(false);
  });

  it('refuses to pause a merchant that does not exist', async () => {
    const res = await admin(t.app, 'POST', '/api/v1/admin/outbox/pause', {
      merchantId: '00000000-0000-4000-8000-000000000000',
    });
    expect(res.statusCode).toBe(404);
    expect(errorCode(res)).toBe('merchant_not_found');
  });
});

describe('maintenance and read-only switches', () => {
  const OPS = ['/health', '/live', '/ready', '/metrics'];

  async function expectOpsAnswer(app: FastifyInstance) {
    for (const url of OPS) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
    }
  }

  function expectBlocked(res: LightMyRequestResponse, code: 'maintenance' | 'read_only') {
    expect(res.statusCode).toBe(503);
    expect(errorCode(res)).toBe(code);
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  }

  it('maintenance at run time: 503 on this replica and on another within seconds; ops routes and the switch stay up', async () => {
    const other = await startReplica(); // no LISTEN connection: it relies on its polling fallback
    const merchant = await createTestMerchant(t.db);
    const customer = await createTestCustomer(t.db, { merchant });
    expect((await resolveCustomer(t.app, merchant, customer.phone)).statusCode).toBe(200);
    expect((await resolveCustomer(other.app, merchant, customer.phone)).statusCode).toBe(200);

    const on = await admin(t.app, 'PUT', '/api/v1/admin/switches', { maintenance: true });
    expect(on.statusCode).toBe(200);
    expect(on.json().maintenance).toEqual({ enabled: true, forcedByEnv: false, runtime: true });

    expectBlocked(await resolveCustomer(t.app, merchant, customer.phone), 'maintenance');
    await expect
      .poll(async () => (await resolveCustomer(other.app, merchant, customer.phone)).statusCode, {
        timeout: 5_000,
        interval: 100,
      })
      .toBe(503);
    for (const app of [t.app, other.app]) {
      expectBlocked(await resolveCustomer(app, merchant, customer.phone), 'maintenance');
      // Everything else is closed too, GETs and the rest of the admin API included.
      expectBlocked(
        await app.inject({
          method: 'GET',
          url: '/api/v1/client/me',
          headers: { authorization: `Bearer ${customer.token}` },
        }),
        'maintenance',
      );
      expectBlocked(await admin(app, 'GET', '/api/v1/admin/outbox'), 'maintenance');
      await expectOpsAnswer(app);
      const state = await admin(app, 'GET', '/api/v1/admin/switches');
      expect(state.statusCode).toBe(200);
      expect(state.json().maintenance.enabled).toBe(true);
    }

    // Turned off from the other replica; this one follows.
    const off = await admin(other.app, 'PUT', '/api/v1/admin/switches', { maintenance: false });
    expect(off.statusCode).toBe(200);
    expect(off.json().maintenance.enabled).toBe(false);
    expect((await resolveCustomer(other.app, merchant, customer.phone)).statusCode).toBe(200);
    await expect
      .poll(async () => (await resolveCustomer(t.app, merchant, customer.phone)).statusCode, {
        timeout: 5_000,
      })
      .toBe(200);
  });

  it('read-only at run time: GET passes, writes get 503 read_only and write nothing', async () => {
    const merchant = await createTestMerchant(t.db);
    const customer = await createTestCustomer(t.db, { merchant });
    const purchase = await commitPurchaseViaApi(t.app, merchant, {
      customerId: customer.customerId,
      total: 10_000,
    });

    const on = await admin(t.app, 'PUT', '/api/v1/admin/switches', { readOnly: true });
    expect(on.json().readOnly).toEqual({ enabled: true, forcedByEnv: false, runtime: true });

    const read = await t.app.inject({
      method: 'GET',
      url: `/api/v1/integration/purchases/${purchase.id}`,
      headers: { 'x-api-key': merchant.apiKey },
    });
    expect(read.statusCode).toBe(200);
    expect((await admin(t.app, 'GET', '/api/v1/admin/outbox')).statusCode).toBe(200);
    const head = await t.app.inject({ method: 'HEAD', url: '/live' });
    expect(head.statusCode).toBe(200);

    expectBlocked(await resolveCustomer(t.app, merchant, customer.phone), 'read_only');
    const write = await t.app.inject({
      method: 'POST',
      url: '/api/v1/integration/purchases',
      headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': 'read-only-1' },
      payload: {
        customer: { customerId: customer.customerId },
        receipt: { total: 10_000 },
        orderId: 'read-only-1',
        outletId: merchant.outletId,
      },
    });
    expectBlocked(write, 'read_only');
    expectBlocked(await admin(t.app, 'POST', '/api/v1/admin/outbox/pause', {}), 'read_only');
    const purchases = await t.db
      .selectFrom('purchases')
      .select('id')
      .where('merchant_id', '=', merchant.merchantId)
      .execute();
    expect(purchases).toHaveLength(1);

    const off = await admin(t.app, 'PUT', '/api/v1/admin/switches', { readOnly: false });
    expect(off.statusCode).toBe(200);
    expect((await resolveCustomer(t.app, merchant, customer.phone)).statusCode).toBe(200);
  });

  it('MAINTENANCE_MODE=1 forces maintenance even while the run-time switch is off', async () => {
    const forced = await startReplica({ env: { MAINTENANCE_MODE: '1' } });
    const merchant = await createTestMerchant(t.db);
    const customer = await createTestCustomer(t.db, { merchant });
    const state = await admin(t.app, 'GET', '/api/v1/admin/switches');
    expect(state.json().maintenance).toEqual({ enabled: false, forcedByEnv: false, runtime: false });

    expectBlocked(await resolveCustomer(forced.app, merchant, customer.phone), 'maintenance');
    await expectOpsAnswer(forced.app);
    // The replica without the variable serves normally.
    expect((await resolveCustomer(t.app, merchant, customer.phone)).statusCode).toBe(200);
  });

  it('READ_ONLY_MODE=1 forces read-only even while the run-time switch is off', async () => {
    const forced = await startReplica({ env: { READ_ONLY_MODE: '1' } });
    const merchant = await createTestMerchant(t.db);
    const customer = await createTestCustomer(t.db, { merchant });
    const purchase = await commitPurchaseViaApi(t.app, merchant, {
      customerId: customer.customerId,
      total: 10_000,
    });

    expectBlocked(await resolveCustomer(forced.app, merchant, customer.phone), 'read_only');
    const read = await forced.app.inject({
      method: 'GET',
      url: `/api/v1/integration/purchases/${purchase.id}`,
      headers: { 'x-api-key': merchant.apiKey },
    });
    expect(read.statusCode).toBe(200);
    const state = await admin(forced.app, 'GET', '/api/v1/admin/switches');
    expect(state.json().readOnly).toEqual({ enabled: true, forcedByEnv: true, runtime: false });
  });
});

describe('webhook endpoints (admin API)', () => {
  const SECRET = /^whsec_[A-Za-z0-9+/=]+$/;
  const path = (merchantId: string, rest = '') => `/api/v1/admin/merchants/${merchantId}/webhooks${rest}`;

  it('creates, lists without secrets, rotates, sends a test event and deletes an endpoint', async () => {
    const merchant = await createTestMerchant(t.db);
    const created = await admin(t.app, 'POST', path(merchant.merchantId), {
      url: 'https://hooks.example.com/loyalty',
      eventTypes: ['purchase.committed'],
      description: 'POS sync',
    });
    expect(created.statusCode).toBe(201);
    const { id, secret } = created.json() as { id: string; secret: string };
    expect(secret).toMatch(SECRET);
    expect(() => new Webhook(secret)).not.toThrow();

    const listed = await admin(t.app, 'GET', path(merchant.merchantId));
    expect(listed.statusCode).toBe(200);
    expect(listed.json().items).toEqual([
      expect.objectContaining({
        id,
        url: 'https://hooks.example.com/loyalty',
        eventTypes: ['purchase.committed'],
        description: 'POS sync',
        enabled: true,
        secretPrefix: secret.slice(0, 10),
        previousSecretExpiresAt: null,
      }),
    ]);
    expect(listed.body).not.toContain(secret);

    const rotated = await admin(t.app, 'POST', path(merchant.merchantId, `/${id}/rotate-secret`), {
      overlapSeconds: 3600,
    });
    expect(rotated.statusCode).toBe(200);
    const next = rotated.json().secret as string;
    expect(next).toMatch(SECRET);
    expect(next).not.toBe(secret);
    const afterRotation = await admin(t.app, 'GET', path(merchant.merchantId));
    expect(afterRotation.json().items[0]).toMatchObject({ secretPrefix: next.slice(0, 10) });
    expect(afterRotation.json().items[0].previousSecretExpiresAt).toEqual(expect.any(String));
    expect(afterRotation.body).not.toContain(next);
    expect(afterRotation.body).not.toContain(secret);

    const tested = await admin(t.app, 'POST', path(merchant.merchantId, `/${id}/test`));
    expect(tested.statusCode).toBe(202);
    const eventId = tested.json().eventId as number;
    expect(
      await t.db
        .selectFrom('outbox_events')
        .select(['merchant_id', 'type', 'target', 'endpoint_id', 'status'])
        .where('id', '=', eventId)
        .executeTakeFirst(),
    ).toEqual({
      merchant_id: merchant.merchantId,
      type: 'webhook.test',
      target: 'webhook',
      endpoint_id: id,
      status: 'pending',
    });

    const deleted = await admin(t.app, 'DELETE', path(merchant.merchantId, `/${id}`));
    expect(deleted.statusCode).toBe(204);
    expect((await admin(t.app, 'GET', path(merchant.merchantId))).json().items).toEqual([]);
    expect((await admin(t.app, 'DELETE', path(merchant.merchantId, `/${id}`))).statusCode).toBe(404);
    expect((await admin(t.app, 'POST', path(merchant.merchantId, `/${id}/test`))).statusCode).toBe(404);
    // Its pending deliveries went with it.
    expect(await t.db.selectFrom('outbox_events').select('id').where('id', '=', eventId).execute()).toEqual(
      [],
    );
  });

  it('refuses private targets (without WEBHOOK_ALLOW_PRIVATE_NETWORKS) and unknown merchants', async () => {
    const merchant = await createTestMerchant(t.db);
    const local = await admin(t.app, 'POST', path(merchant.merchantId), { url: 'http://127.0.0.1:9/hook' });
    expect(local.statusCode).toBe(400);
    expect(local.json().error.details.issues).toEqual([expect.objectContaining({ field: 'url' })]);
    const unknown = '00000000-0000-4000-8000-000000000000';
    expect(errorCode(await admin(t.app, 'GET', path(unknown)))).toBe('merchant_not_found');
    expect(errorCode(await admin(t.app, 'POST', path(unknown), { url: 'https://hooks.example.com' }))).toBe(
      'merchant_not_found',
    );
  });

  it("keeps merchants apart: merchant A's endpoint under merchant B's path is 404 for every call", async () => {
    const a = await createTestMerchant(t.db, { name: 'A' });
    const b = await createTestMerchant(t.db, { name: 'B' });
    const created = await admin(t.app, 'POST', path(a.merchantId), { url: 'https://a.example.com/hook' });
    const { id } = created.json() as { id: string };
    const stored = () =>
      t.db
        .selectFrom('webhook_endpoints')
        .select(['merchant_id', 'url', 'enabled', 'secret_enc'])
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
    const before = await stored();

    const calls: Array<[method: 'PATCH' | 'POST' | 'DELETE', rest: string, payload?: object]> = [
      ['PATCH', `/${id}`, { enabled: false, url: 'https://evil.example.com/hook' }],
      ['POST', `/${id}/rotate-secret`, {}],
      ['POST', `/${id}/test`],
      ['DELETE', `/${id}`],
    ];
    for (const [method, rest, payload] of calls) {
      const res = await admin(t.app, method, path(b.merchantId, rest), payload);
      expect(res.statusCode, `${method} ${rest}`).toBe(404);
      expect(errorCode(res)).toBe('not_found');
    }
    expect((await admin(t.app, 'GET', path(b.merchantId))).json().items).toEqual([]);
    expect(await stored()).toEqual(before);
    expect((await admin(t.app, 'GET', path(a.merchantId))).json().items).toEqual([
      expect.objectContaining({ id, enabled: true }),
    ]);
    const tests = await t.db.selectFrom('outbox_events').select('id').where('endpoint_id', '=', id).execute();
    expect(tests).toEqual([]);
  });
});
