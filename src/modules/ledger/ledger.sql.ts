import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Kysely, sql } from 'kysely';

// The ledger's stored functions live as SQL source beside this module (./sql/<name>.sql, one
// `create or replace function` each), so they are read and reviewed where they are used. The
// migrations that change them install the current files (0006_ledger_provenance, 0011_campaigns, 0012_write_path,
// 0015_enrollment, 0016_holds, 0017_hot_path, 0022_commit_cpu, 0026_hot_path_cpu, 0028_set_based_commit,
// 0029_deleted_customer_answers, 0030_set_based_redeem, 0031_set_based_campaign_points,
// 0032_customer_keys, 0033_set_based_hold_purchases, 0034_plans_by_key); ledger.sql.test.ts checks that the functions in the database equal these files.

/** Every ledger function, in install order (helpers before their callers). */
export const LEDGER_FUNCTIONS = [
  'loyalty_iso',
  'loyalty_uuidv7',
  'loyalty_pro_rata',
  'loyalty_balance_json',
  'loyalty_purchase_answer',
  'loyalty_idempotency_find',
  'loyalty_customer_state',
  'loyalty_idempotency_begin',
  'loyalty_entry',
  'loyalty_move',
  'loyalty_take_points',
  'loyalty_add_points',
  'loyalty_expire_customer',
  'loyalty_land_points',
  'loyalty_settle_debts',
  'loyalty_hold_answer',
  'loyalty_release_hold',
  'loyalty_release_holds',
  'loyalty_use_hold',
  'loyalty_take_hold_points',
  'loyalty_grant_campaign',
  'loyalty_grant_campaigns',
  'loyalty_grant_bonus',
  'loyalty_grant_occasion',
  'loyalty_grant_referral',
  'loyalty_commit_purchase',
  'loyalty_plain_purchase',
  'loyalty_commit_plain_purchases',
  'loyalty_commit_purchases',
  'loyalty_refund_purchase',
  'loyalty_adjust_points',
  'loyalty_expire_points',
  'loyalty_activate_points',
  'loyalty_create_hold',
  'loyalty_cancel_hold',
  'loyalty_release_expired_holds',
] as const;

/** One of the ledger's stored functions. */
export type LedgerFunction = (typeof LEDGER_FUNCTIONS)[number];

// From a build (dist/modules/ledger) the sources are read from src/, which ships beside dist/.
const DIRECTORIES = [
  new URL('./sql/', import.meta.url),
  new URL('../../../src/modules/ledger/sql/', import.meta.url),
];

/** The source of a ledger function: its `create or replace function` statement. */
export function readLedgerFunction(name: LedgerFunction): string {
  for (const directory of DIRECTORIES) {
    const file = fileURLToPath(new URL(`${name}.sql`, directory));
    if (existsSync(file)) return readFileSync(file, 'utf8');
  }
  throw new Error(`ledger function source ${name}.sql not found`);
}

/** Installs every ledger function from its source, as each migration that changes one does. */
export async function installLedgerFunctions(db: Kysely<unknown>): Promise<void> {
  for (const name of LEDGER_FUNCTIONS) {
    await sql.raw(readLedgerFunction(name)).execute(db);
  }
}

/** The body of a function's source, between its `$fn$` quotes, as PostgreSQL stores it (prosrc). */
export function functionBody(source: string): string {
  const start = source.indexOf('$fn$');
  const end = source.lastIndexOf('$fn$');
  if (start < 0 || end <= start) throw new Error('function source without a $fn$ body');
  return source.slice(start + 4, end);
}
