import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import {
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';
import { buildApp } from '../../app.js';
import { loadConfig } from '../../config.js';
import { createDatabase } from '../../db/database.js';
import { claimDueEvents, markFailed, retryEvent } from '../../jobs/outbox.queue.js';
import { createRedis } from '../../redis.js';

const METRICS_TOKEN = 'metrics-secret';
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

// The Prometheus text format (what prom-client writes and promtool reads): comments
// `# HELP name text` / `# TYPE name type`, and samples `name{label="value",...} value [timestamp]`.
const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"';
// Values as Prometheus reads them (Go's ParseFloat: NaN and Inf in any case; prom-client writes "Nan").
const VALUE = '[-+]?(?:[0-9]+(?:\\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|[nN][aA][nN]|[iI][nN][fF])';
const SAMPLE_LINE = new RegExp(
  `^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*,?)?\\})? (${VALUE})(?: -?[0-9]+)?$`,
);
const HELP_LINE = new RegExp(`^# HELP (${NAME}) .*$`);
const TYPE_LINE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

function parseValue(text: string): number {
  const lower = text.toLowerCase();
  if (lower.endsWith('inf')) return lower.startsWith('-') ? -Infinity : Infinity;
  return lower.endsWith('nan') ? Number.NaN : Number(text);
}

/** Parses the exposition text, failing on any line that is neither a comment nor a sample. */
function parseMetrics(text: string): { samples: Sample[]; types: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const type = TYPE_LINE.exec(line);
      const help = HELP_LINE.exec(line);
      expect(type ?? help, `comment line: ${line}`).not.toBeNull();
      if (type?.[1] && type[2]) {
        expect(types.has(type[1]), `TYPE of ${type[1]} given twice`).toBe(false);
        types.set(type[1], type[2]);
      }
      if (help?.[1]) {
        expect(helps.has(help[1]), `HELP of ${help[1]} given twice`).toBe(false);
        helps.add(help[1]);
      }
      continue;
    }
    const match = SAMPLE_LINE.exec(line);
    expect(match, `sample line: ${line}`).not.toBeNull();
    if (!match?.[1] || !match[3]) continue;
    const labels: Record<string, string> = {};
    for (const m of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      if (m[1] !== undefined && m[2] !== undefined) labels[m[1]] = m[2];
    }
    const family = match[1].replace(/_(bucket|sum|count)$/, '');
    expect(types.has(match[1]) || types.has(family), `sample of undeclared metric: ${line}`).toBe(true);
    samples.push({ name: match[1], labels, value: parseValue(match[3]) });
  }
  return { samples, types };
}

function find(samples: Sample[], name: string, labels: Record<string, string>): Sample[] {
  return samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

async function scrape(app: FastifyInstance, token?: string) {
  const res = await app.inject({
    method: 'GET',
    url: '/metrics',
    headers: token === undefined ? {} : { 'x-metrics-token': token },
  });
  expect(res.statusCode, res.body.slice(0, 300)).toBe(200);
  return { res, ...parseMetrics(res.body) };
}

async function commitPurchase(app: FastifyInstance, merchant: TestMerchant, phone: string, orderId: string) {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/integration/purchases',
    headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': orderId },
    payload: { customer: { phone }, receipt: { total: 10_000 }, orderId, outletId: merchant.outletId },
  });
  expect(res.statusCode, res.body).toBe(201);
  return res.json<{ purchase: { id: string } }>().purchase.id;
}

let t: TestApp;
let merchant: TestMerchant;
let phone: string;

beforeAll(async () => {
  t = await createTestApp({ env: { METRICS_TOKEN, ALERT_HTTP_SLOW_THRESHOLD_MS: '1' } });
  merchant = await createTestMerchant(t.db);
  phone = (await createTestCustomer(t.db, { merchant, points: 100 })).phone;
});

afterAll(async () => {
  await t?.close();
});

