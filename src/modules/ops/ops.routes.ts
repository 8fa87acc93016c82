import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import type { Database } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import type { Metrics } from '../../http/metrics.js';
import { isSameSecret } from '../../lib/tokens.js';

const startedAt = Date.now();

async function checkPostgres(db: Database): Promise<'ok' | 'down'> {
  try {
    await Promise.race([
      sql`select 1`.execute(db),
      new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), 2_000).unref()),
    ]);
    return 'ok';
  } catch {
    return 'down';
  }
}

async function checkRedis(redis: Redis | null): Promise<'ok' | 'down' | 'disabled'> {
  if (!redis) return 'disabled';
  try {
    await redis.ping();
    return 'ok';
  } catch {
    return 'down';
  }
}

/** /health, /live, /ready and /metrics: no auth (but METRICS_TOKEN), never blocked by maintenance. */
export function opsRoutes(deps: {
  db: Database;
  redis: Redis | null;
  metrics: Metrics;
  metricsToken?: string;
  /** Gauges read from Postgres at scrape time (the outbox figures). */
  collectDbMetrics?: () => Promise<void>;
}): FastifyPluginAsyncZod {
  return async (app) => {
    const hide = { hide: true };
    app.get('/live', { schema: { ...hide } }, async () => ({ status: 'ok' }));

    app.get('/health', { schema: { ...hide } }, async () => ({
      status: 'ok',
      uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      version: process.env.npm_package_version ?? null,
    }));

    app.get('/ready', { schema: { ...hide } }, async (_request, reply) => {
      const [postgres, redis] = await Promise.all([checkPostgres(deps.db), checkRedis(deps.redis)]);
      // Redis is optional: it is reported, but only Postgres decides readiness.
      const ready = postgres === 'ok';
      return reply
        .status(ready ? 200 : 503)
        .send({ status: ready ? 'ok' : 'unavailable', checks: { postgres, redis } });
    });

    app.get('/metrics', { schema: { ...hide } }, async (request, reply) => {
      const presented = request.headers['x-metrics-token'];
      if (
        deps.metricsToken &&
        !isSameSecret(typeof presented === 'string' ? presented : undefined, deps.metricsToken)
      ) {
        throw new AppError('unauthorized', 'X-Metrics-Token header missing or wrong');
      }
      await deps.collectDbMetrics?.().catch((err) => request.log.warn({ err }, 'db metrics unavailable'));
      reply.header('Content-Type', deps.metrics.registry.contentType);
      return deps.metrics.registry.metrics();
    });
  };
}
