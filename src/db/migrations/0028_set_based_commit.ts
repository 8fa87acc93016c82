import type { Kysely } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// Set-based group commit (docs/performance.md, "Set-based group commit"): loyalty_commit_purchases
// locks its batch's balance rows in customer id order, then commits the plain purchases together
// with one statement per table (loyalty_commit_plain_purchases) and the rest one by one. No schema
// change; the ledger functions are installed from src/modules/ledger/sql/ as the other ledger
// migrations do.

export async function up(db: Kysely<unknown>): Promise<void> {
  await installLedgerFunctions(db);
}

// The previous definitions are not kept; loyalty_commit_purchases as installed works on the previous
// schema, and the new function is left (nothing calls it once a newer release is rolled back).
export async function down(): Promise<void> {}