describe('health and readiness', () => {
  it('answers /health and /live with 200', async () => {
    const health = await t.app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toMatchObject({ status: 'ok', uptimeSeconds: expect.any(Number) });
    const live = await t.app.inject({ method: 'GET', url: '/live' });
    expect(live.statusCode).toBe(200);
    expect(live.json()).toEqual({ status: 'ok' });
  });

  it('is ready with Postgres up and reports Redis as disabled when there is none', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/ready' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok', checks: { postgres: 'ok', redis: 'disabled' } });
  });

  it.skipIf(!process.env.REDIS_URL)('reports Redis as ok with a live Redis', async () => {
    const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
    if (!redis) throw new Error('createRedis returned no client for a URL');
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
    const withRedis = await createTestApp({ redis });
    try {
      const res = await withRedis.app.inject({ method: 'GET', url: '/ready' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ok', checks: { postgres: 'ok', redis: 'ok' } });
    } finally {
      await withRedis.close();
      redis.disconnect();
    }
  });

  it('stays ready but reports Redis as down when Redis is unreachable', async () => {
    const redis = createRedis('redis://127.0.0.1:1');
    const withDeadRedis = await createTestApp({ redis });
    try {
      const res = await withDeadRedis.app.inject({ method: 'GET', url: '/ready' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ok', checks: { postgres: 'ok', redis: 'down' } });
    } finally {
      await withDeadRedis.close();
      redis?.disconnect();
    }
  });

  describe('with Postgres unreachable', () => {
    let app: FastifyInstance;
    let destroy: () => Promise<void>;

    beforeAll(async () => {
      // The key is configured, as in production: only an installation's own key is kept in the database.
      const { config } = loadConfig({
        NODE_ENV: 'test',
        LOG_LEVEL: 'silent',
        METRICS_TOKEN,
        APP_ENCRYPTION_KEY: 'ab'.repeat(32),
      });
      const { db } = createDatabase({ connectionString: 'postgres://postgres@127.0.0.1:1/x', max: 1 });
      app = await buildApp(config, { db, logger: false });
      await app.ready();
      destroy = async () => {
        await app.close();
        await db.destroy();
      };
    });

    afterAll(async () => {
      await destroy?.();
    });

    it('answers /ready with 503 naming Postgres as down', async () => {
      const res = await app.inject({ method: 'GET', url: '/ready' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ status: 'unavailable', checks: { postgres: 'down', redis: 'disabled' } });
    });

    it('still answers /health, /live and /metrics (liveness is not readiness)', async () => {
      expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/live' })).statusCode).toBe(200);
      const { samples } = await scrape(app, METRICS_TOKEN);
      expect(find(samples, 'http_requests_total', { route: '/health', status: '200' })).toHaveLength(1);
    });
  });
});

describe('/metrics', () => {
  it('requires the X-Metrics-Token when METRICS_TOKEN is set', async () => {
    for (const headers of [{}, { 'x-metrics-token': 'wrong' }, { 'x-metrics-token': '' }]) {
      const res = await t.app.inject({ method: 'GET', url: '/metrics', headers });
      expect(res.statusCode, JSON.stringify(headers)).toBe(401);
      expect(res.json()).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
      expect(res.body).not.toContain('http_requests_total');
    }
    const { res } = await scrape(t.app, METRICS_TOKEN);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('serves without a token when METRICS_TOKEN is unset', async () => {
    const open = await createTestApp();
    try {
      await scrape(open.app);
    } finally {
      await open.close();
    }
  });

  it('names the runbook metrics, in valid exposition format, labelled by route pattern', async () => {
    const purchaseId = await commitPurchase(t.app, merchant, phone, 'metrics-order-1');
    const headers = { 'x-api-key': merchant.apiKey };
    const got = await t.app.inject({
      method: 'GET',
      url: `/api/v1/integration/purchases/${purchaseId}`,
      headers,
    });
    expect(got.statusCode).toBe(200);
    const unknown = crypto.randomUUID();
    const missing = await t.app.inject({
      method: 'GET',
      url: `/api/v1/integration/purchases/${unknown}`,
      headers,
    });
    expect(missing.statusCode).toBe(404);
    const noRoute = await t.app.inject({ method: 'GET', url: `/api/v1/nothing-here/${unknown}` });
    expect(noRoute.statusCode).toBe(404);

    const { res, samples, types } = await scrape(t.app, METRICS_TOKEN);
    for (const [name, type] of [
      ['http_requests_total', 'counter'],
      ['http_request_duration_seconds', 'histogram'],
      ['http_slow_requests_total', 'counter'],
      ['loyalty_outbox_pending', 'gauge'],
      ['loyalty_outbox_dead_total', 'counter'],
    ]) {
      expect(types.get(name ?? ''), name).toBe(type);
    }
    const byPattern = { method: 'GET', route: '/api/v1/integration/purchases/:id' };
    expect(find(samples, 'http_requests_total', { ...byPattern, status: '200' })[0]?.value).toBe(1);
    expect(find(samples, 'http_requests_total', { ...byPattern, status: '404' })[0]?.value).toBe(1);
    expect(
      find(samples, 'http_request_duration_seconds_count', { ...byPattern, status: '200' })[0]?.value,
    ).toBe(1);
    expect(
      find(samples, 'http_requests_total', {
        method: 'POST',
        route: '/api/v1/integration/purchases',
        status: '201',
      }),
    ).toHaveLength(1);
    // Neither ids nor unknown URLs become label values: cardinality stays bounded.
    expect(res.body).not.toMatch(UUID);
    expect(res.body).not.toContain('nothing-here');
  });

  it('counts a request slower than ALERT_HTTP_SLOW_THRESHOLD_MS in http_slow_requests_total', async () => {
    // The threshold is 1 ms in this app: a commit (several queries in a transaction) always exceeds it.
    const slow = { method: 'POST', route: '/api/v1/integration/purchases' };
    const before = find((await scrape(t.app, METRICS_TOKEN)).samples, 'http_slow_requests_total', slow)[0];
    await commitPurchase(t.app, merchant, phone, 'metrics-slow-1');
    const after = find((await scrape(t.app, METRICS_TOKEN)).samples, 'http_slow_requests_total', slow)[0];
    expect(after?.value).toBe((before?.value ?? 0) + 1);
  });

  it('does not count requests faster than the threshold as slow', async () => {
    const patient = await createTestApp({ env: { ALERT_HTTP_SLOW_THRESHOLD_MS: '600000' } });
    try {
      const m = await createTestMerchant(patient.db);
      const c = await createTestCustomer(patient.db, { merchant: m });
      await commitPurchase(patient.app, m, c.phone, 'not-slow-1');
      const { samples } = await scrape(patient.app);
      expect(find(samples, 'http_requests_total', { route: '/api/v1/integration/purchases' })).toHaveLength(
        1,
      );
      expect(find(samples, 'http_slow_requests_total', {})).toEqual([]);
    } finally {
      await patient.close();
    }
  });

  it('reads the outbox figures from Postgres at scrape time', async () => {
    await commitPurchase(t.app, merchant, phone, 'metrics-outbox-1');
    const { rows } = await sql<{ pending: number }>`
      select count(*)::int as pending from outbox_events where status in ('pending', 'processing')`.execute(
      t.db,
    );
    const pending = rows[0]?.pending ?? 0;
    expect(pending).toBeGreaterThan(0);
    let { samples } = await scrape(t.app, METRICS_TOKEN);
    expect(find(samples, 'loyalty_outbox_pending', {})[0]?.value).toBe(pending);
    expect(find(samples, 'loyalty_outbox_dead_total', {})[0]?.value).toBe(0);

    // An event that used up its retries, the way the worker marks it (claim, then fail for good).
    const [claimed] = await claimDueEvents(t.db, { batchSize: 1, leaseSeconds: 60 });
    if (!claimed) throw new Error('nothing to claim');
    await markFailed(t.db, { id: claimed.id, attempt: claimed.attempts, error: 'gone', delaySeconds: null });
    ({ samples } = await scrape(t.app, METRICS_TOKEN));
    expect(find(samples, 'loyalty_outbox_pending', {})[0]?.value).toBe(pending - 1);
    expect(find(samples, 'loyalty_outbox_dead_total', {})[0]?.value).toBe(1);

    // A replayed event leaves the counter where it was: it counts events that have ever gone dead.
    await retryEvent(t.db, { id: claimed.id });
    ({ samples } = await scrape(t.app, METRICS_TOKEN));
    expect(find(samples, 'loyalty_outbox_pending', {})[0]?.value).toBe(pending);
    expect(find(samples, 'loyalty_outbox_dead_total', {})[0]?.value).toBe(1);
  });
});

describe('maintenance and read-only switches', () => {
  it('keeps the ops endpoints open in MAINTENANCE_MODE while the API answers 503 maintenance', async () => {
    const down = await createTestApp({ env: { MAINTENANCE_MODE: '1' } });
    try {
      for (const url of ['/health', '/live', '/ready', '/metrics']) {
        expect((await down.app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
      }
      const m = await createTestMerchant(down.db);
      const res = await down.app.inject({
        method: 'POST',
        url: '/api/v1/integration/customers/resolve',
        headers: { 'x-api-key': m.apiKey },
        payload: { phone: '+79990001122' },
      });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ error: { code: 'maintenance', message: expect.any(String) } });
    } finally {
      await down.close();
    }
  });

  it('lets reads through in READ_ONLY_MODE and answers writes with 503 read_only', async () => {
    const readOnly = await createTestApp({ env: { READ_ONLY_MODE: '1' } });
    try {
      const m = await createTestMerchant(readOnly.db);
      const headers = { 'x-api-key': m.apiKey };
      const read = await readOnly.app.inject({
        method: 'GET',
        url: `/api/v1/integration/purchases/${crypto.randomUUID()}`,
        headers,
      });
      expect(read.statusCode).toBe(404);
      const write = await readOnly.app.inject({
        method: 'POST',
        url: '/api/v1/integration/purchases',
        headers: { ...headers, 'idempotency-key': 'ro-1' },
        payload: {
          customer: { phone: '+79990001122' },
          receipt: { total: 100 },
          orderId: 'ro-1',
          outletId: m.outletId,
        },
      });
      expect(write.statusCode).toBe(503);
      expect(write.json()).toEqual({ error: { code: 'read_only', message: expect.any(String) } });
      expect((await readOnly.app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(200);
    } finally {
      await readOnly.close();
    }
  });
});

describe('API documentation', () => {
  it('serves the OpenAPI UI at /docs', async () => {
    let res = await t.app.inject({ method: 'GET', url: '/docs' });
    if (res.statusCode === 302 && typeof res.headers.location === 'string') {
      res = await t.app.inject({
        method: 'GET',
        url: new URL(res.headers.location, 'http://x/docs/').pathname,
      });
    }
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toMatch(/swagger-ui/i);
  });

  it('describes the integration API in /docs/json', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    const spec = res.json<{
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
      components: { securitySchemes: Record<string, unknown> };
    }>();
    expect(spec.openapi).toMatch(/^3\./);
    expect(Object.keys(spec.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/integration/customers/resolve',
        '/api/v1/integration/purchases/quote',
        '/api/v1/integration/purchases',
        '/api/v1/integration/purchases/{id}',
        '/api/v1/integration/purchases/{id}/refunds',
      ]),
    );
    expect(Object.keys(spec.paths['/api/v1/integration/purchases'] ?? {})).toContain('post');
    expect(Object.keys(spec.paths['/api/v1/integration/purchases/{id}'] ?? {})).toContain('get');
    expect(spec.components.securitySchemes).toHaveProperty('apiKey');
  });
});
