import type { Kysely } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// Group commit's set-based part takes redeeming purchases too: a plain purchase may pay with points
// (no hold, no campaign points), its redeem entry, lot moves and lot updates written with one
// statement per table for the whole batch (loyalty_commit_plain_purchases). No schema change; the
// ledger functions are installed from src/modules/ledger/sql/ as the other ledger migrations do.

export async function up(db: Kysely<unknown>): Promise<void> {
  await installLedgerFunctions(db);
}

// The previous definitions are not kept: the ones installed answer the previous schema alike.
export async function down(): Promise<void> {}
