import type { Kysely } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// Less PostgreSQL CPU per commit (docs/performance.md, "What a commit costs the database"):
// loyalty_iso is declared stable, as its body is, so the planner inlines it instead of parsing and
// planning it on every call; loyalty_commit_purchase takes the answer's held points from its balance
// update and skips the redeem step of an earn-only purchase; loyalty_take_points locks only the lots
// it takes from (it locked ten at a time). No schema change; the ledger functions are installed from
// src/modules/ledger/sql/ as the other ledger migrations do.

export async function up(db: Kysely<unknown>): Promise<void> {
  await installLedgerFunctions(db);
}

// The previous definitions are not kept; the current ones work on the previous schema.
export async function down(): Promise<void> {}
