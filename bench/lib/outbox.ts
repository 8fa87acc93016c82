import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import type { Database } from '../../src/db/database.js';
import { outboxCounts } from '../../src/jobs/outbox.queue.js';
import { type ChildHandle, spawnNodeScript } from './api-process.js';
import { round } from './report.js';
import type { PhaseRecorder } from './stats.js';

// The outbox phase: one worker process drains the backlog of `purchase.committed` events the commit
// phases left (the API runs without workers) into a webhook receiver on loopback that answers 204 at
// once, so the figure is the worker's fan-out + delivery rate, not a receiver's.

/** One request the receiver answered. */
export interface ReceivedWebhook {
  webhookId: string | null;
  /** performance.now() when the body had arrived. */
  receivedAt: number;
  /** Age of the event at delivery: now minus the body's `timestamp` (when it was committed). */
  ageMs: number | null;
  /** The same webhook-id was received before. */
  isDuplicate: boolean;
}

/** A webhook receiver on 127.0.0.1 that answers 204 as soon as a body has arrived and counts. */
export class FastReceiver {
  requests = 0;
  duplicates = 0;
  withoutId = 0;
  firstAt: number | null = null;
  lastAt: number | null = null;
  /** The first few duplicated webhook-ids. */
  readonly duplicateSamples: string[] = [];
  onRequest: ((webhook: ReceivedWebhook) => void) | null = null;
  private readonly ids = new Set<string>();

  private constructor(
    private readonly server: http.Server,
    readonly port: number,
  ) {}

  /** Distinct webhook-ids received. */
  get distinct(): number {
    return this.ids.size;
  }

  static async start(): Promise<FastReceiver> {
    let receiver: FastReceiver | null = null;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        res.writeHead(204).end();
        receiver?.count(req.headers['webhook-id'], Buffer.concat(chunks).toString('utf8'));
      });
    });
    // Longer than the worker's keep-alive, so its connections are not closed under it between rounds.
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('the receiver has no TCP port');
    receiver = new FastReceiver(server, address.port);
    return receiver;
  }

  private count(header: string | string[] | undefined, body: string): void {
    const receivedAt = performance.now();
    const webhookId = (Array.isArray(header) ? header[0] : header) ?? null;
    this.requests += 1;
    this.firstAt ??= receivedAt;
    this.lastAt = receivedAt;
    let isDuplicate = false;
    if (webhookId === null) this.withoutId += 1;
    else if (this.ids.has(webhookId)) {
      isDuplicate = true;
      this.duplicates += 1;
      if (this.duplicateSamples.length < 5) this.duplicateSamples.push(webhookId);
    } else this.ids.add(webhookId);
    this.onRequest?.({ webhookId, receivedAt, ageMs: ageOf(body), isDuplicate });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}

function ageOf(body: string): number | null {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed !== 'object' || parsed === null || !('timestamp' in parsed)) return null;
    const at = typeof parsed.timestamp === 'string' ? Date.parse(parsed.timestamp) : Number.NaN;
    return Number.isNaN(at) ? null : Date.now() - at;
  } catch {
    return null;
  }
}

/** Starts one worker process (`node --import tsx src/worker.ts`); it has no readiness probe. */
export function startWorker(options: {
  cwd: string;
  env: Record<string, string>;
  onLine?: (line: string) => void;
}): ChildHandle {
  // SIGTERM lets it finish the deliveries in flight (each bounded by the 10 s delivery deadline).
  return spawnNodeScript({ ...options, script: 'src/worker.ts', graceMs: 15_000 });
}

/** Pending events of the backlog: parents of the merchant (target null) and all pending rows. */
export async function outboxBacklog(
  db: Database,
  merchantId: string,
): Promise<{ parents: number; pending: number }> {
  const { rows } = await sql<{ parents: number; pending: number }>`
    select count(*) filter (where target is null and merchant_id = ${merchantId})::int as parents,
           count(*)::int as pending
    from outbox_events where status = 'pending'
  `.execute(db);
  return { parents: rows[0]?.parents ?? 0, pending: rows[0]?.pending ?? 0 };
}

