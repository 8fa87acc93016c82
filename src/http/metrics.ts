import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { isSameSecret } from '../lib/tokens.js';

/**
 * Counters every process adds to PostgreSQL (`metric_counters`, src/http/shared-metrics.ts): the
 * API's /metrics serves the whole fleet's totals under these names.
 */
export const SHARED_COUNTERS = {
  externalRequests: {
    name: 'external_requests_total',
    help: 'Calls to outside services by provider (telegram, merchant_webhook), result and HTTP status',
    labelNames: ['provider', 'result', 'status'],
  },
} as const;

/** The process's Prometheus registry and the HTTP metrics the runbook names. */
export interface Metrics {
  registry: Registry;
  /** This process's own counts of SHARED_COUNTERS (served by the worker's port; the API serves the fleet's). */
  shared: Registry;
  httpRequests: Counter<'method' | 'route' | 'status' | 'reason'>;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  httpSlow: Counter<'method' | 'route'>;
  dbSlowQueries: Counter;
  externalRequests: Counter<'provider' | 'result' | 'status'>;
  portalLogins: Counter<'result'>;
  portalRefreshes: Counter<'result'>;
  slowBatches: Counter<'kind'>;
}

/** Creates a registry (one per app, so tests can build several) with the standard metrics. */
export function createMetrics(options: { withDefaults?: boolean } = {}): Metrics {
  const registry = new Registry();
  const shared = new Registry();
  if (options.withDefaults !== false) collectDefaultMetrics({ register: registry });
  const metrics: Metrics = {
    registry,
    shared,
    httpRequests: new Counter({
      name: 'http_requests_total',
      help:
        'HTTP requests by method, route pattern and status code; 503s of maintenance or read-only ' +
        'mode carry reason="maintenance" or reason="read_only"',
      labelNames: ['method', 'route', 'status', 'reason'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request duration in seconds by method, route pattern and status code',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    httpSlow: new Counter({
      name: 'http_slow_requests_total',
      help: 'HTTP requests slower than ALERT_HTTP_SLOW_THRESHOLD_MS',
      labelNames: ['method', 'route'],
      registers: [registry],
    }),
    dbSlowQueries: new Counter({
      name: 'db_slow_queries_total',
      help: 'Database queries slower than DB_SLOW_QUERY_MS',
      registers: [registry],
    }),
    externalRequests: new Counter({ ...SHARED_COUNTERS.externalRequests, registers: [shared] }),
    portalLogins: new Counter({
      name: 'portal_auth_login_total',
      help: 'Portal and admin panel logins by result',
      labelNames: ['result'],
      registers: [registry],
    }),
    portalRefreshes: new Counter({
      name: 'portal_auth_refresh_total',
      help: 'Portal and admin panel token refreshes by result',
      labelNames: ['result'],
      registers: [registry],
    }),
    slowBatches: new Counter({
      name: 'pos_slow_batches_total',
      help:
        'Group commits (kind="commit") and batched customer reads (kind="read") of the POS API still ' +
        'running after GROUP_BATCH_SLOW_MS, whose slot went to the requests behind them (lock waits)',
      labelNames: ['kind'],
      registers: [registry],
    }),
  };
  // Both series from the start at 0, so that the first slow batch shows as an increase.
  for (const kind of ['commit', 'read']) metrics.slowBatches.inc({ kind }, 0);
  return metrics;
}

/**
 * Whether a scrape may read /metrics: always without METRICS_TOKEN, otherwise with the token in
 * `X-Metrics-Token` (the runbook's curl) or as `Authorization: Bearer` (what Prometheus and the
 * Prometheus Operator's ServiceMonitor send; they cannot set other headers).
 */
export function isMetricsScrapeAllowed(headers: IncomingHttpHeaders, token: string | undefined): boolean {
  if (!token) return true;
  const header = headers['x-metrics-token'];
  const bearer = headers.authorization?.startsWith('Bearer ') ? headers.authorization.slice(7) : undefined;
  // Compared in constant time: the token guards the only unauthenticated view of the system.
  return isSameSecret(typeof header === 'string' ? header : undefined, token) || isSameSecret(bearer, token);
}

/**
 * Records every response in the HTTP metrics, labelled by route pattern (never the raw URL); a 503
 * of maintenance or read-only mode also carries its `reason`, so it is not mistaken for a failure.
 */
export function registerHttpMetrics(app: FastifyInstance, metrics: Metrics, slowThresholdMs: number): void {
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { method: request.method, route, status: String(reply.statusCode) };
    const ms = reply.elapsedTime;
    metrics.httpRequests.inc(request.blockedBy ? { ...labels, reason: request.blockedBy } : labels);
    metrics.httpDuration.observe(labels, ms / 1000);
    if (ms >= slowThresholdMs) metrics.httpSlow.inc({ method: request.method, route });
    done();
  });
}

