import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import { CompiledQuery } from 'kysely';
import { createDatabase } from '../src/db/database.js';
import { findFreePort } from '../src/db/embedded.js';
import { migrateToLatest } from '../src/db/migrate.js';
import { seedMerchant } from './lib/seed.js';

// `npm run bench:sql`: what one commit costs PostgreSQL, in instructions. Timings of the commit
// function move by half from one minute to the next on a shared machine; callgrind counts
// instructions, which stay within 1% whatever else runs. A PostgreSQL cluster of its own (the
// server binaries of the OS package, e.g. Debian's `postgresql`; BENCH_PG_BIN to choose) is
// migrated and seeded like the bench's (2,000 customers), given a first round of purchases, 64
// regulars with 100 purchases each and ANALYZE, stopped, and `postgres --single` runs
// under `valgrind --tool=callgrind` on files of BENCH_SQL_CALLS lines, one transaction each:
// `loyalty_commit_purchase` with the payload the API sends for a purchase by customer id
// (earn-only, then with a redeem of 5 points, then earning double through a campaign with a points
// budget, then redeeming a hold of 5 points created in the same transaction), and the same lines
// building the payload (and the hold) without the call, whose count is subtracted; then the same
// commits 16 to a transaction through `loyalty_commit_purchases`, as group commit sends them under
// load (earn-only also 4 to a transaction: the batches of one slot at a steady 1,000/s); then a
// resolve's customer read (`loyalty_customer_state` by id, a merchant without tiers). Prints the
// instructions per call, two runs of each.
// docs/performance.md, "CHECK constraints as domains", has the figures and how to read a profile
// (BENCH_SQL_KEEP=1 keeps the callgrind files for callgrind_annotate). BENCH_SQL_ROWS=earn-batch,hold-batch
// counts only those rows (keys below), in the order the rows are listed.

const CALLS = Number(process.env.BENCH_SQL_CALLS?.trim() || 400);
if (!Number.isInteger(CALLS) || CALLS < 10)
  throw new Error(`BENCH_SQL_CALLS must be an integer >= 10, got ${CALLS}`);
const CUSTOMERS = 2_000;
/** Commits per transaction in the group-commit rows: GROUP_COMMIT_MAX_BATCH's default. */
const BATCH = 16;
/** Commits per transaction of the small-batch row: what one group-commit slot gathers at a steady 1,000/s. */
const SMALL_BATCH = 4;
/** Customers with many purchases, and how many each (see the warm-up). */
const REGULARS = 64;
const REGULAR_PURCHASES = 100;

/** The newest server binaries of the OS's PostgreSQL packages, or BENCH_PG_BIN. */
function pgBin(): string {
  const chosen = process.env.BENCH_PG_BIN?.trim();
  if (chosen) return chosen;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)) : [];
  const newest = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error('no PostgreSQL server binaries in /usr/lib/postgresql: set BENCH_PG_BIN');
  return path.join(root, newest, 'bin');
}

/** Runs a command, as the postgres user when this process is root (PostgreSQL refuses root). */
function run(command: string, args: string[], options: { input?: string } = {}): string {
  const asRoot = userInfo().uid === 0;
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  const result = spawnSync(file, argv, { input: options.input, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.status !== 0) {
    throw new Error(
      `${command} ${args.join(' ')} failed (${result.status}): ${result.stderr || result.error}`,
    );
  }
  return result.stdout;
}

/** A generator of the same numbers on every run. */
function numbers(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state;
  };
}

/**
 * One line per transaction: the commit (or, with `call` false, only its payload) of a random
 * customer, or with `batch` that many commits in one `loyalty_commit_purchases` call (group commit).
 */
