import type { Executor } from '../../db/database.js';

/** The zone merchants' days are counted in while merchants carry no zone of their own. */
export const DEFAULT_MERCHANT_TIME_ZONE = 'Europe/Moscow';

/**
 * The time zone of each merchant's day (reports, rollups), by merchant id. The one place that
 * decides it: when merchants get a zone of their own, this reads it, and the dashboard rollups
 * rebuild themselves for any merchant whose zone changed.
 */
export async function getMerchantTimeZones(
  _db: Executor,
  merchantIds: readonly string[],
): Promise<Map<string, string>> {
  return new Map(merchantIds.map((id) => [id, DEFAULT_MERCHANT_TIME_ZONE]));
}
