import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import type { Database } from '../../src/db/database.js';

// What the scratch database's busy backends wait on, sampled from pg_stat_activity every few ms
// during a phase: `CPU` (running, or waiting for a core), `LWLock:WALWrite` / `IO:WALSync` (commit
// flushes), `Lock:object` (the global NOTIFY queue lock, held from pre-commit until after the flush),
// `Lock:transactionid` / `Lock:tuple` (row locks), `Client:ClientRead` (waiting for the application).

/** Share of samples per wait, most frequent first. */
export interface WaitShare {
  wait: string;
  pct: number;
}

export class WaitSampler {
  private readonly counts = new Map<string, number>();
  private running = false;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly db: Database,
    private readonly intervalMs = 25,
  ) {}

  start(): void {
    this.counts.clear();
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        try {
          const result = await sql<{ wait: string }>`
            select coalesce(wait_event_type || ':' || wait_event, 'CPU') as wait
            from pg_stat_activity
            where datname = current_database() and state = 'active' and pid <> pg_backend_pid()
              and backend_type = 'client backend'
          `.execute(this.db);
          for (const row of result.rows) this.counts.set(row.wait, (this.counts.get(row.wait) ?? 0) + 1);
        } catch {
          // sampling is best effort
        }
        await sleep(this.intervalMs);
      }
    })();
  }

  async stop(): Promise<WaitShare[]> {
    this.running = false;
    await this.loop;
    const total = [...this.counts.values()].reduce((a, b) => a + b, 0);
    return [...this.counts]
      .sort((a, b) => b[1] - a[1])
      .map(([wait, count]) => ({ wait, pct: total > 0 ? Math.round((count / total) * 1000) / 10 : 0 }));
  }
}
