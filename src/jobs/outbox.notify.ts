import { sql } from 'kysely';
import type { Database } from '../db/database.js';

/** Channel on which workers wait for new outbox events. */
export const OUTBOX_CHANNEL = 'loyalty_outbox';

/**
 * Wakes the workers after the API committed events, at most once per `intervalMs` per process.
 * NOTIFY is sent on its own, outside the ledger transaction: inside it, it would take a
 * server-wide lock through the commit's flush and serialise every ledger write. A lost wake-up
 * only delays delivery until the workers' next poll.
 */
export class OutboxNotifier {
  private timer: NodeJS.Timeout | null = null;
  private lastSentAt = 0;

  constructor(
    private readonly db: Database,
    private readonly intervalMs = 100,
  ) {}

  /** Asks for a wake-up soon (coalesced). */
  poke(): void {
    if (this.timer) return;
    const wait = Math.max(0, this.lastSentAt + this.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.lastSentAt = Date.now();
      sql`select pg_notify(${OUTBOX_CHANNEL}, '')`.execute(this.db).catch(() => {});
    }, wait);
    this.timer.unref();
  }

  /** Sends a pending wake-up at once (shutdown). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Wakes the workers now (after rare writes: staff events, retries, replays, resumes). */
export async function wakeWorkers(db: Database): Promise<void> {
  await sql`select pg_notify(${OUTBOX_CHANNEL}, '')`.execute(db);
}
