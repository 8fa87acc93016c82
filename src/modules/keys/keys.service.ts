import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import type { Config } from '../../config.js';
import { decodeKey } from '../../config.js';
import type { Executor } from '../../db/database.js';
import { isSealed, SecretBox } from '../../lib/crypto.js';

// The app key (APP_ENCRYPTION_KEY) seals secrets at rest and, unless JWT_SECRET is set, signs the
// portal and admin access tokens. No key is ever written in the source: production configures one;
// elsewhere each installation generates its own random key on first start and keeps it
//   - with the embedded PostgreSQL: in a file in its data folder (mode 0600), beside the data it guards;
//   - with DATABASE_URL: in the database itself (installation_settings), so every database is its
//     own installation and a token minted by one is refused by any other.

/** File name of the installation key in the embedded PostgreSQL's data folder. */
export const KEY_FILE_NAME = 'loyalty-app-key';
const KEY_SETTING = 'app_encryption_key';

function newKey(): string {
  return randomBytes(32).toString('hex');
}

function assertNotProduction(config: Config): void {
  // loadConfig already refuses production without the key; this guards callers that skipped it.
  if (config.NODE_ENV === 'production') throw new Error('APP_ENCRYPTION_KEY is required in production');
}

/**
 * The installation key kept in `dir` (the embedded database's data folder), created on first use
 * with mode 0600. A file that exists but holds no valid key is an error, never silently replaced:
 * the secrets sealed under it would be lost.
 */
