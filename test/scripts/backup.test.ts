import { spawn, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createTestCustomer, createTestMerchant, type TestMerchant } from '../helpers/factories.js';
import { findLedgerViolations } from '../helpers/ledger.js';
import { pgDumpSkipReason } from '../helpers/pg-tools.js';

// backup.sh -> backup-verify.sh -> restore.sh against real PostgreSQL (direct mode: DATABASE_URL and
// this machine's pg_dump/psql), on data written through the app's own services and HTTP API.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN_TABLES = [
  'merchants',
  'outlets',
  'api_keys',
  'customers',
  'balances',
  'purchases',
  'refunds',
  'point_lots',
  'ledger_entries',
  'outbox_events',
  'webhook_endpoints',
];

// Why the round trip cannot run here (pg_dump older than the server, e.g. the embedded one).
const SKIP = pgDumpSkipReason(inject('databaseServerUrl'));

interface RunResult {
  code: number | null;
  stdout: string;
  output: string;
}

function baseEnv(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: '1' };
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || /^(DATABASE_URL|BASE_URL|METRICS_TOKEN|BACKUP_|RESTORE_|PG_BIN)/.test(key))
      continue;
    env[key] = value;
  }
  return env;
}

function runScript(script: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(`scripts/${script}`, args, {
      cwd: ROOT,
      env: { ...baseEnv(), ...env },
      // stdin is a pipe, not a terminal: restore.sh may not ask.
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stdin.end();
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, output }));
  });
}

function row(output: string, step: string): string[] {
  const line = output.split('\n').find((l) => l.startsWith(`${step} `));
  if (!line) throw new Error(`no row for ${step} in:\n${output}`);
  const [, result = '', ms = '', detail = ''] = /^\S+\s+(\S+)\s+(\S+)\s+(.*)$/.exec(line) ?? [];
  return [result, ms, detail];
}

/** The "Row counts of the backup" table of backup-verify.sh. */
function countsOf(output: string): Record<string, number> {
  const counts: Record<string, number> = {};
  const start = output.indexOf('Row counts of the backup:');
  for (const line of output.slice(start).split('\n').slice(2)) {
    const match = /^ {2}([a-z_]+)\s+(\d+)$/.exec(line);
    if (!match?.[1]) break;
    counts[match[1]] = Number(match[2]);
  }
  return counts;
}

let database: TestDatabase;
let merchant: TestMerchant;
let work: string;
let backupDir: string;
let backupFile: string;
let countsBefore: Record<string, number>;
let balancesBefore: Array<{ customer_id: string; available: number; pending: number }>;

async function rowCounts(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of MAIN_TABLES) {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(
      database.db,
    );
    counts[table] = rows[0]?.n ?? -1;
  }
  return counts;
}

async function balances() {
  return database.db
    .selectFrom('balances')
    .select(['customer_id', 'available', 'pending'])
    .orderBy('customer_id')
    .execute();
}

const env = () => ({ DATABASE_URL: database.url, BACKUP_DIR: backupDir });

