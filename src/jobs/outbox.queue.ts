import { sql } from 'kysely';
import type { Executor } from '../db/database.js';
import type { DeliveryResult } from './delivery.js';
import { wakeWorkers } from './outbox.notify.js';

// The outbox queue's SQL, in one place. Claims commit before any network call (status
// 'processing' with a lease); the attempt number is the fencing token of every later update, so a
// worker whose lease expired (and whose event another worker re-claimed) cannot overwrite it.

/** An outbox row as the worker sees it. */
export interface OutboxEvent {
  id: number;
  merchant_id: string | null;
  type: string;
  version: number;
  payload: unknown;
  target: 'webhook' | 'telegram_customer' | 'telegram_staff' | null;
  endpoint_id: string | null;
  chat_id: string | null;
  parent_id: number | null;
  attempts: number;
  created_at: Date;
  /** W3C trace context of the request that wrote the event (tracing on), else null. */
  trace_context: Record<string, string> | null;
}

/** Name of the counter of events that have ever gone dead. */
export const DEAD_COUNTER = 'outbox_dead_total';

/**
 * Claims up to `batchSize` due events with FOR UPDATE SKIP LOCKED (several workers never claim the
 * same row), skipping paused merchants and everything while delivery is paused globally.
 */
export async function claimDueEvents(
  db: Executor,
  options: { batchSize: number; leaseSeconds: number },
): Promise<OutboxEvent[]> {
  const { rows } = await sql<OutboxEvent>`
    with due as (
      select e.id from outbox_events e
      left join merchants m on m.id = e.merchant_id
      where e.status = 'pending' and e.next_attempt_at <= now()
        and m.outbox_paused_at is null
        and not exists (select 1 from runtime_switches s where s.name = 'outbox_paused' and s.enabled)
      order by e.next_attempt_at, e.id
      limit ${options.batchSize}
      for update of e skip locked
    )
    update outbox_events e
    set status = 'processing', attempts = e.attempts + 1,
        locked_until = now() + make_interval(secs => ${options.leaseSeconds})
    from due where e.id = due.id
    returning e.id, e.merchant_id, e.type, e.version, e.payload, e.target, e.endpoint_id, e.chat_id,
              e.parent_id, e.attempts, e.created_at, e.trace_context
  `.execute(db);
  return rows;
}

/**
 * Puts events whose worker's lease ran out (a crash) back in the queue: at-least-once delivery.
 * An event whose claims keep getting lost (it crashes every worker that takes it) goes dead once its
 * attempts are used up, and is counted like any dead event.
 */
export async function reclaimExpiredLeases(db: Executor, options: { maxAttempts: number }): Promise<number> {
  const { rows } = await sql<{ reclaimed: number; dead: number }>`
    with expired as (
      select id, attempts from outbox_events
      where status = 'processing' and locked_until < now()
      for update skip locked
    ), requeued as (
      update outbox_events e set status = 'pending', locked_until = null, next_attempt_at = now()
      from expired x where e.id = x.id and x.attempts < ${options.maxAttempts}
      returning e.id
    ), buried as (
      update outbox_events e
      set status = 'dead', dead_at = now(), locked_until = null,
          last_error = coalesce(e.last_error, 'the worker delivering it stopped (lease expired) too many times')
      from expired x where e.id = x.id and x.attempts >= ${options.maxAttempts}
      returning e.id
    ), counted as (
      insert into counters (name, value) select ${DEAD_COUNTER}, count(*) from buried having count(*) > 0
      on conflict (name) do update set value = counters.value + excluded.value
    )
    select (select count(*) from requeued)::int as reclaimed, (select count(*) from buried)::int as dead
  `.execute(db);
  const row = rows[0];
  return (row?.reclaimed ?? 0) + (row?.dead ?? 0);
}

/** Extends the leases of claims still being delivered (fenced by attempt number). */
export async function extendLeases(
  db: Executor,
  options: { claims: Array<{ id: number; attempt: number }>; leaseSeconds: number },
): Promise<void> {
  if (options.claims.length === 0) return;
  const values = options.claims.map((c) => sql`(${c.id}::bigint, ${c.attempt}::int)`);
  await sql`
    update outbox_events e set locked_until = now() + make_interval(secs => ${options.leaseSeconds})
    from (values ${sql.join(values)}) as c(id, attempt)
    where e.id = c.id and e.attempts = c.attempt and e.status = 'processing'
  `.execute(db);
}

/** Seconds before attempt `attempts + 1`, with ±20% jitter; null when the schedule is used up. */
export function nextDelaySeconds(schedule: number[], attempts: number, random = Math.random): number | null {
  const base = schedule[attempts - 1];
  if (base === undefined) return null;
  return base * (0.8 + 0.4 * random());
}

