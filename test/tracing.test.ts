import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiProcess, type ChildHandle, startApi } from '../bench/lib/api-process.js';
import { startWorker } from '../bench/lib/outbox.js';
import { findFreePort } from '../src/db/embedded.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { createTestCustomer, createTestMerchant } from './helpers/factories.js';
import { createReceiverEndpoint } from './helpers/outbox.js';
import { ROOT } from './helpers/process.js';

// OpenTelemetry tracing (OTEL_EXPORTER_OTLP_ENDPOINT) with real processes: an API and a worker
// export to a fake OTLP/HTTP collector on loopback (JSON bodies), and one trace runs from the POS
// request through the ledger call to the webhook delivery. Unset, no OTel SDK module is loaded.

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  service: string;
}

/** A fake OTLP/HTTP collector: POST /v1/traces with JSON bodies, spans kept in order. */
async function startFakeCollector() {
  const spans: ExportedSpan[] = [];
  const contentTypes = new Set<string>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      contentTypes.add(String(req.headers['content-type']));
      if (req.url === '/v1/traces' && String(req.headers['content-type']).startsWith('application/json')) {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans: Array<{
            resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
            scopeSpans: Array<{ spans: Array<Omit<ExportedSpan, 'service'>> }>;
          }>;
        };
        for (const rs of body.resourceSpans) {
          const service =
            rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
          for (const ss of rs.scopeSpans) for (const span of ss.spans) spans.push({ ...span, service });
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    spans,
    contentTypes,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database?.drop();
});

const RECORDER = ['--import', path.join(ROOT, 'test/fixtures/record-otel-imports.mjs')];

function baseEnv(): Record<string, string> {
  return {
    NODE_ENV: 'test',
    SEED_DEMO: '0',
    DATABASE_URL: database.url,
    WEBHOOK_ALLOW_PRIVATE_NETWORKS: '1',
    OUTBOX_POLL_INTERVAL_MS: '200',
    WORKER_PORT: '0',
  };
}

