import { sql } from 'kysely';
import type { Database, Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { wakeWorkers } from '../../jobs/outbox.notify.js';
import { enqueueEvent } from '../../jobs/outbox.queue.js';
import type { SecretBox } from '../../lib/crypto.js';
import type { Actor } from '../audit/audit.service.js';
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  rotateWebhookSecret,
  updateWebhookEndpoint,
  type WebhookEndpointView,
} from '../webhooks/webhooks.service.js';
import { runAudited } from './portal.audit.js';

// A merchant's own webhook endpoints in the portal: the webhooks module's operations, audited
// (secrets never in the log: only their first characters, as the endpoint view shows them), plus
// the delivery log with every attempt, a test event and the replay of dead deliveries.

type Audit = { actor: Actor; merchantId: string };

function notFound(): AppError {
  return new AppError('not_found', 'Webhook endpoint not found');
}

async function findEndpoint(db: Executor, merchantId: string, endpointId: string, lock = false) {
  const query = db
    .selectFrom('webhook_endpoints')
    .select([
      'id',
      'url',
      'description',
      'event_types as eventTypes',
      'enabled',
      'disabled_reason as disabledReason',
      'secret_prefix as secretPrefix',
    ])
    .where('id', '=', endpointId)
    .where('merchant_id', '=', merchantId);
  const row = await (lock ? query.forUpdate() : query).executeTakeFirst();
  if (!row) throw notFound();
  return row;
}

/** Adds an endpoint; the secret is in the answer only. */
export function addWebhookEndpoint(
  db: Executor,
  options: Audit & {
    url: string;
    eventTypes?: string[];
    description?: string;
    allowPrivateNetworks: boolean;
    box: SecretBox;
  },
): Promise<{ id: string; secret: string }> {
  const { actor, ...rest } = options;
  return runAudited(
    db,
    { actor, merchantId: options.merchantId, action: 'webhook.create', entityType: 'webhook_endpoint' },
    async (trx) => {
      const created = await createWebhookEndpoint(trx, rest);
      const after = await findEndpoint(trx, options.merchantId, created.id);
      return { result: created, entityId: created.id, after };
    },
  );
}

/** Changes url, event types, description or enabled. */
export function changeWebhookEndpoint(
  db: Executor,
  options: Audit & {
    endpointId: string;
    url?: string;
    eventTypes?: string[];
    enabled?: boolean;
    description?: string;
    allowPrivateNetworks: boolean;
  },
): Promise<WebhookEndpointView> {
  const { actor, ...rest } = options;
  return runAudited(
    db,
    { actor, merchantId: options.merchantId, action: 'webhook.update', entityType: 'webhook_endpoint' },
    async (trx) => {
      const before = await findEndpoint(trx, options.merchantId, options.endpointId, true);
      const view = await updateWebhookEndpoint(trx, rest);
      const after = await findEndpoint(trx, options.merchantId, options.endpointId);
      return { result: view, entityId: options.endpointId, before, after };
    },
  );
}

/** Deletes an endpoint (its pending deliveries go with it). */
export function removeWebhookEndpoint(db: Executor, options: Audit & { endpointId: string }): Promise<void> {
  return runAudited(
    db,
    {
      actor: options.actor,
      merchantId: options.merchantId,
      action: 'webhook.delete',
      entityType: 'webhook_endpoint',
    },
    async (trx) => {
      const before = await findEndpoint(trx, options.merchantId, options.endpointId, true);
      await deleteWebhookEndpoint(trx, options);
      return { result: undefined, entityId: options.endpointId, before };
    },
  );
}

/** New signing secret (the old one keeps verifying for 24 h); the log keeps only the prefixes. */
export function rotateEndpointSecret(
  db: Executor,
  options: Audit & { endpointId: string; overlapSeconds?: number; box: SecretBox },
): Promise<{ secret: string }> {
  return runAudited(
    db,
    {
      actor: options.actor,
      merchantId: options.merchantId,
      action: 'webhook.rotate_secret',
      entityType: 'webhook_endpoint',
    },
    async (trx) => {
      const before = await findEndpoint(trx, options.merchantId, options.endpointId, true);
      const rotated = await rotateWebhookSecret(trx, options);
      return {
        result: rotated,
        entityId: options.endpointId,
        before: { secretPrefix: before.secretPrefix },
        after: { secretPrefix: rotated.secret.slice(0, 10) },
      };
    },
  );
}

