import { sql } from 'kysely';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { randomSecret, sha256Hex } from '../../lib/tokens.js';
import { DEFAULT_RULES, ProgrammeRules } from '../programme/programme.schema.js';

/** Channel on which changes that invalidate in-process caches (API keys, rules) are announced. */
export const CACHE_CHANNEL = 'loyalty_cache';

/** Creates a merchant with a validated programme (the default one when none is given). */
export async function createMerchant(
  db: Executor,
  options: { name: string; rules?: ProgrammeRules },
): Promise<{ id: string; name: string; rules: ProgrammeRules }> {
  const rules = ProgrammeRules.parse(options.rules ?? DEFAULT_RULES);
  const row = await db
    .insertInto('merchants')
    .values({ name: options.name, rules: JSON.stringify(rules) })
    .returning(['id', 'name'])
    .executeTakeFirstOrThrow();
  return { ...row, rules };
}

/** Replaces a merchant's programme rules and tells every replica to drop its cached copy. */
export async function updateMerchantRules(
  db: Executor,
  options: { merchantId: string; rules: ProgrammeRules },
): Promise<ProgrammeRules> {
  const rules = ProgrammeRules.parse(options.rules);
  const result = await db
    .updateTable('merchants')
    .set({ rules: JSON.stringify(rules), updated_at: new Date() })
    .where('id', '=', options.merchantId)
    .executeTakeFirst();
  if (result.numUpdatedRows === 0n) throw new AppError('merchant_not_found', 'Merchant not found');
  await notifyCacheChange(db, `merchant:${options.merchantId}`);
  return rules;
}

/**
 * The merchant's IANA time zone (default Europe/Moscow): schedules, birthdays, simulations and
 * reports count days and hours on its clocks. The one place that reads it.
 */
export async function getMerchantTimeZone(db: Executor, merchantId: string): Promise<string> {
  const row = await db
    .selectFrom('merchants')
    .select('time_zone')
    .where('id', '=', merchantId)
    .executeTakeFirst();
  if (!row) throw new AppError('merchant_not_found', 'Merchant not found');
  return row.time_zone;
}

/** Sets the merchant's time zone (validated by the caller); every replica drops its cached keys. */
export async function updateMerchantTimeZone(
  db: Executor,
  options: { merchantId: string; timeZone: string },
): Promise<{ id: string; name: string; timeZone: string }> {
  const row = await db
    .updateTable('merchants')
    .set({ time_zone: options.timeZone, updated_at: new Date() })
    .where('id', '=', options.merchantId)
    .returning(['id', 'name', 'time_zone'])
    .executeTakeFirst();
  if (!row) throw new AppError('merchant_not_found', 'Merchant not found');
  await notifyCacheChange(db, `merchant:${options.merchantId}`);
  return { id: row.id, name: row.name, timeZone: row.time_zone };
}

/** Merchant states: a suspended merchant's API keys and portal accounts are refused. */
export type MerchantStatus = 'active' | 'suspended';

/**
 * Renames a merchant and/or suspends or reactivates it. Every replica drops its cached API keys when
 * this commits, so a suspended merchant's keys get 403 `merchant_suspended` at once.
 */
export async function updateMerchant(
  db: Executor,
  options: { merchantId: string; name?: string; status?: MerchantStatus },
): Promise<{ id: string; name: string; status: string }> {
  const row = await db
    .updateTable('merchants')
    .set({ name: options.name, status: options.status, updated_at: new Date() })
    .where('id', '=', options.merchantId)
    .returning(['id', 'name', 'status'])
    .executeTakeFirst();
  if (!row) throw new AppError('merchant_not_found', `Merchant ${options.merchantId} not found`);
  if (options.status !== undefined) await notifyCacheChange(db, `merchant:${options.merchantId}`);
  return row;
}

/**
 * Throws 403 `merchant_suspended` when the merchant is suspended: the customers' doors (Mini App
 * sign-in, the merchant's bot) close with the POS and portal ones.
 */
export async function assertMerchantActive(db: Executor, merchantId: string): Promise<void> {
  const row = await db
    .selectFrom('merchants')
    .select('status')
    .where('id', '=', merchantId)
    .executeTakeFirst();
  if (row?.status === 'suspended') {
    throw new AppError('merchant_suspended', 'The loyalty programme of this merchant is suspended');
  }
}

/** Announces a change that invalidates cached auth or rules (listened to by every API process). */
export async function notifyCacheChange(db: Executor, message: string): Promise<void> {
  await sql`select pg_notify(${CACHE_CHANNEL}, ${message})`.execute(db);
}

async function assertMerchant(db: Executor, merchantId: string): Promise<void> {
  const found = await db.selectFrom('merchants').select('id').where('id', '=', merchantId).executeTakeFirst();
  if (!found) throw new AppError('merchant_not_found', `Merchant ${merchantId} not found`);
}

/** Creates an outlet (a shop or café) of a merchant. */
export async function createOutlet(
  db: Executor,
  options: { merchantId: string; name: string; address?: string },
): Promise<{ id: string; name: string }> {
  await assertMerchant(db, options.merchantId);
  return db
    .insertInto('outlets')
    .values({ merchant_id: options.merchantId, name: options.name, address: options.address ?? null })
    .returning(['id', 'name'])
    .executeTakeFirstOrThrow();
}

