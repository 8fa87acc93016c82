import type { Kysely } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// Group commit's set-based part takes purchases that redeem a hold too: the hold checked, its
// release entries, its reservation moved back into its lots and out again to the purchase, the hold
// committed and hold.released written with one statement per table for the whole batch
// (loyalty_commit_plain_purchases); a hold that does not fit leaves its purchase to be committed
// alone. No schema change; the ledger functions are installed from src/modules/ledger/sql/ as the
// other ledger migrations do.

export async function up(db: Kysely<unknown>): Promise<void> {
  await installLedgerFunctions(db);
}

// The previous definitions are not kept: the ones installed answer the previous schema alike.
export async function down(): Promise<void> {}
