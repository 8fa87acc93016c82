import { findFreePort } from '../../src/db/embedded.js';
import {
  pgbouncerKeepsPreparedStatements,
  pgbouncerMissing,
  startPgBouncer,
} from '../../test/helpers/pgbouncer.js';
import { type ApiProcess, startApi } from './api-process.js';
import { type Operation, runClosedLoop } from './drivers.js';
import { HttpClient, keepAliveAgent } from './http.js';
import { round } from './report.js';
import { PhaseRecorder } from './stats.js';
import type { Workload } from './workload.js';

// The replicas phase: commits per second with one and with two API processes, both times through
// PgBouncer in transaction pooling mode (DATABASE_URL through it, DATABASE_DIRECT_URL straight to
// PostgreSQL for LISTEN), as docs/scaling.md sets a scaled deployment up. The same POS clients in a
// closed loop, spread evenly over the APIs; PgBouncer's server pool is the API pool size, so both
// runs have the same number of database connections and only the API side doubles.

const PURCHASES = '/api/v1/integration/purchases';

/** One run of the phase: `apis` API processes. */
export interface ReplicaRun {
  apis: number;
  commits: number;
  commitsPerSec: number;
  failed: number;
  failures: Record<string, number>;
  latencyMs: { p50: number; p95: number; p99: number; max: number };
}

/** What the phase measured, or why it was skipped. */
export type ReplicasResult =
  | { skipped: string }
  | {
      pgbouncer: { poolMode: 'transaction'; defaultPoolSize: number };
      concurrency: number;
      seconds: number;
      runs: ReplicaRun[];
      /** commits/s with two APIs over commits/s with one. */
      speedup: number;
    };

/** Why the phase does not run (BENCH_REPLICAS=0, no pgbouncer), or null when it does. */
export function replicasSkipReason(): string | null {
  if (process.env.BENCH_REPLICAS?.trim() === '0') return 'BENCH_REPLICAS=0';
  return pgbouncerMissing();
}

/**
 * Runs the phase: starts PgBouncer in front of `serverUrl`, one API on `databaseUrl` through it,
 * measures, adds a second API, measures again. Everything it starts is stopped before it returns.
 */
export async function runReplicasPhase(options: {
  repoRoot: string;
  serverUrl: string;
  databaseUrl: string;
  apiKey: string;
  workload: Workload;
  /** Environment of the API processes on top of the phase's own (e.g. APP_ENCRYPTION_KEY). */
  env: Record<string, string>;
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  poolMax: number;
  shouldStop: () => boolean;
  say: (message: string) => void;
}): Promise<ReplicasResult> {
  const skipped = replicasSkipReason();
  if (skipped) {
    options.say(`· replicas: skipped (${skipped})`);
    return { skipped };
  }
  const bouncer = await startPgBouncer({
    serverUrl: options.serverUrl,
    defaultPoolSize: options.poolMax,
  });
  const apis: ApiProcess[] = [];
  const agent = keepAliveAgent(options.concurrency);
  try {
    const runs: ReplicaRun[] = [];
    for (const count of [1, 2]) {
      while (apis.length < count) {
        const port = await findFreePort();
        options.say(`· replicas: starting API ${apis.length + 1} through PgBouncer on 127.0.0.1:${port} ...`);
        apis.push(
          await startApi({
            cwd: options.repoRoot,
            port,
            env: {
              HOST: '127.0.0.1',
              LOG_LEVEL: 'warn',
              SEED_DEMO: '0',
              NODE_ENV: 'development',
              WORKERS_ENABLED: '0',
              ...options.env,
              PORT: String(port),
              DATABASE_URL: bouncer.urlFor(options.databaseUrl),
              DATABASE_DIRECT_URL: options.databaseUrl,
              DATABASE_POOL_MAX: String(options.poolMax),
              // Named prepared statements need PgBouncer 1.21+ (max_prepared_statements).
              ...(pgbouncerKeepsPreparedStatements() ? {} : { DATABASE_PREPARED_STATEMENTS: '0' }),
            },
          }),
        );
      }
      const clients = apis.map((api) => new HttpClient(api.port, agent));
      // Operations alternate between the APIs (seq counts up over all clients of the loop).
      const op =
        (phase: string): Operation =>
        (seq) => {
          const { body, key } = options.workload.commit(phase, seq);
          const client = clients[seq % clients.length] ?? clients[0];
          if (!client) throw new Error('no API client');
          return client.post(PURCHASES, body, { 'x-api-key': options.apiKey, 'idempotency-key': key });
        };
      const loop = { concurrency: options.concurrency, shouldStop: options.shouldStop };
      if (options.warmupSeconds > 0) {
        await runClosedLoop(
          { ...loop, durationMs: options.warmupSeconds * 1000 },
          op(`rw${count}`),
          new PhaseRecorder(),
        );
      }
      options.say(`· replicas: commits over ${count} API process(es), ${options.seconds} s ...`);
      const recorder = new PhaseRecorder();
      const { elapsedMs } = await runClosedLoop(
        { ...loop, durationMs: options.seconds * 1000 },
        op(`r${count}`),
        recorder,
      );
      const p = recorder.percentiles();
      runs.push({
        apis: count,
        commits: recorder.ok,
        commitsPerSec: round(recorder.ok / (elapsedMs / 1000), 1),
        failed: recorder.non2xx + recorder.errors,
        failures: Object.fromEntries(recorder.failures),
        latencyMs: { p50: round(p.p50, 1), p95: round(p.p95, 1), p99: round(p.p99, 1), max: round(p.max, 1) },
      });
    }
    const one = runs[0]?.commitsPerSec ?? 0;
    const two = runs[1]?.commitsPerSec ?? 0;
    return {
      pgbouncer: { poolMode: 'transaction', defaultPoolSize: options.poolMax },
      concurrency: options.concurrency,
      seconds: options.seconds,
      runs,
      speedup: one > 0 ? round(two / one, 2) : 0,
    };
  } finally {
    await Promise.all(apis.map((api) => api.stop()));
    agent.destroy();
    await bouncer.stop();
  }
}

/** The phase's lines for the bench's summary. */
export function replicasLines(result: ReplicasResult): string[] {
  if ('skipped' in result) return [`replicas  skipped: ${result.skipped}`];
  const lines = [
    `replicas  through PgBouncer (transaction mode, ${result.pgbouncer.defaultPoolSize} server connections), ` +
      `${result.concurrency} POS clients spread over the APIs, ${result.seconds} s each`,
  ];
  for (const run of result.runs) {
    const failed = run.failed > 0 ? `, ${run.failed} failed (${JSON.stringify(run.failures)})` : '';
    lines.push(
      `          ${run.apis} API: ${run.commitsPerSec.toFixed(0)} commits/s, p50 ${run.latencyMs.p50.toFixed(1)} ms, ` +
        `p99 ${run.latencyMs.p99.toFixed(1)} ms${failed}`,
    );
  }
  lines.push(`          2 APIs / 1 API = ${result.speedup.toFixed(2)}x`);
  return lines;
}