/** The @opentelemetry packages a process resolved (recorded by the fixture), by package name. */
function importedPackages(file: string): string[] {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const names = text
    .split('\n')
    .map((url) => /\/@opentelemetry\/([^/]+)\//.exec(url)?.[1])
    .filter((name): name is string => name !== undefined);
  return [...new Set(names)].sort();
}

/** A merchant with a customer and a webhook receiver subscribed to purchase.committed. */
async function createShop() {
  const merchant = await createTestMerchant(database.db);
  const customer = await createTestCustomer(database.db, { merchant });
  const { receiver } = await createReceiverEndpoint(database.db, {
    merchantId: merchant.merchantId,
    eventTypes: ['purchase.committed'],
  });
  return { merchant, customer, receiver };
}

/** Commits one purchase through the API on `port` as a till does; expects 201, returns the request id. */
async function commitThroughApi(
  port: number,
  shop: Awaited<ReturnType<typeof createShop>>,
  orderId: string,
): Promise<string | null> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/integration/purchases`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-api-key': shop.merchant.apiKey,
      'idempotency-key': orderId,
    },
    body: JSON.stringify({
      customer: { customerId: shop.customer.customerId },
      receipt: { total: 10_000 },
      orderId,
      outletId: shop.merchant.outletId,
    }),
  });
  expect(res.status, await res.text()).toBe(201);
  return res.headers.get('x-request-id');
}

describe('OpenTelemetry tracing', () => {
  it('one trace from the POS request through the ledger and the outbox to the webhook delivery', async () => {
    const collector = await startFakeCollector();
    const shop = await createShop();
    const { receiver } = shop;
    const importLog = path.join(tmpdir(), `otel-imports-${process.pid}-on.txt`);
    const env = { ...baseEnv(), OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_IMPORT_LOG: importLog };
    const apiLines: string[] = [];
    let api: ApiProcess | null = null;
    let worker: ChildHandle | null = null;
    try {
      const port = await findFreePort();
      // LOG_LEVEL=debug: the API logs each request ('request completed').
      api = await startApi({
        cwd: ROOT,
        port,
        nodeFlags: RECORDER,
        env: { ...env, PORT: String(port), LOG_LEVEL: 'debug', WORKERS_ENABLED: '0' },
        onLine: (line) => apiLines.push(line),
      });
      worker = startWorker({ cwd: ROOT, env: { ...env, LOG_LEVEL: 'warn', WORKERS_ENABLED: '1' } });

      const requestId = await commitThroughApi(port, shop, 'traced-1');

      // The webhook arrives with a traceparent; its trace id is the request's.
      await expect.poll(() => receiver.deliveries.length, { timeout: 60_000, interval: 200 }).toBe(1);
      const traceparent = String(receiver.deliveries[0]?.headers.traceparent ?? '');
      expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      const traceId = traceparent.split('-')[1] ?? '';

      // The spans of that trace reach the collector: request (API), ledger call (API), delivery (worker).
      const spansOf = () => collector.spans.filter((s) => s.traceId === traceId);
      await expect
        .poll(
          () =>
            spansOf()
              .map((s) => `${s.service}: ${s.name}`)
              .sort(),
          { timeout: 30_000, interval: 250 },
        )
        .toEqual([
          'loyalty-api: POST /api/v1/integration/purchases',
          'loyalty-api: ledger loyalty_commit_purchase',
          'loyalty-worker: outbox deliver purchase.committed',
        ]);
      const byName = new Map(spansOf().map((s) => [s.name, s]));
      const request = byName.get('POST /api/v1/integration/purchases');
      const ledger = byName.get('ledger loyalty_commit_purchase');
      const delivery = byName.get('outbox deliver purchase.committed');
      expect(ledger?.parentSpanId).toBe(request?.spanId);
      expect(delivery?.parentSpanId).toBe(ledger?.spanId);
      // The webhook request's traceparent names the delivery span.
      expect(traceparent.split('-')[2]).toBe(delivery?.spanId);
      expect([...collector.contentTypes].every((t) => t.startsWith('application/json'))).toBe(true);

      // The API's log line for the request carries the trace id.
      await expect
        .poll(
          () =>
            apiLines
              .filter((l) => l.includes(`"reqId":"${requestId}"`) && l.includes('request completed'))
              .map((l) => JSON.parse(l) as { trace_id?: string; span_id?: string })
              .map((l) => `${l.trace_id} ${l.span_id}`),
          { timeout: 5_000 },
        )
        .toEqual([`${traceId} ${request?.spanId}`]);
      // With the endpoint set the SDK is loaded (the recorder sees it).
      expect(importedPackages(importLog)).toContain('sdk-trace-node');
    } finally {
      await Promise.all([api?.stop(), worker?.stop()]);
      await Promise.all([receiver.close(), collector.close()]);
      rmSync(importLog, { force: true });
    }
  }, 180_000);

  it('with OTEL_EXPORTER_OTLP_ENDPOINT unset no OpenTelemetry SDK module is loaded and no traceparent is sent', async () => {
    const shop = await createShop();
    const { merchant, receiver } = shop;
    const importLog = path.join(tmpdir(), `otel-imports-${process.pid}-off.txt`);
    const env = { ...baseEnv(), LOG_LEVEL: 'warn', OTEL_IMPORT_LOG: importLog };
    let api: ApiProcess | null = null;
    try {
      const port = await findFreePort();
      api = await startApi({
        cwd: ROOT,
        port,
        nodeFlags: RECORDER,
        env: { ...env, PORT: String(port), WORKERS_ENABLED: '1' },
      });
      await commitThroughApi(port, shop, 'plain-1');
      await expect.poll(() => receiver.deliveries.length, { timeout: 60_000, interval: 200 }).toBe(1);
      expect(receiver.deliveries[0]?.headers.traceparent).toBeUndefined();
      // Only the no-op API facade (prom-client requires it too); no SDK, exporter or propagator.
      expect(importedPackages(importLog)).toEqual(['api']);
      const stored = await database.db
        .selectFrom('outbox_events')
        .select('trace_context')
        .where('merchant_id', '=', merchant.merchantId)
        .execute();
      expect(stored.map((r) => r.trace_context)).toEqual(stored.map(() => null));
    } finally {
      await api?.stop();
      await receiver.close();
      rmSync(importLog, { force: true });
    }
  }, 180_000);
});
