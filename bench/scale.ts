import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
// database.js also installs the pg type parsers the services expect (int8 as numbers).
import type { Database } from '../src/db/database.js';
import '../src/db/database.js';
import type { DB } from '../src/db/types.js';
import {
  type CustomerRef,
  findCustomerState,
  issueCustomerCode,
  listCustomerTransactions,
} from '../src/modules/customers/customers.service.js';
import { commitPurchase, expirePoints } from '../src/modules/ledger/ledger.service.js';
import { DEFAULT_MERCHANT_TIME_ZONE } from '../src/modules/merchants/time-zone.js';
import { refreshDashboardRollups } from '../src/modules/portal/dashboard.rollups.js';
import { getDashboard, getDashboardFromPurchases } from '../src/modules/portal/dashboard.service.js';
import { exportTransactionsCsv } from '../src/modules/portal/transactions.service.js';
import { ProgrammeRules } from '../src/modules/programme/programme.schema.js';
import { measureExport, measureGet, startScaleApi } from './lib/scale-api.js';
import { PhaseRecorder } from './lib/stats.js';

// `npm run bench:scale [-- URL]`: latency of the hot reads and writes against a database filled by
// `npm run bench:data`, one call at a time through the service functions the routes call (what
// the database does at that size, without HTTP), then the portal's dashboard (90 days) and CSV
// export (a month) through HTTP against the API in its own process: p50/p99 of the dashboard, and
// of the streamed export its time to first byte, total time, rows/s and the API's RSS while it
// runs. The expiry job runs over the lots due in the last day (lots/s). Prints its targets, and
// writes EXPLAIN (ANALYZE, BUFFERS) of every read statement to BENCH_SCALE_EXPLAIN (default
// bench-scale-explain.txt). Commits stay in the database; the expiry run is rolled back.
//
//   URL (argument) or BENCH_SCALE_URL or DATABASE_URL   the filled database
//   BENCH_SCALE_ITERATIONS   calls per API operation (default 1000)
//   BENCH_SCALE_DASHBOARD_RUNS  dashboard calls, through the service and through HTTP (default 100),
//                            after one untimed call whose (cold) time is printed
//   BENCH_SCALE_SCAN_RUNS    runs of the dashboard from raw purchases, for comparison (default 1; 0 skips)
//   BENCH_SCALE_EXPLAIN      file the plans are written to (default $TMPDIR/bench-scale-explain.txt)

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const EXPLAIN_FILE =
  process.env.BENCH_SCALE_EXPLAIN?.trim() || path.join(os.tmpdir(), 'bench-scale-explain.txt');

interface Captured {
  sql: string;
  parameters: readonly unknown[];
}

function pick<T>(list: readonly T[]): T {
  const item = list[Math.floor(Math.random() * list.length)];
  if (item === undefined) throw new Error('empty sample');
  return item;
}

async function measure(name: string, runs: number, fn: () => Promise<unknown>): Promise<PhaseRecorder> {
  const recorder = new PhaseRecorder();
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    try {
      await fn();
      recorder.record(performance.now() - started, { status: 200 });
    } catch (error) {
      recorder.record(performance.now() - started, { status: 0, message: String(error) });
    }
  }
  const p = recorder.percentiles();
  console.log(
    `${name.padEnd(34)} ${String(runs).padStart(5)} ${p.p50.toFixed(1).padStart(8)} ${p.p99.toFixed(1).padStart(8)} ${p.max.toFixed(1).padStart(8)}${recorder.errors ? `  errors ${recorder.errors}: ${recorder.errorSamples[0]}` : ''}`,
  );
  return recorder;
}

