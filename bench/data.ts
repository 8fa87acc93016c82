import { sql } from 'kysely';
import { createDatabase } from '../src/db/database.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { refreshDashboardRollups } from '../src/modules/portal/dashboard.rollups.js';
import { loadScaleData } from './lib/scale-data.js';

// `npm run bench:data [-- URL]`: fills a database with two years of history for a few merchants
// (default 10^6 customers, 10^7 ledger entries) with COPY, for `npm run bench:scale`. The database
// is migrated first; the rows are added to what it holds. Needs a superuser (foreign keys are not
// checked row by row during the load; the generator writes only rows that satisfy them).
//
//   URL (argument) or BENCH_DATA_URL or DATABASE_URL   the database to fill
//   BENCH_DATA_CUSTOMERS  customers (default 1000000)
//   BENCH_DATA_ENTRIES    ledger entries to aim at (default 10 per customer)
//   BENCH_DATA_DAYS       days of history (default 730)
//   BENCH_DATA_SEED       seed of the generator (default 12)

function intFromEnv(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1)
    throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return value;
}

async function main(): Promise<void> {
  const url = process.argv[2] || process.env.BENCH_DATA_URL?.trim() || process.env.DATABASE_URL?.trim();
  if (!url) throw new Error('give the database URL as an argument, or set BENCH_DATA_URL or DATABASE_URL');
  const customers = intFromEnv('BENCH_DATA_CUSTOMERS', 1_000_000);
  const entries = intFromEnv('BENCH_DATA_ENTRIES', customers * 10);
  const days = intFromEnv('BENCH_DATA_DAYS', 730);
  const { db } = createDatabase({ connectionString: url, max: 2, applicationName: 'bench-data' });
  try {
    await migrateToLatest(db);
    console.log(`bench:data: ${customers} customers, ~${entries} ledger entries over ${days} days`);
    const summary = await loadScaleData(db, {
      connectionString: url,
      customers,
      entries,
      days,
      seed: intFromEnv('BENCH_DATA_SEED', 12),
      onProgress: (done) => console.log(`  ${done} customers...`),
    });
    const total = Object.values(summary.rows).reduce((a, b) => a + b, 0);
    console.log('table            rows');
    for (const [table, rows] of Object.entries(summary.rows)) console.log(`${table.padEnd(16)} ${rows}`);
    console.log(
      `loaded ${total} rows in ${(summary.ms / 1000).toFixed(1)} s: ${Math.round(total / (summary.ms / 1000))} rows/s`,
    );
    const { loadMs, keysMs, analyzeMs } = summary.phases;
    console.log(
      `  copy ${(loadMs / 1000).toFixed(1)} s, indexes and keys ${(keysMs / 1000).toFixed(1)} s, vacuum and analyze ${(analyzeMs / 1000).toFixed(1)} s`,
    );
    for (const m of summary.merchants) console.log(`merchant ${m.id} ${m.name}`);
    const rollupStarted = performance.now();
    const rollups = await refreshDashboardRollups(db);
    await sql`vacuum (analyze) dashboard_daily, dashboard_daily_customers`.execute(db);
    console.log(
      `dashboard rollups built for ${rollups.days} merchant days in ${((performance.now() - rollupStarted) / 1000).toFixed(1)} s`,
    );
  } finally {
    await db.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
