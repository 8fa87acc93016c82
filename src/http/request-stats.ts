import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Database } from '../db/database.js';

type Kind = 'total' | '5xx' | 'slow';

/**
 * Per-minute request figures shared across API replicas: each replica counts in memory and adds
 * its counts to `http_minute_stats` every few seconds (one upsert), so the alert monitor sees the
 * whole fleet. Sampled 5xx responses are stored with their context as incidents.
 */
export class RequestStats {
  private buffer = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: Database,
    private readonly options: { slowThresholdMs: number; sampleRate: number; random?: () => number },
  ) {}

  /**
   * Counts one response; samples 5xx into incidents. A 503 of maintenance or read-only mode
   * (`isBlockedByMode`) is what operators asked for, not a failure: neither a 5xx nor an incident.
   */
  record(entry: {
    status: number;
    ms: number;
    route: string;
    method: string;
    requestId: string;
    error?: string;
    isBlockedByMode?: boolean;
  }) {
    const minute = new Date(Math.floor(Date.now() / 60_000) * 60_000).toISOString();
    this.add(minute, 'total');
    if (entry.ms >= this.options.slowThresholdMs) this.add(minute, 'slow');
    if (entry.status >= 500 && !entry.isBlockedByMode) {
      this.add(minute, '5xx');
      if ((this.options.random ?? Math.random)() < this.options.sampleRate) {
        void this.db
          .insertInto('alert_incidents')
          .values({
            route: entry.route,
            method: entry.method,
            status: entry.status,
            request_id: entry.requestId,
            error: entry.error?.slice(0, 1000) ?? null,
          })
          .execute()
          .catch(() => {});
      }
    }
  }

  private add(minute: string, kind: Kind) {
    const key = `${minute}|${kind}`;
    this.buffer.set(key, (this.buffer.get(key) ?? 0) + 1);
  }

  /** Writes the buffered counts (also called on shutdown). */
  async flush(): Promise<void> {
    if (this.buffer.size === 0) return;
    const entries = [...this.buffer.entries()];
    this.buffer = new Map();
    const values = entries.map(([key, count]) => {
      const [minute, kind] = key.split('|');
      return sql`(${minute}::timestamptz, ${kind}, ${count})`;
    });
    try {
      await sql`
        insert into http_minute_stats (minute, kind, count) values ${sql.join(values)}
        on conflict (minute, kind) do update set count = http_minute_stats.count + excluded.count
      `.execute(this.db);
    } catch {
      // Database down: put the counts back and try again at the next flush.
      for (const [key, count] of entries) this.buffer.set(key, (this.buffer.get(key) ?? 0) + count);
    }
  }

  /** Flushes every `intervalMs`. */
  start(intervalMs = 5_000): void {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  /** Stops and flushes what is left. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush();
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The error behind a 5xx, for sampled incidents. */
    failure: string | null;
  }
}

/** Feeds every response into the shared per-minute stats. */
export function registerRequestStats(app: FastifyInstance, stats: RequestStats): void {
  app.decorateRequest('failure', null);
  app.addHook('onResponse', (request, reply, done) => {
    stats.record({
      status: reply.statusCode,
      ms: reply.elapsedTime,
      route: request.routeOptions.url ?? 'unmatched',
      method: request.method,
      requestId: request.id,
      error: request.failure ?? undefined,
      isBlockedByMode: request.blockedBy != null,
    });
    done();
  });
  app.addHook('onClose', async () => stats.stop());
}