async function main(): Promise<void> {
  const url = process.argv[2] || process.env.BENCH_SCALE_URL?.trim() || process.env.DATABASE_URL?.trim();
  if (!url) throw new Error('give the database URL as an argument, or set BENCH_SCALE_URL or DATABASE_URL');
  const iterations = Number(process.env.BENCH_SCALE_ITERATIONS ?? 1000);
  const dashboardRuns = Number(process.env.BENCH_SCALE_DASHBOARD_RUNS ?? 100);
  let capture: Captured[] | null = null;
  const pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'bench-scale' });
  const db: Database = new Kysely<DB>({
    dialect: new PostgresDialect({ pool }),
    log: (event) => {
      if (capture && event.level === 'query') {
        capture.push({ sql: event.query.sql, parameters: event.query.parameters });
      }
    },
  });
  try {
    const { rows: merchants } = await sql<{ id: string; name: string; rules: unknown; customers: number }>`
      select m.id, m.name, m.rules, (select count(*) from customers c where c.merchant_id = m.id)::int as customers
      from merchants m order by customers desc limit 1`.execute(db);
    const merchant = merchants[0];
    if (!merchant || merchant.customers === 0)
      throw new Error('no customers: fill the database with bench:data first');
    const rules = ProgrammeRules.parse(merchant.rules);
    const merchantId = merchant.id;
    const counts = await sql<{ customers: number; entries: number; purchases: number }>`
      select (select count(*) from customers)::int as customers,
             (select reltuples::bigint from pg_class where relname = 'ledger_entries') as entries,
             (select reltuples::bigint from pg_class where relname = 'purchases') as purchases`.execute(db);
    console.log(
      `bench:scale on ${merchant.name} (${merchant.customers} of ${counts.rows[0]?.customers} customers; ` +
        `~${counts.rows[0]?.entries} ledger entries, ~${counts.rows[0]?.purchases} purchases)`,
    );
    const { rows: sample } = await sql<{ id: string; phone: string }>`
      select id, phone from customers where merchant_id = ${merchantId} order by random() limit 2000`.execute(
      db,
    );
    const outlet = await db
      .selectFrom('outlets')
      .select('id')
      .where('merchant_id', '=', merchantId)
      .executeTakeFirst();

    // Fresh codes through the real path, as the Mini App issues them.
    const codes: string[] = [];
    for (const customer of sample.slice(0, 500)) {
      codes.push(
        (await issueCustomerCode(db, { merchantId, customerId: customer.id, ttlSeconds: 3600 })).code,
      );
    }
    const rollupStarted = performance.now();
    const rollups = await refreshDashboardRollups(db);
    console.log(
      `dashboard:rollups job: ${rollups.days} merchant days recomputed in ${(performance.now() - rollupStarted).toFixed(0)} ms`,
    );

    // The lots the expiry job finds due: those the generator left from the last day.
    const { rows: due } = await sql<{ lots: number }>`
      select count(*)::int as lots from point_lots
      where state = 'active' and remaining > 0 and expires_at <= now()`.execute(db);
    const dueLots = due[0]?.lots ?? 0;
    const tz = DEFAULT_MERCHANT_TIME_ZONE;
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: tz }).format(new Date());
    const daysAgo = (n: number) => new Date(Date.parse(today) - n * 86_400_000).toISOString().slice(0, 10);
    const month = { from: daysAgo(60), to: daysAgo(31) };
    const resolve = (ref: CustomerRef) =>
      findCustomerState(db, {
        merchantId,
        ref,
        tierWindowDays: rules.tiers.length ? rules.tierWindowDays : null,
      });
    const ops: Array<{
      name: string;
      runs: number;
      target?: number;
      explain?: boolean;
      /** One untimed call first (its time is printed): the cold pages, apart from the percentiles. */
      warmup?: boolean;
      fn: () => Promise<unknown>;
    }> = [
      {
        name: 'resolve by phone',
        runs: iterations,
        target: 50,
        explain: true,
        fn: () => resolve({ phone: pick(sample).phone }),
      },
      {
        name: 'resolve by code',
        runs: iterations,
        target: 50,
        explain: true,
        fn: () => resolve({ code: pick(codes) }),
      },
      {
        name: 'commit purchase',
        runs: Math.min(iterations, 500),
        target: 50,
        fn: async () => {
          const customer = await findCustomerState(db, {
            merchantId,
            ref: { customerId: pick(sample).id },
            tierWindowDays: null,
          });
          if (!customer) throw new Error('customer not found');
          return commitPurchase(db, {
            merchantId,
            rules,
            customer,
            orderId: `scale-bench-${randomUUID()}`,
            receipt: { total: 100_000 },
            redeemPoints: customer.available > 10 ? 10 : 0,
            context: { outletId: outlet?.id },
            idempotencyKey: randomUUID(),
            requestHash: 'bench',
          });
        },
      },
      {
        name: 'customer history page (50)',
        runs: iterations,
        target: 50,
        explain: true,
        fn: () => listCustomerTransactions(db, { merchantId, customerId: pick(sample).id, limit: 50 }),
      },
      {
        name: 'dashboard 90 days (rollups)',
        runs: dashboardRuns,
        target: 300,
        explain: true,
        warmup: true,
        fn: () => getDashboard(db, { merchantId, timeZone: tz, from: daysAgo(89), to: today }),
      },
      {
        name: 'dashboard 90 days (scan, before)',
        runs: Number(process.env.BENCH_SCALE_SCAN_RUNS ?? 1),
        fn: () => getDashboardFromPurchases(db, { merchantId, timeZone: tz, from: daysAgo(89), to: today }),
      },
      {
        name: 'transactions CSV, one month',
        runs: 1,
        explain: true,
        fn: async () => {
          let bytes = 0;
          for await (const chunk of exportTransactionsCsv(db, { merchantId, timeZone: tz, ...month })) {
            bytes += String(chunk).length;
          }
          return bytes;
        },
      },
      {
        name: "expiry job over a day's lots",
        runs: 3,
        fn: async () => {
          // Rolled back, so every run finds the same lots due.
          await db
            .transaction()
            .execute(async (trx) => {
              const started = performance.now();
              const result = await expirePoints(trx);
              const ms = performance.now() - started;
              console.log(
                `  points:expire: ${dueLots} lots of ${result.customers} customers (${result.points} points) ` +
                  `in ${(ms / 1000).toFixed(2)} s: ${Math.round(dueLots / (ms / 1000))} lots/s`,
              );
              throw new RolledBack();
            })
            .catch((error: unknown) => {
              if (!(error instanceof RolledBack)) throw error;
            });
        },
      },
    ];

    console.log(
      `${'operation'.padEnd(34)} ${'runs'.padStart(5)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)}`,
    );
    const results: Array<{ name: string; p50: number; p99: number; errors: number; target?: number }> = [];
    for (const op of ops.filter((o) => o.runs > 0)) {
      if (op.warmup) {
        const started = performance.now();
        await op.fn();
        console.log(
          `${op.name}: first call (cold pages, not counted) ${(performance.now() - started).toFixed(1)} ms`,
        );
      }
      const recorder = await measure(op.name, op.runs, op.fn);
      const p = recorder.percentiles();
      results.push({ name: op.name, p50: p.p50, p99: p.p99, errors: recorder.errors, target: op.target });
    }
    // The portal calls through HTTP, as the merchant's browser makes them.
    console.log('\nthrough the API (its own process), one call at a time');
    const scaleApi = await startScaleApi(db, { cwd: repoRoot, url, merchantId });
    try {
      const query = (range: { from: string; to: string }) =>
        `from=${range.from}&to=${range.to}&tz=${encodeURIComponent(tz)}`;
      const dashboardPath = `/api/v1/portal/dashboard?${query({ from: daysAgo(89), to: today })}`;
      await measureGet(scaleApi, dashboardPath, 3); // warm-up: connections, first plans
      const dashboard = await measureGet(scaleApi, dashboardPath, dashboardRuns);
      const d = dashboard.percentiles();
      const name = 'GET /portal/dashboard, 90 days';
      console.log(
        `${name.padEnd(34)} ${String(dashboardRuns).padStart(5)} ${d.p50.toFixed(1).padStart(8)} ${d.p99.toFixed(1).padStart(8)} ${d.max.toFixed(1).padStart(8)}${dashboard.ok === dashboardRuns ? '' : `  failed ${dashboardRuns - dashboard.ok}: ${[...dashboard.failures.keys()].join(', ')}`}`,
      );
      results.push({
        name,
        p50: d.p50,
        p99: d.p99,
        errors: dashboardRuns - dashboard.ok,
        target: 300,
      });
      const csvPath = `/api/v1/portal/transactions.csv?${query(month)}`;
      for (let i = 0; i < 3; i++) {
        const e = await measureExport(scaleApi, csvPath);
        console.log(
          `GET /portal/transactions.csv, ${month.from}..${month.to}: ${e.status}, ${e.rows} rows, ` +
            `${(e.bytes / 1048576).toFixed(1)} MiB; first byte ${e.firstByteMs.toFixed(0)} ms, ` +
            `total ${(e.totalMs / 1000).toFixed(2)} s, ${Math.round(e.rowsPerSecond)} rows/s; ` +
            `API RSS ${e.rss.startMiB} -> ${e.rss.endMiB} MiB (max ${e.rss.maxMiB})`,
        );
      }
    } finally {
      await scaleApi.stop();
    }

    console.log('\ntargets');
    for (const r of results.filter((x) => x.target !== undefined)) {
      console.log(
        `${r.name.padEnd(34)} p99 ${r.p99.toFixed(1)} ms <= ${r.target} ms: ${r.errors === 0 && r.p99 <= (r.target ?? 0) ? 'ok' : 'MISSED'}`,
      );
    }

    // EXPLAIN (ANALYZE, BUFFERS) of every read statement each operation runs.
    let report = '';
    for (const op of ops.filter((o) => o.explain)) {
      capture = [];
      await op.fn();
      const statements = capture;
      capture = null;
      // The first few statements (a CSV export runs one per page, all alike).
      for (const statement of statements.slice(0, 6)) {
        if (!/^\s*(select|with)\b/i.test(statement.sql)) continue;
        const { rows } = await pool.query<{ 'QUERY PLAN': string }>(
          `explain (analyze, buffers) ${statement.sql}`,
          statement.parameters as unknown[],
        );
        report += `== ${op.name}\n${statement.sql.replace(/\s+/g, ' ').trim()}\n`;
        report += `${rows.map((r) => r['QUERY PLAN']).join('\n')}\n\n`;
      }
    }
    writeFileSync(EXPLAIN_FILE, report);
    console.log(`\nplans written to ${EXPLAIN_FILE}`);
  } finally {
    await db.destroy();
  }
}

class RolledBack extends Error {}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
