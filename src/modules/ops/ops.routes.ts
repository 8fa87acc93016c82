import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Redis } from 'ioredis';
import type { DatabaseWatch } from '../../db/availability.js';
import { AppError } from '../../http/errors.js';
import { isMetricsScrapeAllowed, type Metrics } from '../../http/metrics.js';
import type { Release } from '../../lib/release.js';

const startedAt = Date.now();

async function checkRedis(redis: Redis | null): Promise<'ok' | 'down' | 'disabled'> {
  if (!redis) return 'disabled';
  try {
    await redis.ping();
    return 'ok';
  } catch {
    return 'down';
  }
}

/**
 * /health (with the release: version and git commit), /live, /ready and /metrics: no auth (but
 * METRICS_TOKEN), never blocked by maintenance.
 */
export function opsRoutes(deps: {
  /** Probes PostgreSQL (and remembers outages for loyalty_db_up and the outage alert). */
  watch: DatabaseWatch;
  redis: Redis | null;
  metrics: Metrics;
  metricsToken?: string;
  /** The release /health reports. */
  release: Release;
  /** Gauges read from Postgres at scrape time (loyalty_db_up and the outbox figures). */
  collectDbMetrics?: () => Promise<void>;
}): FastifyPluginAsyncZod {
  return async (app) => {
    const hide = { hide: true };
    app.get('/live', { schema: { ...hide } }, async () => ({ status: 'ok' }));

    app.get('/health', { schema: { ...hide } }, async () => ({
      status: 'ok',
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      version: deps.release.version,
      commit: deps.release.commit,
    }));

    app.get('/ready', { schema: { ...hide } }, async (_request, reply) => {
      const [isPostgresUp, redis] = await Promise.all([deps.watch.check(), checkRedis(deps.redis)]);
      const postgres = isPostgresUp ? 'ok' : 'down';
      // Redis is optional: it is reported, but only Postgres decides readiness.
      const ready = isPostgresUp;
      return reply
        .status(ready ? 200 : 503)
        .send({ status: ready ? 'ok' : 'unavailable', checks: { postgres, redis } });
    });

    app.get('/metrics', { schema: { ...hide } }, async (request, reply) => {
      if (!isMetricsScrapeAllowed(request.headers, deps.metricsToken)) {
        throw new AppError('unauthorized', 'X-Metrics-Token header missing or wrong');
      }
      await deps.collectDbMetrics?.().catch((err) => request.log.warn({ err }, 'db metrics unavailable'));
      reply.header('Content-Type', deps.metrics.registry.contentType);
      return deps.metrics.registry.metrics();
    });
  };
}
