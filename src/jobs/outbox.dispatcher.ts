import type { Config } from '../config.js';
import type { Database } from '../db/database.js';
import type { NotificationListener } from '../db/listener.js';
import type { Metrics } from '../http/metrics.js';
import { withSpan } from '../lib/tracing.js';
import type { DeliveryResult } from './delivery.js';
import { parseEventPayload } from './outbox.events.js';
import { OUTBOX_CHANNEL } from './outbox.notify.js';
import {
  claimDueEvents,
  extendLeases,
  type FanOutTarget,
  fanOutMany,
  markDelivered,
  markFailed,
  nextDelaySeconds,
  type OutboxEvent,
  reclaimExpiredLeases,
  recordAttempt,
} from './outbox.queue.js';

/** Where events go: the fan-out of domain events and the delivery of each target. */
export interface OutboxRoutes {
  /** The deliveries a domain event (target null) fans out into. */
  targetsFor(event: OutboxEvent, payload: Record<string, unknown>): Promise<FanOutTarget[]>;
  /** Delivers one target event; must not throw (failures are results). */
  deliver(event: OutboxEvent, payload: Record<string, unknown>): Promise<DeliveryResult>;
  /** Called once when an event goes dead (e.g. to disable a 410 endpoint or tell staff). */
  onDead?(event: OutboxEvent, result: DeliveryResult): Promise<void>;
}