/** Creates a POS device, optionally attached to one of the merchant's outlets. */
export async function createDevice(
  db: Executor,
  options: { merchantId: string; name: string; outletId?: string },
): Promise<{ id: string; name: string }> {
  await assertMerchant(db, options.merchantId);
  return db
    .insertInto('devices')
    .values({ merchant_id: options.merchantId, name: options.name, outlet_id: options.outletId ?? null })
    .returning(['id', 'name'])
    .executeTakeFirstOrThrow();
}

/** Creates a manager (cashier) of a merchant. */
export async function createManager(
  db: Executor,
  options: { merchantId: string; name: string; outletId?: string },
): Promise<{ id: string; name: string }> {
  await assertMerchant(db, options.merchantId);
  return db
    .insertInto('managers')
    .values({ merchant_id: options.merchantId, name: options.name, outlet_id: options.outletId ?? null })
    .returning(['id', 'name'])
    .executeTakeFirstOrThrow();
}

/** Issues an API key; the key itself is returned once and only its SHA-256 and prefix are kept. */
export async function createApiKey(
  db: Executor,
  options: { merchantId: string; name?: string },
): Promise<{ id: string; key: string; prefix: string }> {
  await assertMerchant(db, options.merchantId);
  const key = randomSecret('lk_live_', 24);
  const prefix = key.slice(0, 12);
  const row = await db
    .insertInto('api_keys')
    .values({
      merchant_id: options.merchantId,
      name: options.name ?? 'POS',
      prefix,
      key_hash: sha256Hex(key),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, key, prefix };
}

/** A merchant's API keys, newest first: names and prefixes only (the keys themselves are never kept). */
export function listApiKeys(
  db: Executor,
  options: { merchantId: string },
): Promise<Array<{ id: string; name: string; prefix: string; createdAt: Date; revokedAt: Date | null }>> {
  return db
    .selectFrom('api_keys')
    .select(['id', 'name', 'prefix', 'created_at as createdAt', 'revoked_at as revokedAt'])
    .where('merchant_id', '=', options.merchantId)
    .orderBy('created_at', 'desc')
    .orderBy('id')
    .execute();
}

/** Revokes an API key of a merchant at once on every replica. */
export async function revokeApiKey(
  db: Executor,
  options: { merchantId: string; keyId: string },
): Promise<void> {
  const row = await db
    .updateTable('api_keys')
    .set({ revoked_at: new Date() })
    .where('id', '=', options.keyId)
    .where('merchant_id', '=', options.merchantId)
    .where('revoked_at', 'is', null)
    .returning('key_hash')
    .executeTakeFirst();
  if (!row) throw new AppError('not_found', 'API key not found or already revoked');
  await notifyCacheChange(db, `api_key:${row.key_hash}`);
}

/** The merchant an API key belongs to, with its rules; null for unknown or revoked keys. */
export async function findApiKey(
  db: Executor,
  key: string,
): Promise<{
  keyId: string;
  merchantId: string;
  merchantStatus: string;
  rules: ProgrammeRules;
  timeZone: string;
} | null> {
  const row = await db
    .selectFrom('api_keys as k')
    .innerJoin('merchants as m', 'm.id', 'k.merchant_id')
    .select([
      'k.id as keyId',
      'k.merchant_id as merchantId',
      'm.status as merchantStatus',
      'm.rules',
      'm.time_zone as timeZone',
    ])
    .where('k.key_hash', '=', sha256Hex(key))
    .where('k.revoked_at', 'is', null)
    .executeTakeFirst();
  if (!row) return null;
  return { ...row, rules: ProgrammeRules.parse(row.rules) };
}

/** The ids of the POS context (outlet, device, manager) that do not belong to the merchant. */
export async function findForeignContext(
  db: Executor,
  options: { merchantId: string; outletId?: string; deviceId?: string; managerId?: string },
): Promise<{ outlet: boolean; device: boolean; manager: boolean; deviceOutletId: string | null }> {
  const { merchantId, outletId, deviceId, managerId } = options;
  const none = '00000000-0000-0000-0000-000000000000';
  const result = await sql<{
    outlet: boolean;
    device: boolean;
    manager: boolean;
    device_outlet: string | null;
  }>`
    select
      exists(select 1 from outlets where id = ${outletId ?? none} and merchant_id = ${merchantId}) as outlet,
      exists(select 1 from devices where id = ${deviceId ?? none} and merchant_id = ${merchantId}) as device,
      exists(select 1 from managers where id = ${managerId ?? none} and merchant_id = ${merchantId}) as manager,
      (select outlet_id from devices where id = ${deviceId ?? none} and merchant_id = ${merchantId}) as device_outlet
  `.execute(db);
  const row = result.rows[0];
  return {
    outlet: outletId !== undefined && !row?.outlet,
    device: deviceId !== undefined && !row?.device,
    manager: managerId !== undefined && !row?.manager,
    deviceOutletId: row?.device_outlet ?? null,
  };
}
