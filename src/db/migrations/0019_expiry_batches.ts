import type { Kysely } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// The expiry job reads the lots it expires (docs/performance.md, "At scale"): loyalty_expire_points
// takes the soonest due lots by point_lots_expiry_idx instead of walking the active lots in
// customer order. No schema change; the ledger functions are installed from
// src/modules/ledger/sql/ as the other ledger migrations do.

export async function up(db: Kysely<unknown>): Promise<void> {
  await installLedgerFunctions(db);
}

// The previous function's definition is not kept; the current one works on the previous schema.
export async function down(): Promise<void> {}