/** Rows claimed or finished so far (the partial indexes answer it without reading the table). */
async function claimedOrDone(db: Database): Promise<number> {
  const { rows } = await sql<{ n: number }>`
    select ((select count(*) from outbox_events where status = 'processing')
          + (select count(*) from outbox_events where status = 'delivered')
          + (select count(*) from outbox_events where status = 'dead'))::int as n
  `.execute(db);
  return rows[0]?.n ?? 0;
}

/** The measured window of a drain, on this process's clock (performance.now()). */
export interface DrainWindow {
  spawnedAt: number;
  /** When the worker's first claim was seen (it polls every 20 ms): the clock starts here. */
  firstClaimAt: number;
  endAt: number;
  elapsedMs: number;
  /** Distinct webhooks received within the window. */
  delivered: number;
  timedOut: boolean;
}

/**
 * Waits for the worker's first claim (its start-up is not measured), then until the receiver has
 * `expected` distinct webhooks or `windowMs` passed. Records the age of every first delivery in the
 * window. `onClockStart` runs when the clock starts (CPU and wait sampling begin there); what it
 * returns is handed back as `started`.
 */
export async function drainOutbox<T>(options: {
  db: Database;
  receiver: FastReceiver;
  worker: ChildHandle;
  spawnedAt: number;
  expected: number;
  windowMs: number;
  startupTimeoutMs: number;
  shouldStop: () => boolean;
  recorder: PhaseRecorder;
  onClockStart: () => Promise<T>;
}): Promise<{ window: DrainWindow; started: T }> {
  const { db, receiver, worker, recorder } = options;
  let isOpen = true;
  receiver.onRequest = (webhook) => {
    if (isOpen && !webhook.isDuplicate) recorder.record(webhook.ageMs ?? 0, { status: 204 });
  };
  const checkWorker = () => {
    const exited = worker.exitReason();
    if (exited !== null) {
      throw new Error(`the worker exited (${exited}):\n${worker.tail().join('\n')}`);
    }
    if (options.shouldStop()) throw new Error('interrupted');
  };

  const baseline = await claimedOrDone(db);
  let firstClaimAt: number | null = null;
  while (firstClaimAt === null) {
    checkWorker();
    if (receiver.requests > 0 || (await claimedOrDone(db)) > baseline) firstClaimAt = performance.now();
    else if (performance.now() - options.spawnedAt > options.startupTimeoutMs) {
      throw new Error(
        `the worker claimed nothing within ${options.startupTimeoutMs} ms:\n${worker.tail().join('\n')}`,
      );
    } else await sleep(20);
  }
  const started = await options.onClockStart();

  const deadline = firstClaimAt + options.windowMs;
  let timedOut = false;
  while (receiver.distinct < options.expected) {
    checkWorker();
    if (performance.now() >= deadline) {
      timedOut = true;
      break;
    }
    await sleep(25);
  }
  isOpen = false;
  const endAt = timedOut ? deadline : (receiver.lastAt ?? performance.now());
  const window: DrainWindow = {
    spawnedAt: options.spawnedAt,
    firstClaimAt,
    endAt,
    elapsedMs: Math.max(1, endAt - firstClaimAt),
    delivered: recorder.ok,
    timedOut,
  };
  return { window, started };
}

/** Waits (up to `ms`) until nothing is pending or processing: the worker marks after the answer. */
export async function waitForSettled(
  db: Database,
  ms: number,
): Promise<Awaited<ReturnType<typeof outboxCounts>>> {
  const deadline = performance.now() + ms;
  for (;;) {
    const counts = await outboxCounts(db);
    if ((counts.pending === 0 && counts.processing === 0) || performance.now() >= deadline) return counts;
    await sleep(100);
  }
}

