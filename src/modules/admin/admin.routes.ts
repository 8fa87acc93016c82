import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { requireOperator } from '../../http/admin-auth.js';
import { AppError } from '../../http/errors.js';
import { outboxCounts, purgeDeliveredEvents, replayDeadEvents, retryEvent } from '../../jobs/outbox.queue.js';
import { writeAudit } from '../audit/audit.service.js';
import { ErrorResponse } from '../integration/integration.schema.js';
import { operatorActorOf } from '../portal/portal.http.js';
import {
  getOutboxEvent,
  listOutboxEvents,
  listPausedMerchants,
  setMerchantOutboxPaused,
} from './admin.service.js';
import { type SwitchBoard, setSwitch } from './switches.service.js';

const security = [{ operatorToken: [] }];
const tags = ['admin'];
const errors = { 400: ErrorResponse, 401: ErrorResponse, 404: ErrorResponse };

const PauseBody = z.strictObject({
  merchantId: z.uuid().optional().describe('Pause one merchant; absent = all delivery'),
});
const ReplayBody = z
  .strictObject({
    merchantId: z.uuid(),
    since: z.iso.datetime({ offset: true }).describe('Replay events that went dead at or after this time'),
    until: z.iso.datetime({ offset: true }).optional().describe('...and before this time'),
  })
  .refine((b) => !b.until || new Date(b.until) > new Date(b.since), {
    path: ['until'],
    message: 'must be after since',
  });
const EventsQuery = z.strictObject({
  status: z.enum(['pending', 'processing', 'delivered', 'dead']).optional(),
  merchantId: z.uuid().optional(),
  type: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
  before: z.coerce.number().int().min(1).optional(),
});
const EventParams = z.strictObject({ id: z.coerce.number().int().min(1) });
const SwitchesBody = z
  .strictObject({ maintenance: z.boolean().optional(), readOnly: z.boolean().optional() })
  .refine((b) => b.maintenance !== undefined || b.readOnly !== undefined, {
    path: ['maintenance'],
    message: 'give maintenance and/or readOnly',
  });

