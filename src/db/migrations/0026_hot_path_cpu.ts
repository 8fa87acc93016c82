import type { Kysely } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// Less PostgreSQL CPU on the hot path (docs/performance.md, "Plans for regulars" and "Group commit's
// answers"): the API's per-customer ledger functions (the customer read, the idempotency lookup, the
// commit, refund, holds and adjustments) run with plan_cache_mode = force_generic_plan, one plan per
// connection, where PostgreSQL planned the customer read again on every call once regulars were among
// the statistics' most common values; loyalty_commit_purchases gathers its answers in an array and
// makes one jsonb of them at the end, where appending each to a jsonb array copied every answer
// before it. No schema change; the ledger functions are installed from src/modules/ledger/sql/ as the
// other ledger migrations do.

export async function up(db: Kysely<unknown>): Promise<void> {
  await installLedgerFunctions(db);
}

// The previous definitions are not kept; the current ones work on the previous schema.
export async function down(): Promise<void> {}