/** The figures read from Postgres when /metrics is scraped. */
export interface DbFigures {
  pending: number;
  dead: number;
  oldestPendingSeconds: number;
  oldestTransactionSeconds: number;
  workersAlive: number;
}

/**
 * What the API reads from Postgres at scrape time (so every API replica shows the same values,
 * whichever Prometheus scrapes): `loyalty_db_up` (1 when the database answered a probe just now,
 * else 0) and the figures the runbook and the alert rules read: `loyalty_outbox_pending` (gauge),
 * `loyalty_outbox_dead_total` (events that have gone dead), `loyalty_outbox_oldest_pending_seconds`
 * (delivery lag), `loyalty_db_oldest_transaction_seconds` (the oldest open transaction, which holds
 * back vacuum) and `loyalty_workers_alive` (workers with a fresh heartbeat; workers serve their own
 * /metrics on WORKER_PORT, which is often not scraped). While the database is away the figures read
 * from it are left out of /metrics rather than served stale (Prometheus marks them stale).
 */
export function createOutboxMetrics(
  metrics: Metrics,
  options: { check: () => Promise<boolean>; read: () => Promise<DbFigures> },
) {
  const up = new Gauge({
    name: 'loyalty_db_up',
    help: 'Whether PostgreSQL answered a probe at scrape time (1) or not (0)',
    registers: [metrics.registry],
  });
  // Registered only while the database answers (see show()).
  const figures = new Map<string, Gauge | Counter>();
  const gauge = (name: string, help: string) => {
    const metric = new Gauge({ name, help, registers: [] });
    figures.set(name, metric);
    return metric;
  };
  const pending = gauge(
    'loyalty_outbox_pending',
    'Outbox events waiting for delivery (pending or being delivered)',
  );
  const dead = new Counter({
    name: 'loyalty_outbox_dead_total',
    help: 'Outbox events that have gone dead after their retry schedule was used up',
    registers: [],
  });
  figures.set('loyalty_outbox_dead_total', dead);
  const oldest = gauge(
    'loyalty_outbox_oldest_pending_seconds',
    'Age in seconds of the oldest outbox event waiting for delivery (0 when none waits)',
  );
  const oldestTransaction = gauge(
    'loyalty_db_oldest_transaction_seconds',
    'Age in seconds of the oldest open transaction on the database (0 when none); it holds back vacuum',
  );
  const workers = gauge(
    'loyalty_workers_alive',
    'Worker processes whose heartbeat is younger than 60 seconds',
  );
  const show = (isShown: boolean) => {
    for (const [name, metric] of figures) {
      const isRegistered = metrics.registry.getSingleMetric(name) !== undefined;
      if (isShown && !isRegistered) metrics.registry.registerMetric(metric);
      if (!isShown && isRegistered) metrics.registry.removeSingleMetric(name);
    }
  };
  return async () => {
    const isUp = await options.check();
    up.set(isUp ? 1 : 0);
    if (!isUp) {
      show(false);
      return;
    }
    try {
      const values = await options.read();
      pending.set(values.pending);
      dead.reset();
      dead.inc(values.dead);
      oldest.set(values.oldestPendingSeconds);
      oldestTransaction.set(values.oldestTransactionSeconds);
      workers.set(values.workersAlive);
      show(true);
    } catch (error) {
      show(false);
      throw error;
    }
  };
}