/** The operators' admin API (Bearer ADMIN_API_TOKEN), mounted at /api/v1/admin. */
export function adminRoutes(deps: {
  db: Database;
  config: Config;
  switches: SwitchBoard;
}): FastifyPluginAsyncZod {
  return async (app) => {
    app.addHook('preHandler', requireOperator(deps.db, deps.config));

    app.get(
      '/outbox',
      { schema: { tags, security, summary: 'Outbox counts by status and pauses' } },
      async () => ({
        counts: await outboxCounts(deps.db),
        paused: {
          global: deps.switches.describe().outboxPaused.enabled,
          merchants: await listPausedMerchants(deps.db),
        },
      }),
    );

    app.get(
      '/outbox/events',
      {
        schema: {
          tags,
          security,
          summary: 'Outbox events by status, merchant and type',
          querystring: EventsQuery,
        },
      },
      async (request) => ({ items: await listOutboxEvents(deps.db, request.query) }),
    );

    app.get(
      '/outbox/events/:id',
      {
        schema: {
          tags,
          security,
          summary: 'One event with every delivery attempt',
          params: EventParams,
        },
      },
      async (request) => getOutboxEvent(deps.db, { id: request.params.id }),
    );

    app.post(
      '/outbox/events/:id/retry',
      {
        schema: {
          tags,
          security,
          summary: 'Retry one event now (with a fresh schedule)',
          params: EventParams,
          response: { 200: z.object({ retried: z.boolean() }), ...errors },
        },
      },
      async (request) => {
        const ok = await retryEvent(deps.db, { id: request.params.id });
        if (!ok) throw new AppError('not_found', 'No dead or waiting event with this id');
        await writeAudit(deps.db, {
          actor: operatorActorOf(request),
          action: 'outbox.retry',
          entityType: 'outbox_event',
          entityId: String(request.params.id),
        });
        return { retried: true };
      },
    );

    app.post(
      '/outbox/replay',
      {
        schema: {
          tags,
          security,
          summary: 'Re-queue the dead events of a merchant in a time range',
          body: ReplayBody,
        },
      },
      async (request) => {
        const replayed = await replayDeadEvents(deps.db, {
          merchantId: request.body.merchantId,
          since: new Date(request.body.since),
          until: request.body.until ? new Date(request.body.until) : undefined,
        });
        await writeAudit(deps.db, {
          actor: operatorActorOf(request),
          action: 'outbox.replay',
          entityType: 'outbox',
          entityId: request.body.merchantId,
          after: { ...request.body, replayed },
        });
        return { replayed };
      },
    );

    app.post(
      '/outbox/pause',
      { schema: { tags, security, summary: 'Pause delivery globally or for one merchant', body: PauseBody } },
      async (request) => {
        if (request.body.merchantId)
          await setMerchantOutboxPaused(deps.db, { merchantId: request.body.merchantId, paused: true });
        else await setSwitch(deps.db, { name: 'outbox_paused', enabled: true, by: 'admin-api' });
        await deps.switches.refresh();
        await writeAudit(deps.db, {
          actor: operatorActorOf(request),
          action: 'outbox.pause',
          entityType: 'outbox',
          entityId: request.body.merchantId ?? null,
          after: { paused: true, merchantId: request.body.merchantId ?? null },
        });
        return { paused: true, merchantId: request.body.merchantId ?? null };
      },
    );

    app.post(
      '/outbox/resume',
      {
        schema: { tags, security, summary: 'Resume delivery globally or for one merchant', body: PauseBody },
      },
      async (request) => {
        if (request.body.merchantId)
          await setMerchantOutboxPaused(deps.db, { merchantId: request.body.merchantId, paused: false });
        else await setSwitch(deps.db, { name: 'outbox_paused', enabled: false, by: 'admin-api' });
        await deps.switches.refresh();
        await writeAudit(deps.db, {
          actor: operatorActorOf(request),
          action: 'outbox.resume',
          entityType: 'outbox',
          entityId: request.body.merchantId ?? null,
          after: { paused: false, merchantId: request.body.merchantId ?? null },
        });
        return { paused: false, merchantId: request.body.merchantId ?? null };
      },
    );

    app.post(
      '/outbox/purge',
      {
        schema: {
          tags,
          security,
          summary: 'Delete delivered events older than a number of days',
          body: z.strictObject({ olderThanDays: z.int().min(1).max(3650) }),
        },
      },
      async (request) => {
        const purged = await purgeDeliveredEvents(deps.db, request.body);
        await writeAudit(deps.db, {
          actor: operatorActorOf(request),
          action: 'outbox.purge',
          entityType: 'outbox',
          after: { ...request.body, purged },
        });
        return { purged };
      },
    );

    app.get(
      '/switches',
      { schema: { tags, security, summary: 'Maintenance and read-only modes' } },
      async () => {
        await deps.switches.refresh();
        return deps.switches.describe();
      },
    );

    app.put(
      '/switches',
      {
        schema: {
          tags,
          security,
          summary: 'Turn maintenance or read-only mode on or off at run time (every replica within seconds)',
          body: SwitchesBody,
        },
      },
      async (request) => {
        const { maintenance, readOnly } = request.body;
        await deps.switches.refresh();
        const before = deps.switches.describe();
        if (maintenance !== undefined)
          await setSwitch(deps.db, { name: 'maintenance', enabled: maintenance, by: 'admin-api' });
        if (readOnly !== undefined)
          await setSwitch(deps.db, { name: 'read_only', enabled: readOnly, by: 'admin-api' });
        await deps.switches.refresh();
        const after = deps.switches.describe();
        await writeAudit(deps.db, {
          actor: operatorActorOf(request),
          action: 'switches.update',
          entityType: 'switches',
          before,
          after,
        });
        return after;
      },
    );
  };
}
