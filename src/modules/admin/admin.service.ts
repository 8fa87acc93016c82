import { sql } from 'kysely';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { wakeWorkers } from '../../jobs/outbox.notify.js';

/** Pauses or resumes outbox delivery of one merchant (paused events wait, are not attempted). */
export async function setMerchantOutboxPaused(
  db: Executor,
  options: { merchantId: string; paused: boolean },
): Promise<void> {
  const result = await db
    .updateTable('merchants')
    .set({ outbox_paused_at: options.paused ? sql`coalesce(outbox_paused_at, now())` : null })
    .where('id', '=', options.merchantId)
    .executeTakeFirst();
  if (result.numUpdatedRows === 0n) throw new AppError('merchant_not_found', 'Merchant not found');
  // Resuming should not wait for the next poll.
  if (!options.paused) await wakeWorkers(db);
}

/** Merchants whose delivery is paused. */
export async function listPausedMerchants(db: Executor) {
  return db
    .selectFrom('merchants')
    .select(['id', 'name', 'outbox_paused_at as pausedAt'])
    .where('outbox_paused_at', 'is not', null)
    .orderBy('name')
    .execute();
}

/** Outbox events by status and merchant, newest first, paged by id. */
export async function listOutboxEvents(
  db: Executor,
  options: { status?: string; merchantId?: string; type?: string; limit: number; before?: number },
) {
  let query = db
    .selectFrom('outbox_events')
    .select([
      'id',
      'merchant_id as merchantId',
      'type',
      'target',
      'endpoint_id as endpointId',
      'status',
      'attempts',
      'next_attempt_at as nextAttemptAt',
      'last_error as lastError',
      'created_at as createdAt',
      'delivered_at as deliveredAt',
      'dead_at as deadAt',
      'parent_id as parentId',
    ])
    .orderBy('id', 'desc')
    .limit(options.limit);
  if (options.status) query = query.where('status', '=', options.status);
  if (options.merchantId) query = query.where('merchant_id', '=', options.merchantId);
  if (options.type) query = query.where('type', '=', options.type);
  if (options.before !== undefined) query = query.where('id', '<', options.before);
  return query.execute();
}

/** One event with its payload and every attempt. */
export async function getOutboxEvent(db: Executor, options: { id: number; merchantId?: string }) {
  let query = db.selectFrom('outbox_events').selectAll().where('id', '=', options.id);
  if (options.merchantId) query = query.where('merchant_id', '=', options.merchantId);
  const event = await query.executeTakeFirst();
  if (!event) throw new AppError('not_found', 'Outbox event not found');
  const attempts = await db
    .selectFrom('outbox_attempts')
    .select([
      'attempt',
      'started_at as startedAt',
      'duration_ms as durationMs',
      'status_code as statusCode',
      'result',
      'error',
      'response_excerpt as responseExcerpt',
    ])
    .where('event_id', '=', event.id)
    .orderBy('id')
    .execute();
  return {
    id: event.id,
    merchantId: event.merchant_id,
    type: event.type,
    version: event.version,
    target: event.target,
    endpointId: event.endpoint_id,
    status: event.status,
    attempts: event.attempts,
    nextAttemptAt: event.next_attempt_at,
    lastError: event.last_error,
    payload: event.payload,
    createdAt: event.created_at,
    deliveredAt: event.delivered_at,
    deadAt: event.dead_at,
    parentId: event.parent_id,
    attemptLog: attempts,
  };
}