/** Logger subset the dispatcher uses. */
export interface Log {
  debug?(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * Delivers outbox events: claims due events (committed before any network call), delivers them
 * with bounded concurrency, records one attempt row per try, retries on the configured schedule
 * with jitter (honouring Retry-After) and marks an event dead when the schedule is used up.
 * Woken by NOTIFY, polls as a fallback, and takes back claims of crashed workers after the lease.
 */
export class OutboxDispatcher {
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private lastReclaim = 0;
  /** Claims this worker holds (queued in its batch or being delivered): event id -> attempt number (the fencing token). */
  private readonly inFlight = new Map<number, number>();
  private leaseTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly deps: {
      db: Database;
      config: Config;
      routes: OutboxRoutes;
      metrics?: Metrics;
      listener?: NotificationListener;
      log: Log;
    },
  ) {}

  /** Starts the delivery loop. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const { listener } = this.deps;
    if (listener) {
      await listener.listen(OUTBOX_CHANNEL);
      listener.on('notification', (channel: string) => {
        if (channel === OUTBOX_CHANNEL) this.wake?.();
      });
    }
    // Deliveries may take longer than a lease (a 10 s webhook timeout, a Telegram retry_after):
    // the leases of every claim this worker holds are extended so no other worker takes them back meanwhile.
    const everyMs = Math.max(1_000, (this.deps.config.OUTBOX_LEASE_SECONDS * 1000) / 3);
    this.leaseTimer = setInterval(() => void this.extendLeases(), everyMs);
    this.leaseTimer.unref();
    this.loop = this.run();
  }

  private async extendLeases(): Promise<void> {
    if (this.inFlight.size === 0) return;
    try {
      await extendLeases(this.deps.db, {
        claims: [...this.inFlight.entries()].map(([id, attempt]) => ({ id, attempt })),
        leaseSeconds: this.deps.config.OUTBOX_LEASE_SECONDS,
      });
    } catch (err) {
      this.deps.log.warn({ err }, 'outbox: could not extend leases');
    }
  }

  /** Stops claiming and waits for in-flight deliveries to finish. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    this.leaseTimer = null;
    this.wake?.();
    await this.loop;
    this.loop = null;
  }

  private async run(): Promise<void> {
    while (this.running) {
      let claimed = 0;
      try {
        claimed = await this.runOnce();
      } catch (err) {
        this.deps.log.error({ err }, 'outbox round failed');
      }
      if (claimed === 0 && this.running) await this.sleep(this.deps.config.OUTBOX_POLL_INTERVAL_MS);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }

  /** One round: take back expired claims, claim a batch, deliver it. Returns how many were claimed. */
  async runOnce(): Promise<number> {
    const { db, config } = this.deps;
    if (Date.now() - this.lastReclaim > 5_000) {
      this.lastReclaim = Date.now();
      const reclaimed = await reclaimExpiredLeases(db, {
        maxAttempts: config.OUTBOX_RETRY_SCHEDULE.length + 1,
      });
      if (reclaimed > 0) this.deps.log.warn({ reclaimed }, 'outbox: took back claims whose lease expired');
    }
    const events = await claimDueEvents(db, {
      batchSize: config.OUTBOX_BATCH_SIZE,
      leaseSeconds: config.OUTBOX_LEASE_SECONDS,
    });
    // Every claim of the batch is held from now on, not only the OUTBOX_CONCURRENCY in flight: a
    // batch queued behind slow receivers can outlast the lease, and a claim left to expire would be
    // taken back and delivered by another worker as well (a duplicate that also burns an attempt).
    for (const event of events) this.inFlight.set(event.id, event.attempts);
    const domain = events.filter((e) => e.target === null);
    const deliveries = events.filter((e) => e.target !== null);
    try {
      await this.fanOutBatch(domain);
    } finally {
      for (const event of domain) this.inFlight.delete(event.id);
    }
    let next = 0;
    const worker = async () => {
      while (next < deliveries.length) {
        const event = deliveries[next++];
        if (event) await this.process(event);
      }
    };
    try {
      await Promise.all(
        Array.from({ length: Math.min(config.OUTBOX_CONCURRENCY, deliveries.length) }, worker),
      );
    } finally {
      for (const event of deliveries) this.inFlight.delete(event.id);
    }
    return events.length;
  }

  /** Fans a batch of domain events out in one transaction; invalid payloads go dead one by one. */
  private async fanOutBatch(events: OutboxEvent[]): Promise<void> {
    const { db, routes, log } = this.deps;
    const ready: Array<{ event: OutboxEvent; targets: FanOutTarget[] }> = [];
    for (const event of events) {
      const parsed = parseEventPayload(event.type, event.payload);
      try {
        if (!parsed.ok) {
          await this.finish(event, {
            result: 'error',
            durationMs: 0,
            error: parsed.error,
            isPermanent: true,
          });
        } else {
          ready.push({ event, targets: await routes.targetsFor(event, parsed.payload) });
        }
      } catch (err) {
        log.error({ err, eventId: event.id }, 'outbox: fan-out failed');
        const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        await this.finish(event, { result: 'error', durationMs: 0, error }).catch(() => {});
      }
    }
    // Database trouble here leaves the claims; their leases bring the events back.
    await fanOutMany(db, ready).catch((err) => log.error({ err }, 'outbox: fan-out failed'));
  }

  private async process(event: OutboxEvent): Promise<void> {
    const { routes, log } = this.deps;
    try {
      const parsed = parseEventPayload(event.type, event.payload);
      if (!parsed.ok) {
        await this.finish(event, { result: 'error', durationMs: 0, error: parsed.error, isPermanent: true });
        return;
      }
      if (event.target === null) {
        await this.fanOutBatch([event]);
        return;
      }
      const result = await withSpan(
        `outbox deliver ${event.type}`,
        {
          kind: 'consumer',
          parent: event.trace_context,
          attributes: {
            'outbox.event_id': event.id,
            'outbox.target': event.target,
            'outbox.attempt': event.attempts,
          },
        },
        () => routes.deliver(event, parsed.payload),
      );
      // Telegram calls are counted where they are made (telegram.client observes every Bot API call).
      if (event.target === 'webhook') {
        this.deps.metrics?.externalRequests.inc({
          provider: 'merchant_webhook',
          result: result.result,
          status: result.statusCode ? String(result.statusCode) : 'none',
        });
      }
      await this.finish(event, result);
    } catch (err) {
      // A failure of ours (e.g. a secret that no longer decrypts): record it as a failed attempt so
      // the event follows the retry schedule and goes dead visibly instead of looping silently.
      log.error({ err, eventId: event.id }, 'outbox: processing failed');
      const error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      // If even that fails (database down), the lease brings the event back.
      await this.finish(event, { result: 'error', durationMs: 0, error }).catch(() => {});
    } finally {
      this.inFlight.delete(event.id);
    }
  }

  private async finish(event: OutboxEvent, result: DeliveryResult): Promise<void> {
    const { db, config, routes } = this.deps;
    if (result.result === 'ok') {
      // The attempt row and the status change commit together: one flush per delivery.
      await db.transaction().execute(async (trx) => {
        await recordAttempt(trx, { eventId: event.id, attempt: event.attempts, result });
        await markDelivered(trx, { id: event.id, attempt: event.attempts });
      });
      return;
    }
    await recordAttempt(db, { eventId: event.id, attempt: event.attempts, result });
    let delay = result.isPermanent ? null : nextDelaySeconds(config.OUTBOX_RETRY_SCHEDULE, event.attempts);
    if (delay !== null && result.retryAfterSeconds !== undefined) {
      // The wait asked for is honoured up to the schedule's longest step: a receiver answering
      // `Retry-After: 99999999` must not park an event for years (nor overflow the interval).
      const longestStep = Math.max(...config.OUTBOX_RETRY_SCHEDULE);
      delay = Math.max(delay, Math.min(result.retryAfterSeconds, longestStep));
    }
    const error = result.error ?? `${result.result}${result.statusCode ? ` ${result.statusCode}` : ''}`;
    const outcome = await markFailed(db, {
      id: event.id,
      attempt: event.attempts,
      error,
      delaySeconds: delay,
    });
    if (outcome === 'dead') {
      this.deps.log.warn({ eventId: event.id, type: event.type, error }, 'outbox: event is dead');
      await routes
        .onDead?.(event, result)
        .catch((err) => this.deps.log.error({ err }, 'outbox: onDead failed'));
    }
  }
}