/** Queues a `webhook.test` event for one endpoint; returns its outbox id. */
export async function sendTestEvent(db: Database, options: Audit & { endpointId: string }): Promise<number> {
  const eventId = await runAudited(
    db,
    {
      actor: options.actor,
      merchantId: options.merchantId,
      action: 'webhook.test',
      entityType: 'webhook_endpoint',
    },
    async (trx) => {
      await findEndpoint(trx, options.merchantId, options.endpointId);
      const id = await enqueueEvent(trx, {
        merchantId: options.merchantId,
        type: 'webhook.test',
        payload: { message: 'Test event from the loyalty platform', occurredAt: new Date().toISOString() },
        target: 'webhook',
        endpointId: options.endpointId,
      });
      return { result: id, entityId: options.endpointId, after: { eventId: id } };
    },
  );
  // enqueueEvent wakes the workers only outside a transaction; the event is committed now.
  await wakeWorkers(db);
  return eventId;
}

/** The latest deliveries to an endpoint, newest first, each with every attempt. */
export async function listDeliveries(
  db: Executor,
  options: { merchantId: string; endpointId: string; limit: number },
) {
  await findEndpoint(db, options.merchantId, options.endpointId);
  const events = await db
    .selectFrom('outbox_events')
    .select([
      'id as eventId',
      'type',
      'status',
      'attempts',
      'last_error as lastError',
      'created_at as createdAt',
      'delivered_at as deliveredAt',
      'dead_at as deadAt',
      'next_attempt_at as nextAttemptAt',
    ])
    .where('merchant_id', '=', options.merchantId)
    .where('endpoint_id', '=', options.endpointId)
    .orderBy('id', 'desc')
    .limit(options.limit)
    .execute();
  const ids = events.map((e) => e.eventId);
  const attempts =
    ids.length === 0
      ? []
      : await db
          .selectFrom('outbox_attempts')
          .select([
            'event_id as eventId',
            'attempt',
            'started_at as startedAt',
            'duration_ms as durationMs',
            'status_code as statusCode',
            'result',
            'error',
            'response_excerpt as responseExcerpt',
          ])
          .where('event_id', 'in', ids)
          .orderBy('id')
          .execute();
  return events.map((event) => ({
    ...event,
    attemptLog: attempts.filter((a) => a.eventId === event.eventId).map(({ eventId: _, ...a }) => a),
  }));
}

/** Re-queues the endpoint's dead deliveries that went dead at or after `since`; returns how many. */
export async function replayEndpointDeliveries(
  db: Database,
  options: Audit & { endpointId: string; since: Date },
): Promise<number> {
  const replayed = await runAudited(
    db,
    {
      actor: options.actor,
      merchantId: options.merchantId,
      action: 'webhook.replay',
      entityType: 'webhook_endpoint',
    },
    async (trx) => {
      await findEndpoint(trx, options.merchantId, options.endpointId);
      // The same reset as replayDeadEvents (outbox.queue), narrowed to one endpoint.
      const result = await trx
        .updateTable('outbox_events')
        .set({ status: 'pending', attempts: 0, next_attempt_at: sql`now()`, locked_until: null })
        .where('status', '=', 'dead')
        .where('merchant_id', '=', options.merchantId)
        .where('endpoint_id', '=', options.endpointId)
        .where('dead_at', '>=', options.since)
        .executeTakeFirst();
      const count = Number(result.numUpdatedRows);
      return {
        result: count,
        entityId: options.endpointId,
        after: { since: options.since, replayed: count },
      };
    },
  );
  if (replayed > 0) await wakeWorkers(db);
  return replayed;
}
