import type { Kysely } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// The hot reads' plans stay index scans however small their tables were when a connection planned
// them (docs/performance.md, "Plans cached while a table was small"): loyalty_idempotency_find and
// loyalty_customer_state run with enable_seqscan = off. No schema change; the ledger functions are
// installed from src/modules/ledger/sql/ as the other ledger migrations do.

export async function up(db: Kysely<unknown>): Promise<void> {
  await installLedgerFunctions(db);
}

// The previous definitions are not kept; the current ones work on the previous schema.
export async function down(): Promise<void> {}
