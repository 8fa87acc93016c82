import type { Kysely } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// Group commit's set-based part takes purchases with campaign points too: a plain purchase's
// campaign lines are granted with loyalty_grant_campaign's checks, their lots, entries, budget
// counters, grant counts and bonus.granted events written with one statement per table for the
// whole batch (loyalty_commit_plain_purchases). No schema change; the ledger functions are installed
// from src/modules/ledger/sql/ as the other ledger migrations do.

export async function up(db: Kysely<unknown>): Promise<void> {
  await installLedgerFunctions(db);
}

// The previous definitions are not kept: the ones installed answer the previous schema alike.
export async function down(): Promise<void> {}