/** What the database recorded of the drain, on the database's clock. */
export interface OutboxTimeline {
  /** Webhook deliveries (children) the fan-out created for the endpoint, and how many were delivered. */
  children: number;
  childrenDelivered: number;
  /** Parents that have been fanned out into at least one child of the endpoint. */
  parentsFannedOut: number;
  /** First child created to last parent fanned out. */
  fanOutMs: number | null;
  /** First child created to first child delivered: how long delivery waited behind the fan-out. */
  firstDeliveryAfterMs: number | null;
  /** First child delivered to last child delivered. */
  deliveryMs: number | null;
  /** First child created to last child delivered. */
  totalMs: number | null;
  attempts: number;
  failedAttempts: number;
  /** Children with more than one attempt. */
  retried: number;
  /** How long each webhook request took in the worker (outbox_attempts.duration_ms, whole ms). */
  attemptMs: { p50: number | null; p95: number | null; p99: number | null };
}

export async function outboxTimeline(db: Database, endpointId: string): Promise<OutboxTimeline> {
  const { rows } = await sql<{
    children: number;
    children_delivered: number;
    parents: number;
    fan_out_ms: number | null;
    first_delivery_after_ms: number | null;
    delivery_ms: number | null;
    total_ms: number | null;
  }>`
    with c as (
      select id, parent_id, status, created_at, delivered_at from outbox_events where endpoint_id = ${endpointId}
    ), p as (
      select delivered_at from outbox_events where id in (select parent_id from c)
    ), t as (
      select (select min(created_at) from c) as first_created,
             (select max(delivered_at) from p) as last_fanned_out,
             (select min(delivered_at) from c) as first_delivered,
             (select max(delivered_at) from c) as last_delivered
    )
    select (select count(*) from c)::int as children,
           (select count(*) from c where status = 'delivered')::int as children_delivered,
           (select count(*) from p)::int as parents,
           (extract(epoch from last_fanned_out - first_created) * 1000)::float8 as fan_out_ms,
           (extract(epoch from first_delivered - first_created) * 1000)::float8 as first_delivery_after_ms,
           (extract(epoch from last_delivered - first_delivered) * 1000)::float8 as delivery_ms,
           (extract(epoch from last_delivered - first_created) * 1000)::float8 as total_ms
    from t
  `.execute(db);
  const attempts = await sql<{
    attempts: number;
    failed: number;
    retried: number;
    p50: number | null;
    p95: number | null;
    p99: number | null;
  }>`
    select count(*)::int as attempts,
           count(*) filter (where a.result <> 'ok')::int as failed,
           count(distinct a.event_id) filter (where a.attempt > 1)::int as retried,
           percentile_cont(0.5) within group (order by a.duration_ms)::float8 as p50,
           percentile_cont(0.95) within group (order by a.duration_ms)::float8 as p95,
           percentile_cont(0.99) within group (order by a.duration_ms)::float8 as p99
    from outbox_attempts a join outbox_events e on e.id = a.event_id
    where e.endpoint_id = ${endpointId}
  `.execute(db);
  const t = rows[0];
  const a = attempts.rows[0];
  const ms = (value: number | null | undefined) =>
    value === null || value === undefined ? null : round(value, 0);
  return {
    children: t?.children ?? 0,
    childrenDelivered: t?.children_delivered ?? 0,
    parentsFannedOut: t?.parents ?? 0,
    fanOutMs: ms(t?.fan_out_ms),
    firstDeliveryAfterMs: ms(t?.first_delivery_after_ms),
    deliveryMs: ms(t?.delivery_ms),
    totalMs: ms(t?.total_ms),
    attempts: a?.attempts ?? 0,
    failedAttempts: a?.failed ?? 0,
    retried: a?.retried ?? 0,
    attemptMs: { p50: a?.p50 ?? null, p95: a?.p95 ?? null, p99: a?.p99 ?? null },
  };
}
