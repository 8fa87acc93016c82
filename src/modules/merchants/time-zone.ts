import type { Executor } from '../../db/database.js';

/** The zone of a merchant that has not chosen one (the column's default). */
export const DEFAULT_MERCHANT_TIME_ZONE = 'Europe/Moscow';

/**
 * The time zone of each merchant's day (reports, rollups), by merchant id, read from
 * `merchants.time_zone` (set with PATCH /api/v1/portal/merchant). The dashboard rollups rebuild
 * themselves for any merchant whose zone changed. getMerchantTimeZone reads one merchant's.
 */
export async function getMerchantTimeZones(
  db: Executor,
  merchantIds: readonly string[],
): Promise<Map<string, string>> {
  const zones = new Map(merchantIds.map((id): [string, string] => [id, DEFAULT_MERCHANT_TIME_ZONE]));
  if (merchantIds.length === 0) return zones;
  const rows = await db
    .selectFrom('merchants')
    .select(['id', 'time_zone'])
    .where('id', 'in', [...merchantIds])
    .execute();
  for (const row of rows) zones.set(row.id, row.time_zone);
  return zones;
}
