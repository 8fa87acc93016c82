import type { Kysely } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// A refund or a hold cancel that waited on a customer's balance row while the customer was deleted
// (with their merchant) answers purchase_not_found / hold_not_found instead of failing on the vanished
// rows. No schema change; the ledger functions are installed from src/modules/ledger/sql/ as the
// other ledger migrations do.

export async function up(db: Kysely<unknown>): Promise<void> {
  await installLedgerFunctions(db);
}

// The previous definitions are not kept: the ones installed answer the previous schema alike.
export async function down(): Promise<void> {}