/** Records one attempt row (status, latency, error, the first bytes of the answer). */
export async function recordAttempt(
  db: Executor,
  options: { eventId: number; attempt: number; result: DeliveryResult },
): Promise<void> {
  const { result } = options;
  await db
    .insertInto('outbox_attempts')
    .values({
      event_id: options.eventId,
      attempt: options.attempt,
      duration_ms: Math.round(result.durationMs),
      status_code: result.statusCode ?? null,
      result: result.result,
      error: result.error ?? null,
      response_excerpt: result.responseExcerpt ?? null,
      started_at: new Date(Date.now() - result.durationMs),
    })
    .execute();
}

/** Marks a claimed event delivered (fenced by its attempt number). */
export async function markDelivered(
  db: Executor,
  options: { id: number; attempt: number },
): Promise<boolean> {
  const result = await db
    .updateTable('outbox_events')
    .set({ status: 'delivered', delivered_at: sql`now()`, locked_until: null, last_error: null })
    .where('id', '=', options.id)
    .where('status', '=', 'processing')
    .where('attempts', '=', options.attempt)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Schedules the next attempt of a claimed event, or marks it dead when retrying cannot help. */
export async function markFailed(
  db: Executor,
  options: { id: number; attempt: number; error: string; delaySeconds: number | null },
): Promise<'retry' | 'dead' | 'lost'> {
  if (options.delaySeconds === null) {
    const { rows } = await sql<{ id: number }>`
      with dead as (
        update outbox_events
        set status = 'dead', dead_at = now(), locked_until = null, last_error = ${options.error}
        where id = ${options.id} and status = 'processing' and attempts = ${options.attempt}
        returning id
      ), counted as (
        insert into counters (name, value) select ${DEAD_COUNTER}, count(*) from dead
        on conflict (name) do update set value = counters.value + excluded.value
      )
      select id from dead
    `.execute(db);
    return rows.length > 0 ? 'dead' : 'lost';
  }
  const result = await db
    .updateTable('outbox_events')
    .set({
      status: 'pending',
      locked_until: null,
      last_error: options.error,
      next_attempt_at: sql`now() + make_interval(secs => ${options.delaySeconds})`,
    })
    .where('id', '=', options.id)
    .where('status', '=', 'processing')
    .where('attempts', '=', options.attempt)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n ? 'retry' : 'lost';
}

/** One delivery a domain event fans out into. */
export interface FanOutTarget {
  target: 'webhook' | 'telegram_customer' | 'telegram_staff';
  type?: string;
  payload?: unknown;
  endpointId?: string;
  chatId?: string;
}

/**
 * Replaces claimed domain events by their deliveries, all in one transaction (one commit for a
 * whole batch): marks the parents delivered (fenced by attempt number) and inserts one child per
 * target. Children are due at their parent's creation time, so they go to the head of the queue in
 * event order instead of waiting behind a backlog of newer events. A crash redoes the whole fan-out.
 */
export async function fanOutMany(
  db: Executor,
  items: Array<{ event: OutboxEvent; targets: FanOutTarget[] }>,
): Promise<number> {
  if (items.length === 0) return 0;
  const run = async (trx: Executor) => {
    const claims = items.map(({ event }) => sql`(${event.id}::bigint, ${event.attempts}::int)`);
    const { rows } = await sql<{ id: number }>`
      update outbox_events e
      set status = 'delivered', delivered_at = now(), locked_until = null, last_error = null
      from (values ${sql.join(claims)}) as c(id, attempt)
      where e.id = c.id and e.attempts = c.attempt and e.status = 'processing'
      returning e.id
    `.execute(trx);
    const owned = new Set(rows.map((r) => Number(r.id)));
    const children = items
      .filter(({ event }) => owned.has(event.id))
      .flatMap(({ event, targets }) =>
        targets.map((t) => ({
          merchant_id: event.merchant_id,
          type: t.type ?? event.type,
          version: event.version,
          payload: JSON.stringify(t.payload ?? event.payload),
          target: t.target,
          endpoint_id: t.endpointId ?? null,
          chat_id: t.chatId ?? null,
          parent_id: event.id,
          next_attempt_at: event.created_at,
          // Deliveries continue the trace of the event they came from.
          trace_context: event.trace_context ? JSON.stringify(event.trace_context) : null,
        })),
      );
    if (children.length > 0) await trx.insertInto('outbox_events').values(children).execute();
    return owned.size;
  };
  return db.isTransaction ? run(db) : db.transaction().execute(run);
}

/** Fans out one claimed domain event (see fanOutMany). */
export async function fanOut(
  db: Executor,
  options: { event: OutboxEvent; targets: FanOutTarget[] },
): Promise<boolean> {
  return (await fanOutMany(db, [options])) === 1;
}

/** Writes an event outside a ledger transaction (staff notifications, test events). */
export async function enqueueEvent(
  db: Executor,
  options: {
    merchantId: string | null;
    type: string;
    payload: unknown;
    target?: FanOutTarget['target'];
    endpointId?: string;
    chatId?: string;
  },
): Promise<number> {
  const row = await db
    .insertInto('outbox_events')
    .values({
      merchant_id: options.merchantId,
      type: options.type,
      payload: JSON.stringify(options.payload),
      target: options.target ?? null,
      endpoint_id: options.endpointId ?? null,
      chat_id: options.chatId ?? null,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  if (!db.isTransaction) await wakeWorkers(db);
  return row.id;
}

/**
 * Age in seconds of the oldest event still waiting for delivery (pending or being delivered; 0 when
 * none): the delivery lag operators alert on (`loyalty_outbox_oldest_pending_seconds`). Counted from
 * the row's creation, so an event waiting out its retry schedule keeps ageing.
 */
export async function oldestPendingSeconds(db: Executor): Promise<number> {
  const { rows } = await sql<{ age: number }>`
    select coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as age
    from outbox_events
    where status in ('pending', 'processing')
  `.execute(db);
  return Math.max(0, rows[0]?.age ?? 0);
}

/** Counts by status (admin panel, /metrics) and the ever-dead counter. */
export async function outboxCounts(db: Executor): Promise<{
  pending: number;
  processing: number;
  delivered: number;
  dead: number;
  deadTotal: number;
}> {
  const { rows } = await sql<{
    pending: number;
    processing: number;
    delivered: number;
    dead: number;
    dead_total: number;
  }>`
    select
      count(*) filter (where status = 'pending')::int as pending,
      count(*) filter (where status = 'processing')::int as processing,
      count(*) filter (where status = 'delivered')::int as delivered,
      count(*) filter (where status = 'dead')::int as dead,
      coalesce((select value from counters where name = ${DEAD_COUNTER}), 0)::bigint as dead_total
    from outbox_events
  `.execute(db);
  const r = rows[0];
  return {
    pending: r?.pending ?? 0,
    processing: r?.processing ?? 0,
    delivered: r?.delivered ?? 0,
    dead: r?.dead ?? 0,
    deadTotal: r?.dead_total ?? 0,
  };
}

/** Sets the next attempt of one event to now with a fresh schedule (dead or waiting events). */
export async function retryEvent(
  db: Executor,
  options: { id: number; merchantId?: string },
): Promise<boolean> {
  let query = db
    .updateTable('outbox_events')
    .set({ status: 'pending', attempts: 0, next_attempt_at: sql`now()`, locked_until: null })
    .where('id', '=', options.id)
    .where('status', 'in', ['dead', 'pending']);
  if (options.merchantId) query = query.where('merchant_id', '=', options.merchantId);
  const result = await query.executeTakeFirst();
  if (result.numUpdatedRows > 0n && !db.isTransaction) await wakeWorkers(db);
  return result.numUpdatedRows > 0n;
}

/** Re-queues every dead event of a merchant that died within [since, until). Returns how many. */
export async function replayDeadEvents(
  db: Executor,
  options: { merchantId: string; since: Date; until?: Date },
): Promise<number> {
  let query = db
    .updateTable('outbox_events')
    .set({ status: 'pending', attempts: 0, next_attempt_at: sql`now()`, locked_until: null })
    .where('status', '=', 'dead')
    .where('merchant_id', '=', options.merchantId)
    .where('dead_at', '>=', options.since);
  if (options.until) query = query.where('dead_at', '<', options.until);
  const result = await query.executeTakeFirst();
  if (result.numUpdatedRows > 0n && !db.isTransaction) await wakeWorkers(db);
  return Number(result.numUpdatedRows);
}

/** Deletes delivered events older than the retention period (attempts go with them). */
export async function purgeDeliveredEvents(
  db: Executor,
  options: { olderThanDays: number },
): Promise<number> {
  const result = await db
    .deleteFrom('outbox_events')
    .where('status', '=', 'delivered')
    .where('delivered_at', '<', sql<Date>`now() - make_interval(days => ${options.olderThanDays})`)
    // A parent stays while any of its deliveries is still pending or dead.
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('outbox_events as c')
            .select('c.id')
            .whereRef('c.parent_id', '=', 'outbox_events.id')
            .where('c.status', '!=', 'delivered'),
        ),
      ),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
