import { sql } from 'kysely';
import { Counter, type Registry } from 'prom-client';
import type { Database } from '../db/database.js';
import { type Metrics, SHARED_COUNTERS } from './metrics.js';

// Some figures operators need come from other processes: external_requests_total is counted where
// the calls are made, mostly in the workers, whose port is not published. Every process adds its
// counts of these counters to `metric_counters` every few seconds; the API's /metrics reads the
// sums at scrape time, so it shows the whole fleet (all replicas and workers, across restarts).

/** Counts of one counter's series: labels (as stored, sorted JSON) -> value. */
type Snapshot = Map<string, number>;

/** JSON of the labels with sorted keys, so one series always has one key. */
function labelKey(labels: Partial<Record<string, string | number>>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))));
}

/**
 * Adds this process's new counts of the shared counters (`metrics.shared`: counters only) to `metric_counters`
 * every `intervalMs`, and on stop. Counts that could not be written (database down) are written
 * with the next flush.
 */
export function startSharedCounters(
  db: Database,
  metrics: Metrics,
  options: { intervalMs?: number; onError?: (error: unknown) => void } = {},
): { flush(): Promise<void>; stop(): Promise<void> } {
  const written = new Map<string, Snapshot>();
  let running: Promise<void> = Promise.resolve();
  const flushNow = async () => {
    const rows: Array<{ metric: string; labels: string; delta: number; total: number }> = [];
    for (const metric of await metrics.shared.getMetricsAsJSON()) {
      const before = written.get(metric.name) ?? new Map<string, number>();
      for (const value of metric.values) {
        const labels = labelKey(value.labels);
        const delta = value.value - (before.get(labels) ?? 0);
        if (delta > 0) rows.push({ metric: metric.name, labels, delta, total: value.value });
      }
    }
    if (rows.length === 0) return;
    await sql`
      insert into metric_counters (metric, labels, value)
      values ${sql.join(rows.map((r) => sql`(${r.metric}, ${r.labels}::jsonb, ${r.delta})`))}
      on conflict (metric, labels)
      do update set value = metric_counters.value + excluded.value, updated_at = now()
    `.execute(db);
    for (const row of rows) {
      const snapshot = written.get(row.metric) ?? new Map<string, number>();
      snapshot.set(row.labels, row.total);
      written.set(row.metric, snapshot);
    }
  };
  const flush = () => {
    running = running.then(flushNow).catch((error) => options.onError?.(error));
    return running;
  };
  const timer = setInterval(() => void flush(), options.intervalMs ?? 5_000);
  timer.unref();
  return {
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}

/**
 * The fleet's totals of SHARED_COUNTERS in the API's registry; the returned function refreshes them
 * from `metric_counters` (at scrape time).
 */
export function createFleetCounters(registry: Registry) {
  const counters = new Map<string, Counter>();
  for (const definition of Object.values(SHARED_COUNTERS)) {
    counters.set(
      definition.name,
      new Counter({
        ...definition,
        help: `${definition.help}; every process of the deployment, summed in PostgreSQL`,
        registers: [registry],
      }),
    );
  }
  return async (db: Database): Promise<void> => {
    const rows = await db
      .selectFrom('metric_counters')
      .select(['metric', 'labels', 'value'])
      .where('metric', 'in', [...counters.keys()])
      .execute();
    for (const counter of counters.values()) counter.reset();
    for (const row of rows) {
      counters.get(row.metric)?.inc(row.labels as Record<string, string>, Number(row.value));
    }
  };
}
