import type { Kysely } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// Group commit's set-based part reads each customer's lots, holds and codes by that customer's or
// that code's key, however its plan was made: a lot or hold past its expiry is asked for as the
// customer's first in expiry order, a hold by its id alone, and the one-time codes are consumed in a
// statement of their own among the batch's codes (loyalty_commit_plain_purchases). No schema change;
// the ledger functions are installed from src/modules/ledger/sql/ as the other ledger migrations do.

export async function up(db: Kysely<unknown>): Promise<void> {
  await installLedgerFunctions(db);
}

// The previous definitions are not kept: the ones installed answer the previous schema alike.
export async function down(): Promise<void> {}