// Each script run starts the CLI (tsx) at least once: tens of seconds on a busy machine.
describe.skipIf(SKIP !== null)(
  `backup -> verify -> restore${SKIP ? ` (skipped: ${SKIP})` : ''}`,
  { timeout: 120_000 },
  () => {
    beforeAll(async () => {
      database = await createTestDatabase({ poolMax: 4 });
      work = mkdtempSync(path.join(tmpdir(), 'loyalty-backup-test-'));
      backupDir = path.join(work, 'backups');
      // Data through the app's own services and its HTTP API: purchases that earn and redeem, a refund.
      merchant = await createTestMerchant(database.db, { name: 'Backup test merchant' });
      const customers = [
        await createTestCustomer(database.db, { merchant, points: 1_000 }),
        await createTestCustomer(database.db, { merchant, points: 300 }),
        await createTestCustomer(database.db, { merchant }),
      ];
      const { config } = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent' });
      const app = await buildApp(config, { db: database.db, logger: false });
      try {
        let n = 0;
        for (const customer of customers) {
          n += 1;
          const response = await app.inject({
            method: 'POST',
            url: '/api/v1/integration/purchases',
            headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': `backup-test-${n}` },
            payload: {
              customer: { phone: customer.phone },
              receipt: { total: 250_000 },
              redeemPoints: n === 1 ? 200 : 0,
              orderId: `backup-order-${n}`,
              outletId: merchant.outletId,
            },
          });
          expect(response.statusCode, response.body).toBe(201);
          if (n === 1) {
            const refund = await app.inject({
              method: 'POST',
              url: `/api/v1/integration/purchases/${response.json().purchase.id}/refunds`,
              headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': 'backup-test-refund' },
              payload: { amount: 100_000, deviceId: merchant.deviceId },
            });
            expect(refund.statusCode, refund.body).toBe(201);
          }
        }
      } finally {
        await app.close();
      }
      expect(await findLedgerViolations(database.db)).toEqual([]);
      countsBefore = await rowCounts();
      balancesBefore = await balances();
      expect(countsBefore.purchases).toBe(3);
      expect(countsBefore.refunds).toBe(1);
    });

    afterAll(async () => {
      await database?.drop();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    it('backup.sh writes backup_YYYYMMDD_HHMMSS.sql.gz with its checksum and prints the path', async () => {
      const result = await runScript('backup.sh', [], env());
      expect(result.code, result.output).toBe(0);
      backupFile = result.stdout.trim();
      expect(path.dirname(backupFile)).toBe(backupDir);
      expect(path.basename(backupFile)).toMatch(/^backup_\d{8}_\d{6}\.sql\.gz$/);
      const check = spawnSync('sha256sum', ['-c', `${path.basename(backupFile)}.sha256`], {
        cwd: backupDir,
        encoding: 'utf8',
      });
      expect(check.stdout).toContain(': OK');
      const dump = gunzipSync(readFileSync(backupFile)).toString();
      expect(dump).toContain('PostgreSQL database dump complete');
      expect(dump).toContain('Backup test merchant');
      expect(dump).not.toMatch(/OWNER TO|GRANT /);
    });

    it('backup-verify.sh restores it into a scratch database and checks migrations, rows and ledger', async () => {
      const result = await runScript('backup-verify.sh', [backupFile], env());
      expect(result.code, result.output).toBe(0);
      for (const step of ['checksum', 'archive', 'restore', 'migrations', 'rows', 'ledger', 'cleanup']) {
        expect(row(result.output, step)[0], step).toBe('PASS');
      }
      expect(row(result.output, 'migrations')[2]).toContain("(= this code's latest)");
      expect(row(result.output, 'ledger')[2]).toMatch(/^3 customers: entries = balance = lots/);
      expect(countsOf(result.output)).toEqual(countsBefore);
      const scratch = /Scratch database (\S+)/.exec(result.output)?.[1] ?? '';
      const { rows } = await sql<{
        n: number;
      }>`select count(*)::int as n from pg_database where datname = ${scratch}`.execute(database.db);
      expect(rows[0]?.n, 'scratch database dropped').toBe(0);
    });

    it('backup-verify.sh rejects a truncated file', async () => {
      const truncated = path.join(work, 'truncated.sql.gz');
      const bytes = readFileSync(backupFile);
      writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
      const result = await runScript('backup-verify.sh', [truncated], env());
      expect(result.code).toBe(1);
      expect(row(result.output, 'checksum')[0]).toBe('WARN');
      expect(row(result.output, 'archive')[0]).toBe('FAIL');
      expect(row(result.output, 'archive')[2]).toContain('gzip -t');
      expect(row(result.output, 'restore')[0]).toBe('SKIP');
    });

    it('backup-verify.sh rejects a tampered file (checksum mismatch)', async () => {
      const tampered = path.join(work, 'tampered.sql.gz');
      const dump = gunzipSync(readFileSync(backupFile)).toString();
      writeFileSync(tampered, gzipSync(dump.replace('Backup test merchant', 'Tampered merchant')));
      copyFileSync(`${backupFile}.sha256`, `${tampered}.sha256`);
      const result = await runScript('backup-verify.sh', [tampered], env());
      expect(result.code).toBe(1);
      expect(row(result.output, 'checksum')[0]).toBe('FAIL');
      expect(row(result.output, 'checksum')[2]).toContain('checksum mismatch');
      expect(row(result.output, 'restore')[0]).toBe('SKIP');
    });

    it('backup-verify.sh finds a balance that its ledger entries do not add up to', async () => {
      const broken = path.join(work, 'broken.sql.gz');
      const lines = gunzipSync(readFileSync(backupFile)).toString().split('\n');
      const copy = lines.findIndex((l) => l.startsWith('COPY public.balances '));
      const columns = /\(([^)]*)\)/.exec(lines[copy] ?? '')?.[1]?.split(', ') ?? [];
      const fields = (lines[copy + 1] ?? '').split('\t');
      const at = columns.indexOf('available');
      fields[at] = String(Number(fields[at]) + 1);
      lines[copy + 1] = fields.join('\t');
      writeFileSync(broken, gzipSync(lines.join('\n')));
      spawnSync('sh', ['-c', `sha256sum ${path.basename(broken)} > ${path.basename(broken)}.sha256`], {
        cwd: work,
      });
      const result = await runScript('backup-verify.sh', [broken], env());
      expect(result.code).toBe(1);
      expect(row(result.output, 'checksum')[0]).toBe('PASS');
      expect(row(result.output, 'ledger')[0]).toBe('FAIL');
      expect(row(result.output, 'ledger')[2]).toMatch(/^1 of 3 customers break the ledger: customer /);
    });

    it('restore.sh refuses without --yes when there is no terminal, and refuses a tampered file', async () => {
      await createTestCustomer(database.db, { merchant, points: 50 });
      const countsNow = await rowCounts();

      const unconfirmed = await runScript('restore.sh', [backupFile], env());
      expect(unconfirmed.code).toBe(1);
      expect(unconfirmed.output).toContain('refusing to overwrite');

      const tampered = await runScript('restore.sh', [path.join(work, 'tampered.sql.gz'), '--yes'], env());
      expect(tampered.code).toBe(1);
      expect(tampered.output).toContain('checksum mismatch');
      expect(tampered.output).toContain('Nothing was changed');

      expect(await rowCounts()).toEqual(countsNow);
    });

    it('restore.sh refuses a backup of a newer release (a migration this code does not know) before touching anything', async () => {
      const countsNow = await rowCounts();
      const backupsNow = readdirSync(backupDir).sort();
      const newer = path.join(work, 'newer-release.sql.gz');
      const lines = gunzipSync(readFileSync(backupFile)).toString().split('\n');
      const copy = lines.findIndex((l) => l.startsWith('COPY public.kysely_migration '));
      expect(copy, 'the dump records its migrations').toBeGreaterThanOrEqual(0);
      const columns = /\(([^)]*)\)/.exec(lines[copy] ?? '')?.[1]?.split(', ') ?? [];
      const row = columns.map((c) =>
        c === 'name' ? '9999_from_a_newer_release' : '2030-01-01T00:00:00.000Z',
      );
      lines.splice(copy + 1, 0, row.join('\t'));
      writeFileSync(newer, gzipSync(lines.join('\n')));
      spawnSync('sh', ['-c', `sha256sum ${path.basename(newer)} > ${path.basename(newer)}.sha256`], {
        cwd: work,
      });

      const result = await runScript('restore.sh', [newer, '--yes'], env());
      expect(result.code, result.output).toBe(1);
      expect(result.output).toContain(
        'the backup was made by a newer release: this release does not know its migrations 9999_from_a_newer_release',
      );
      expect(result.output).toContain('Nothing was changed');
      expect(result.output).not.toContain('safety backup');
      expect(await rowCounts()).toEqual(countsNow);
      expect(readdirSync(backupDir).sort()).toEqual(backupsNow);
    });

    it('restore.sh --yes brings back exactly the backed-up data, migrated, with the ledger intact', async () => {
      // Data written after the backup (the previous test added a customer) must be gone afterwards.
      expect((await rowCounts()).customers).toBe((countsBefore.customers ?? 0) + 1);
      const result = await runScript('restore.sh', [backupFile, '--yes'], env());
      expect(result.code, result.output).toBe(0);
      expect(result.output).toMatch(/^migrations: \d+ in the backup, all known to this release$/m);
      expect(result.output).toContain('safety backup:');
      expect(result.output).toMatch(/ledger: 3 customers, entries = balance = lots/);
      expect(await rowCounts()).toEqual(countsBefore);
      expect(await balances()).toEqual(balancesBefore);
      expect(await findLedgerViolations(database.db)).toEqual([]);
      const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(
        database.db,
      );
      expect(rows.length).toBeGreaterThan(0);
      // The safety backup (taken before overwriting) sits next to the restored one.
      expect(readdirSync(backupDir).filter((f) => f.endsWith('.sql.gz'))).toHaveLength(2);
    });

    it('backup.sh removes backups past the retention but keeps the newest N', async () => {
      const dir = path.join(work, 'retention');
      mkdirSync(dir);
      const old = (name: string, days: number) => {
        for (const file of [name, `${name}.sha256`]) {
          writeFileSync(path.join(dir, file), 'old');
          const when = new Date(Date.now() - days * 86_400_000);
          utimesSync(path.join(dir, file), when, when);
        }
      };
      old('backup_20200101_000000.sql.gz', 31);
      old('backup_20200102_000000.sql.gz', 30);
      const result = await runScript('backup.sh', [], {
        ...env(),
        BACKUP_DIR: dir,
        BACKUP_RETENTION_DAYS: '14',
        BACKUP_KEEP_MIN: '2',
      });
      expect(result.code, result.output).toBe(0);
      const left = readdirSync(dir).sort();
      expect(left).toContain('backup_20200102_000000.sql.gz');
      expect(left).toContain('backup_20200102_000000.sql.gz.sha256');
      expect(left).not.toContain('backup_20200101_000000.sql.gz');
      expect(left).not.toContain('backup_20200101_000000.sql.gz.sha256');
      expect(left).toContain(path.basename(result.stdout.trim()));
      expect(result.output).toContain('removed 1');
    });

    it('backup.sh fails clearly and leaves nothing behind when the database is unreachable', async () => {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      await new Promise((resolve) => server.close(resolve));
      const dir = path.join(work, 'unreachable');
      const result = await runScript('backup.sh', [], {
        DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/nothing`,
        BACKUP_DIR: dir,
      });
      expect(result.code).toBe(1);
      expect(result.output).toContain('pg_dump failed');
      expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
    });
  },
);