function lines(options: {
  merchantId: string;
  outletId: string;
  customers: string[];
  redeem: number;
  /** A campaign whose line in the earn breakdown doubles the base points. */
  campaignId?: string;
  /**
   * Each purchase redeems a hold of `redeem` points, created in the same transaction by a statement
   * before the commit's (without the call, that statement is kept: its cost is subtracted too).
   */
  hold?: boolean;
  call: boolean;
  batch?: number;
  /** Commits in all (CALLS). */
  count?: number;
}) {
  const next = numbers(42);
  const payloads: string[] = [];
  const holds: string[] = [];
  const batch = options.batch ?? 1;
  for (let k = 0; k < (options.count ?? CALLS); k++) {
    const customer = options.customers[next() % options.customers.length];
    const total = 1_000 + (next() % 49_000);
    const earn = Math.floor(total / 2_000);
    const campaignLine = options.campaignId
      ? `, jsonb_build_object('source', 'campaign', 'campaignId', '${options.campaignId}', ` +
        `'name', 'Double points', 'points', ${earn})`
      : '';
    // The k-th hold of the transaction, created by the statement before the commit.
    const holdId = options.hold ? `current_setting('bench.holds')::jsonb->>${k % batch}` : 'null';
    if (options.hold) {
      holds.push(
        `loyalty_create_hold(jsonb_build_object('merchantId', '${options.merchantId}', 'customerId', ` +
          `'${customer}', 'points', ${options.redeem}, 'ttlSeconds', 86400, 'receipt', ` +
          `jsonb_build_object('total', ${total})))->'hold'->'id'`,
      );
    }
    const payload =
      `jsonb_build_object('merchantId', '${options.merchantId}', 'customerId', '${customer}', ` +
      `'orderId', gen_random_uuid()::text, 'code', null, 'idempotencyKey', gen_random_uuid()::text, ` +
      `'requestHash', 'h', 'outletId', '${options.outletId}', 'deviceId', null, 'managerId', null, ` +
      `'total', ${total}, 'eligibleAmount', ${total}, 'discount', ${options.redeem * 100}, ` +
      `'earnPoints', ${earn}, 'redeemPoints', ${options.redeem}, 'earnRateBp', 500, 'tier', null, ` +
      `'receipt', jsonb_build_object('total', ${total}), 'lineEligible', null, 'pendingDays', 0, ` +
      `'lifetimeDays', 365, 'holdId', ${holdId}, 'earnBreakdown', jsonb_build_array(jsonb_build_object(` +
      `'source', 'base', 'campaignId', null, 'name', 'Base', 'points', ${earn})${campaignLine}))`;
    payloads.push(payload);
  }
  const out: string[] = [];
  for (let k = 0; k < payloads.length; k += batch) {
    const group = payloads.slice(k, k + batch);
    const arg = batch === 1 ? group[0] : `jsonb_build_array(${group.join(', ')})`;
    const call = batch === 1 ? 'loyalty_commit_purchase' : 'loyalty_commit_purchases';
    // One line, one transaction: the holds (if any), then the commit.
    const before = options.hold
      ? `select set_config('bench.holds', jsonb_build_array(${holds.slice(k, k + batch).join(', ')})::text, true); `
      : '';
    out.push(
      before + (options.call ? `select ${call}(${arg}) is not null;` : `select length(${arg}::text) > 0;`),
    );
  }
  return `${out.join('\n')}\n`;
}

/** One line per transaction: a resolve's customer read by id (or, with `call` false, its arguments). */
function resolveLines(options: { merchantId: string; customers: string[]; call: boolean }): string {
  const next = numbers(7);
  const out: string[] = [];
  for (let k = 0; k < CALLS; k++) {
    const args = `'${options.merchantId}'::uuid, '${options.customers[next() % options.customers.length]}'::uuid`;
    out.push(
      options.call
        ? `select count(*) from loyalty_customer_state(${args}, null, null, null);`
        : `select count(*) from (select ${args}) x;`,
    );
  }
  return `${out.join('\n')}\n`;
}

