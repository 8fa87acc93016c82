import http from 'node:http';
import pino from 'pino';
import { Registry } from 'prom-client';
import { ConfigError, loadConfig } from './config.js';
import { NotificationListener } from './db/listener.js';
import { prepareSchema, SchemaError } from './db/migrate.js';
import { createMetrics, isMetricsScrapeAllowed } from './http/metrics.js';
import { startSharedCounters } from './http/shared-metrics.js';
import { startWorkers } from './jobs/workers.js';
import { resolveRelease } from './lib/release.js';
import { startTracing, traceLogMixin } from './lib/tracing.js';
import { openRuntime } from './runtime.js';

// The worker process (`npm run worker`, the `worker` service in production): outbox delivery,
// periodic jobs and the alert monitor, only when WORKERS_ENABLED=1. Several can run side by side.
// It serves its own /health and /metrics (its own external_requests_total) on WORKER_PORT; its
// counts also reach the API's /metrics through PostgreSQL (src/http/shared-metrics.ts).

async function main(): Promise<void> {
  let loaded: ReturnType<typeof loadConfig>;
  try {
    loaded = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(1);
    }
    throw error;
  }
  const { config, warnings } = loaded;
  const log = pino({ level: config.LOG_LEVEL, base: { process: 'worker' }, mixin: traceLogMixin });
  for (const warning of warnings) log.warn(`config: ${warning}`);
  if (!config.WORKERS_ENABLED) {
    // Stay up (so an orchestrator does not restart it in a loop) but say clearly why nothing happens.
    log.warn(
      'WORKERS_ENABLED is not 1: this worker does nothing. Set WORKERS_ENABLED=1 to deliver the outbox.',
    );
    setInterval(() => log.warn('WORKERS_ENABLED is not 1: outbox delivery is off'), 60_000);
    return;
  }

  const stopTracing = await startTracing({
    endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT,
    serviceName: 'loyalty-worker',
  });
  const metrics = createMetrics();
  const runtime = await openRuntime(config, {
    allowEmbedded: false,
    poolMax: Math.min(config.DATABASE_POOL_MAX, config.OUTBOX_CONCURRENCY + 4),
    onSlowQuery: (sqlText, ms) => {
      metrics.dbSlowQueries.inc();
      log.warn({ ms: Math.round(ms), sql: sqlText }, 'slow query');
    },
    onPreparedStatementsOff: (message) => log.warn(message),
  });
  // Migrations are a deploy step: the worker only checks that its code's are applied.
  try {
    await prepareSchema(runtime.db, { migrate: false, warn: (message) => log.warn(message) });
  } catch (error) {
    await runtime.close();
    if (!(error instanceof SchemaError)) throw error;
    log.fatal(error.message);
    process.exit(1);
  }
  const listener = new NotificationListener(runtime.directUrl);
  await listener.start();
  const stopWorkers = await startWorkers({
    db: runtime.db,
    sessionDb: runtime.sessionDb,
    config,
    metrics,
    listener,
    log,
  });
  // Its counts of external_requests_total reach the API's /metrics through PostgreSQL.
  const sharedCounters = startSharedCounters(runtime.db, metrics, {
    onError: (err) => log.warn({ err }, 'shared metrics not written (retried)'),
  });
  const served = Registry.merge([metrics.registry, metrics.shared]);

  const health = JSON.stringify({ status: 'ok', process: 'worker', ...resolveRelease(config) });
  const server = http.createServer(async (req, res) => {
    if (req.url === '/health' || req.url === '/live') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(health);
    } else if (req.url === '/metrics') {
      if (!isMetricsScrapeAllowed(req.headers, config.METRICS_TOKEN)) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { 'content-type': served.contentType }).end(await served.metrics());
    } else {
      res.writeHead(404).end();
    }
  });
  if (config.WORKER_PORT > 0) server.listen(config.WORKER_PORT, config.HOST);
  log.info({ port: config.WORKER_PORT }, 'worker started');

  let isClosing = false;
  const close = async (signal: string) => {
    if (isClosing) return;
    isClosing = true;
    log.info(`${signal}: finishing deliveries in flight`);
    server.close();
    await stopWorkers();
    await sharedCounters.stop();
    await listener.close();
    await runtime.close();
    await stopTracing().catch(() => {});
    process.exit(0);
  };
  process.once('SIGINT', () => void close('SIGINT'));
  process.once('SIGTERM', () => void close('SIGTERM'));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