export function readOrCreateKeyFile(dir: string): string {
  const file = path.join(dir, KEY_FILE_NAME);
  mkdirSync(dir, { recursive: true });
  try {
    // 'wx' fails when the file exists, so two processes starting at once cannot both create one.
    writeFileSync(file, `${newKey()}\n`, { flag: 'wx', mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  chmodSync(file, 0o600);
  const key = readFileSync(file, 'utf8').trim();
  if (decodeKey(key) === null)
    throw new Error(`${file} does not hold a 32-byte key; restore it from a backup`);
  return key;
}

/** The installation key kept in the database, created on first use (concurrent starts agree on one). */
export async function readOrCreateKeyRow(db: Executor): Promise<string> {
  await db
    .insertInto('installation_settings')
    .values({ name: KEY_SETTING, value: newKey() })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute();
  const row = await db
    .selectFrom('installation_settings')
    .select('value')
    .where('name', '=', KEY_SETTING)
    .executeTakeFirstOrThrow();
  return row.value;
}

/**
 * With the embedded database and no APP_ENCRYPTION_KEY, fills it in from the key file in the
 * database's data folder (created on first start).
 */
export function applyEmbeddedInstallationKey(config: Config, dataDir: string): void {
  if (config.APP_ENCRYPTION_KEY) return;
  assertNotProduction(config);
  config.APP_ENCRYPTION_KEY = readOrCreateKeyFile(dataDir);
}

/**
 * Makes the process ready to seal and open secrets: fills in APP_ENCRYPTION_KEY with the database's
 * installation key when none is configured (outside production; only then is the database needed).
 * Every entry point runs it before serving or working; returns the box for the key.
 */
export async function ensureAppKey(db: Executor, config: Config): Promise<SecretBox> {
  if (!config.APP_ENCRYPTION_KEY) {
    assertNotProduction(config);
    config.APP_ENCRYPTION_KEY = await readOrCreateKeyRow(db);
  }
  return new SecretBox(config.APP_ENCRYPTION_KEY);
}

/**
 * Seals webhook secrets stored before they were sealed at rest (migration 0007); returns how many.
 * The API and the worker run it at start (reading accepts both forms meanwhile).
 */
export async function sealPlaintextWebhookSecrets(db: Executor, box: SecretBox): Promise<number> {
  const rows = await db
    .selectFrom('webhook_endpoints')
    .select(['id', 'secret_enc', 'previous_secret_enc'])
    .where((eb) =>
      eb.or([
        eb('secret_enc', 'not like', 'v1.%'),
        eb.and([eb('previous_secret_enc', 'is not', null), eb('previous_secret_enc', 'not like', 'v1.%')]),
      ]),
    )
    .execute();
  let sealed = 0;
  for (const row of rows) {
    const seal = (value: string | null) => (value === null || isSealed(value) ? value : box.seal(value));
    // Compare-and-set: another process sealing the same row at the same time wins, nothing is lost.
    const result = await db
      .updateTable('webhook_endpoints')
      .set({
        secret_enc: seal(row.secret_enc) ?? row.secret_enc,
        previous_secret_enc: seal(row.previous_secret_enc),
      })
      .where('id', '=', row.id)
      .where('secret_enc', '=', row.secret_enc)
      .where(sql<boolean>`previous_secret_enc is not distinct from ${row.previous_secret_enc}`)
      .executeTakeFirst();
    sealed += Number(result.numUpdatedRows);
  }
  return sealed;
}

// Every column that holds a sealed secret; keys:rotate re-seals each. A new sealed column goes here.
const SEALED_COLUMNS = [
  { table: 'merchants', column: 'telegram_bot_token_enc' },
  { table: 'webhook_endpoints', column: 'secret_enc' },
  { table: 'webhook_endpoints', column: 'previous_secret_enc' },
] as const;

/** What keys:rotate did, per sealed column ("table.column"). */
export interface RotationReport {
  dryRun: boolean;
  /** Secrets opened with the old key and sealed again under the new one. */
  resealed: Record<string, number>;
  /** Secrets already sealed under the new key (a rotation run again after it finished). */
  alreadyCurrent: number;
  /** Secrets found in plain text (stored before they were sealed) and sealed under the new key. */
  sealedPlaintext: number;
  /** The old key was this database's own installation key; it is deleted, nothing needs it now. */
  installationKeyRetired: boolean;
}

/** Thrown when stored secrets open with neither key: nothing was changed. */
export class KeyMismatchError extends Error {
  readonly code = 'key_mismatch';
  constructor(readonly rows: string[]) {
    super(
      `${rows.length} stored secret(s) open with neither the old nor the new key (${rows.slice(0, 5).join(', ')}); nothing was changed`,
    );
  }
}

function tryOpen(box: SecretBox, sealed: string): string | null {
  try {
    return box.open(sealed);
  } catch {
    return null;
  }
}

/**
 * Re-seals every stored secret under `newKey`, reading them with `oldKey`, in one transaction: either
 * every secret is re-sealed or, when one opens with neither key, nothing changes. Running it again
 * after it finished changes nothing (the secrets already open with the new key).
 */
export async function rotateSealedSecrets(
  db: Executor,
  options: { oldKey: string; newKey: string; dryRun?: boolean },
): Promise<RotationReport> {
  const oldBox = new SecretBox(options.oldKey);
  const newBox = new SecretBox(options.newKey);
  const run = async (trx: Executor): Promise<RotationReport> => {
    const report: RotationReport = {
      dryRun: options.dryRun ?? false,
      resealed: {},
      alreadyCurrent: 0,
      sealedPlaintext: 0,
      installationKeyRetired: false,
    };
    const failed: string[] = [];
    const updates: Array<{ table: string; column: string; id: string; value: string }> = [];
    for (const { table, column } of SEALED_COLUMNS) {
      const name = `${table}.${column}`;
      report.resealed[name] = 0;
      const { rows } = await sql<{ id: string; value: string }>`
        select id, ${sql.ref(column)} as value from ${sql.table(table)}
        where ${sql.ref(column)} is not null order by id for update`.execute(trx);
      for (const row of rows) {
        if (!isSealed(row.value)) {
          report.sealedPlaintext += 1;
          updates.push({ table, column, id: row.id, value: newBox.seal(row.value) });
          continue;
        }
        const plain = tryOpen(oldBox, row.value);
        if (plain !== null) {
          report.resealed[name] += 1;
          updates.push({ table, column, id: row.id, value: newBox.seal(plain) });
        } else if (tryOpen(newBox, row.value) !== null) {
          report.alreadyCurrent += 1;
        } else {
          failed.push(`${name} id=${row.id}`);
        }
      }
    }
    if (failed.length > 0) throw new KeyMismatchError(failed);
    if (report.dryRun) return report;
    for (const u of updates) {
      await sql`update ${sql.table(u.table)} set ${sql.ref(u.column)} = ${u.value} where id = ${u.id}`.execute(
        trx,
      );
    }
    const stored = await trx
      .selectFrom('installation_settings')
      .select('value')
      .where('name', '=', KEY_SETTING)
      .executeTakeFirst();
    const oldBytes = decodeKey(options.oldKey);
    if (stored && oldBytes && decodeKey(stored.value)?.equals(oldBytes)) {
      await trx.deleteFrom('installation_settings').where('name', '=', KEY_SETTING).execute();
      report.installationKeyRetired = true;
    }
    return report;
  };
  return db.isTransaction ? run(db) : db.transaction().execute(run);
}