async function main(): Promise<void> {
  const bin = pgBin();
  const dir = mkdtempSync('/tmp/loyalty-sql-cost-');
  chmodSync(dir, 0o777);
  const data = path.join(dir, 'data');
  const port = await findFreePort();
  const database = 'sqlcost';
  try {
    console.log(
      `· PostgreSQL from ${bin}: a cluster in ${data}, migrated and seeded with ${CUSTOMERS} customers ...`,
    );
    run(path.join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres']);
    run(path.join(bin, 'pg_ctl'), [
      '-D',
      data,
      '-o',
      `-p ${port} -k ${dir}`,
      '-l',
      path.join(dir, 'log'),
      '-w',
      'start',
    ]);
    const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
    const admin = createDatabase({ connectionString: adminUrl, max: 1 });
    await admin.pool.query(`create database ${database}`);
    await admin.db.destroy();
    const { db } = createDatabase({
      connectionString: `postgres://postgres@127.0.0.1:${port}/${database}`,
      max: 2,
    });
    const merchant = await migrateToLatest(db).then(() =>
      seedMerchant(db, { customers: CUSTOMERS, startingPoints: 100_000_000 }),
    );
    const base = {
      merchantId: merchant.merchantId,
      outletId: merchant.outletId,
      customers: merchant.customerIds,
    };
    // A database past its first minute: purchases exist and the planner has their statistics (a plan
    // made on an empty table can take any index; docs/performance.md, "Plans made on an empty table"),
    // and, as in any café, regulars: REGULARS customers with REGULAR_PURCHASES purchases each, whom
    // the statistics list as the most common values (docs/performance.md, "Plans for regulars").
    const regulars = merchant.customerIds.slice(0, REGULARS);
    const warmUp = [
      ...lines({ ...base, redeem: 0, call: true })
        .trim()
        .split('\n'),
      ...lines({ ...base, customers: regulars, redeem: 0, call: true, count: REGULARS * REGULAR_PURCHASES })
        .trim()
        .split('\n'),
    ];
    for (const line of warmUp) await db.executeQuery(CompiledQuery.raw(line));
    // A campaign as a merchant runs one: double points on every purchase, within a points budget.
    const campaign = await db.executeQuery<{ id: string }>(
      CompiledQuery.raw(
        `insert into campaigns (merchant_id, name, kind, status, effect, limit_total_points)
         values ('${merchant.merchantId}', 'Double points', 'multiplier', 'active', '{"multiplier": 2}', 1000000000000)
         returning id`,
      ),
    );
    const campaignId = campaign.rows[0]?.id as string;
    await db.executeQuery(CompiledQuery.raw('analyze'));
    await db.destroy();
    run(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);

    const count = (name: string, input: string): number => {
      const file = path.join(dir, `${name}.sql`);
      writeFileSync(file, input);
      chmodSync(file, 0o644);
      const out = path.join(dir, `callgrind.${name}`);
      run('sh', [
        '-c',
        `valgrind --tool=callgrind --callgrind-out-file=${out} ${path.join(bin, 'postgres')} --single ` +
          `-D ${data} -c synchronous_commit=off ${database} < ${file} > /dev/null 2> ${out}.log`,
      ]);
      // PostgreSQL's own messages; an ERROR means a call failed and the count is not a commit's.
      const failed = readFileSync(`${out}.log`, 'utf8').match(/^ERROR: .*$/m);
      if (failed) throw new Error(`${name}: ${failed[0]}`);
      const summary = /^summary: (\d+)/m.exec(readFileSync(out, 'utf8'))?.[1];
      if (!summary) throw new Error(`no callgrind summary for ${name}`);
      return Number(summary);
    };
    console.log(`· callgrind: ${CALLS} commits per run ...`);
    /** Counted once, when a row first needs it. */
    const once = (f: () => number) => {
      let value: number | undefined;
      return () => {
        value ??= f();
        return value;
      };
    };
    const driver = once(() => count('payload', lines({ ...base, redeem: 0, call: false })));
    const batchDrivers = new Map<number, () => number>();
    const batchDriver = (batch: number) => {
      let counted = batchDrivers.get(batch);
      if (!counted) {
        counted = once(() =>
          count(`payload-batch${batch}`, lines({ ...base, redeem: 0, call: false, batch })),
        );
        batchDrivers.set(batch, counted);
      }
      return counted();
    };
    const perCommit = (name: string, redeem: number, batch = 1) =>
      (count(name, lines({ ...base, redeem, call: true, batch })) -
        (batch === 1 ? driver() : batchDriver(batch))) /
      CALLS;
    // With a campaign line or a hold the payload itself costs more (a hold's creation is in it): its
    // own lines without the call are subtracted.
    const withOwnPayload = (name: string, options: Omit<Parameters<typeof lines>[0], 'call'>) =>
      (count(name, lines({ ...options, call: true })) -
        count(`${name}-payload`, lines({ ...options, call: false }))) /
      CALLS;
    const perCampaignCommit = (name: string, batch = 1) =>
      withOwnPayload(name, { ...base, redeem: 0, batch, campaignId });
    const perHoldCommit = (name: string, batch = 1) =>
      withOwnPayload(name, { ...base, redeem: 5, batch, hold: true });
    const grouped = `in transactions of ${BATCH} (group commit)`;
    const resolveDriver = once(() => count('payload-resolve', resolveLines({ ...base, call: false })));
    const perResolve = (name: string) =>
      (count(name, resolveLines({ ...base, call: true })) - resolveDriver()) / CALLS;
    // Each row: its key (BENCH_SQL_ROWS picks rows by key), its name, how one run of it is counted.
    const rows: [string, string, (run: 1 | 2) => number][] = [
      ['earn', 'earn-only', (run) => perCommit(`earn${run}`, 0)],
      ['redeem', 'with a redeem of 5 points', (run) => perCommit(`redeem${run}`, 5)],
      ['earn-batch', `earn-only, ${grouped}`, (run) => perCommit(`earn-batch${run}`, 0, BATCH)],
      [
        'earn-batch4',
        `earn-only, in transactions of ${SMALL_BATCH}`,
        (run) => perCommit(`earn-batch4-${run}`, 0, SMALL_BATCH),
      ],
      ['redeem-batch', `redeem, ${grouped}`, (run) => perCommit(`redeem-batch${run}`, 5, BATCH)],
      [
        'campaign',
        'with a campaign line (double points, a budget)',
        (run) => perCampaignCommit(`campaign${run}`),
      ],
      [
        'campaign-batch',
        `campaign line, ${grouped}`,
        (run) => perCampaignCommit(`campaign-batch${run}`, BATCH),
      ],
      ['hold', 'redeeming a hold of 5 points', (run) => perHoldCommit(`hold${run}`)],
      ['hold-batch', `hold, ${grouped}`, (run) => perHoldCommit(`hold-batch${run}`, BATCH)],
      ['resolve', 'resolve: the customer read by id (no tiers)', (run) => perResolve(`resolve${run}`)],
    ];
    const only = process.env.BENCH_SQL_ROWS?.split(',')
      .map((key) => key.trim())
      .filter(Boolean);
    const unknown = only?.filter((key) => !rows.some(([k]) => k === key)) ?? [];
    if (unknown.length > 0)
      throw new Error(
        `BENCH_SQL_ROWS: unknown ${unknown.join(', ')} (rows: ${rows.map(([k]) => k).join(', ')})`,
      );
    const counted = rows
      .filter(([key]) => !only?.length || only.includes(key))
      .map(([, name, run]) => [name, run(1), run(2)] as const);
    console.log(
      `\ninstructions per call (payload building subtracted: ${Math.round(driver() / CALLS)} per commit)`,
    );
    for (const [name, a, b] of counted) {
      console.log(`  ${name.padEnd(52)} ${(a / 1e6).toFixed(3)} M   again ${(b / 1e6).toFixed(3)} M`);
    }
    if (process.env.BENCH_SQL_KEEP === '1') console.log(`\ncallgrind files kept in ${dir}`);
  } finally {
    if (existsSync(path.join(data, 'postmaster.pid'))) {
      try {
        run(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop']);
      } catch {}
    }
    if (process.env.BENCH_SQL_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  }
}

await main();
