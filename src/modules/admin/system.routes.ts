import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { requireOperator } from '../../http/admin-auth.js';
import { listAudit } from '../audit/audit.service.js';
import { ErrorResponse } from '../integration/integration.schema.js';
import { AuditEntry } from '../portal/portal.http.js';
import type { SwitchBoard } from './switches.service.js';
import { getSystemStatus } from './system.service.js';

const tags = ['admin: system'];
const security = [{ operatorToken: [] }];
const errors = { 400: ErrorResponse, 401: ErrorResponse, 403: ErrorResponse };
const Mode = z.object({ enabled: z.boolean(), forcedByEnv: z.boolean(), runtime: z.boolean() });
const SystemResponse = z.object({
  postgres: z.object({ ok: z.boolean(), latencyMs: z.number().nullable(), version: z.string().nullable() }),
  redis: z.object({ state: z.enum(['ok', 'down', 'disabled']) }),
  workers: z.array(
    z.object({
      workerId: z.string(),
      hostname: z.string(),
      startedAt: z.date(),
      lastSeenAt: z.date(),
      isAlive: z.boolean(),
    }),
  ),
  lastAlert: z.object({ name: z.string(), firing: z.boolean(), lastSentAt: z.date().nullable() }).nullable(),
  switches: z.object({ maintenance: Mode, readOnly: Mode, outboxPaused: z.object({ enabled: z.boolean() }) }),
  outbox: z
    .object({
      pending: z.int(),
      processing: z.int(),
      delivered: z.int(),
      dead: z.int(),
      deadTotal: z.int(),
    })
    .nullable()
    .describe('null while Postgres is unreachable'),
});
const AuditQuery = z.strictObject({
  merchantId: z.uuid().optional().describe("A merchant's own log; default: the platform's (operators)"),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  before: z.coerce.number().int().min(1).optional().describe('Entries with a smaller id (the next page)'),
});

/** GET /system (health of Postgres, Redis, workers, last alert, switches, outbox) and GET /audit-log. */
export function systemAdminRoutes(deps: {
  db: Database;
  config: Config;
  redis: Redis | null;
  switches: SwitchBoard;
}): FastifyPluginAsyncZod {
  const { db } = deps;
  return async (app) => {
    app.addHook('onRequest', requireOperator(deps.db, deps.config));

    app.get(
      '/system',
      {
        schema: {
          tags,
          security,
          summary: 'Health of Postgres, Redis and the workers; last alert; switches; outbox counts',
          response: { 200: SystemResponse, ...errors },
        },
      },
      async () => getSystemStatus(deps),
    );

    app.get(
      '/audit-log',
      {
        schema: {
          tags,
          security,
          summary: "Operators' actions (or one merchant's log), newest first",
          querystring: AuditQuery,
          response: { 200: z.object({ items: z.array(AuditEntry) }), ...errors },
        },
      },
      async (request) => ({
        items: await listAudit(db, { ...request.query, merchantId: request.query.merchantId ?? null }),
      }),
    );
  };
}
