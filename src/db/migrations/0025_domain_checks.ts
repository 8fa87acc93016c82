import { type Kysely, sql } from 'kysely';
import { installLedgerFunctions } from '../../modules/ledger/ledger.sql.js';

// One-column CHECK constraints of the tables a purchase, a redeem or a refund writes become domains
// (docs/performance.md, "CHECK constraints as domains"). PostgreSQL reads a table's CHECK
// constraints from their stored text again for every statement that writes the table (parse, then
// plan): 23 of them per earn-only commit, 29% of the commit function's instructions. A domain's
// constraints are parsed once per connection and kept with the type. What each column accepts does
// not change, so the previous release runs on this schema (decision 003).
//
// Without a long lock on the hot tables: a column changes to a domain over its own type without a
// table rewrite, and each domain's constraint is added NOT VALID, since the table constraint it
// replaces held for every row until now (only new values are checked; nothing is scanned). A check
// over two columns (purchases' discount <= total, point_lots' remaining <= points, ...) that names a
// changed column would be checked again over the whole table when PostgreSQL re-creates it after
// the type change: it is dropped first and added back as it was, NOT VALID, for the same reason.
// point_lots.state and lot_moves.kind keep their table checks: indexes name them in their
// predicates, and PostgreSQL builds such an index again when the column's type changes. Seconds at
// 10^6 customers otherwise, while commits wait; as done here 0.4 s (docs/performance.md).
// The customer_balances view reads balances' columns, so it is dropped and created again as it was.

/** Each domain: its base type, its check (on `value`), and the columns that take it. */
export const DOMAINS: ReadonlyArray<{
  name: string;
  base: 'bigint' | 'text';
  /** The check on a value, written for `value` (the domain) or a column name (the table). */
  check: (value: string) => string;
  columns: ReadonlyArray<{ table: string; column: string; constraint: string }>;
}> = [
  {
    name: 'loyalty_points',
    base: 'bigint',
    check: (v) => `${v} >= 0`,
    columns: [
      { table: 'balances', column: 'available', constraint: 'balances_available_check' },
      { table: 'balances', column: 'pending', constraint: 'balances_pending_check' },
      { table: 'balances', column: 'held', constraint: 'balances_held_check' },
      { table: 'purchases', column: 'earned_points', constraint: 'purchases_earned_points_check' },
      { table: 'purchases', column: 'redeemed_points', constraint: 'purchases_redeemed_points_check' },
      { table: 'refunds', column: 'returned_points', constraint: 'refunds_returned_points_check' },
      { table: 'refunds', column: 'revoked_points', constraint: 'refunds_revoked_points_check' },
      { table: 'refunds', column: 'unrecovered_points', constraint: 'refunds_unrecovered_points_check' },
    ],
  },
  {
    name: 'loyalty_points_change',
    base: 'bigint',
    check: (v) => `${v} <> 0`,
    columns: [
      { table: 'ledger_entries', column: 'points', constraint: 'ledger_entries_points_check' },
      { table: 'lot_moves', column: 'points', constraint: 'lot_moves_points_check' },
    ],
  },
  {
    name: 'loyalty_amount',
    base: 'bigint',
    check: (v) => `${v} >= 0`,
    columns: [
      { table: 'purchases', column: 'total', constraint: 'purchases_total_check' },
      { table: 'purchases', column: 'refunded_eligible', constraint: 'purchases_refunded_eligible_check' },
    ],
  },
  {
    name: 'loyalty_amount_positive',
    base: 'bigint',
    check: (v) => `${v} > 0`,
    columns: [{ table: 'refunds', column: 'amount', constraint: 'refunds_amount_check' }],
  },
  {
    name: 'loyalty_points_positive',
    base: 'bigint',
    check: (v) => `${v} > 0`,
    columns: [{ table: 'point_lots', column: 'points', constraint: 'point_lots_points_check' }],
  },
  {
    name: 'loyalty_order_id',
    base: 'text',
    check: (v) => `length(${v}) >= 1 and length(${v}) <= 128`,
    columns: [{ table: 'purchases', column: 'order_id', constraint: 'purchases_order_id_check' }],
  },
  {
    name: 'loyalty_purchase_status',
    base: 'text',
    check: (v) => `${v} in ('committed', 'partially_refunded', 'refunded')`,
    columns: [{ table: 'purchases', column: 'status', constraint: 'purchases_status_check' }],
  },
  {
    name: 'loyalty_lot_source',
    base: 'text',
    check: (v) => `${v} in ('earn', 'return', 'adjust', 'bonus')`,
    columns: [{ table: 'point_lots', column: 'source', constraint: 'point_lots_source_check' }],
  },
  {
    name: 'loyalty_entry_bucket',
    base: 'text',
    check: (v) => `${v} in ('available', 'pending', 'held')`,
    columns: [{ table: 'ledger_entries', column: 'bucket', constraint: 'ledger_entries_bucket_check' }],
  },
  {
    name: 'loyalty_entry_kind',
    base: 'text',
    check: (v) =>
      `${v} in ('earn', 'redeem', 'refund_return', 'refund_revoke', 'expire', 'activate', 'adjust', 'bonus', 'hold', 'release')`,
    columns: [{ table: 'ledger_entries', column: 'kind', constraint: 'ledger_entries_kind_check' }],
  },
  {
    name: 'loyalty_outbox_status',
    base: 'text',
    check: (v) => `${v} in ('pending', 'processing', 'delivered', 'dead')`,
    columns: [{ table: 'outbox_events', column: 'status', constraint: 'outbox_events_status_check' }],
  },
  {
    name: 'loyalty_outbox_target',
    base: 'text',
    check: (v) => `${v} in ('webhook', 'telegram_customer', 'telegram_staff')`,
    columns: [{ table: 'outbox_events', column: 'target', constraint: 'outbox_events_target_check' }],
  },
  {
    name: 'loyalty_customer_code',
    base: 'text',
    check: (v) => `${v} ~ '^[0-9]{6}$'`,
    columns: [{ table: 'customer_codes', column: 'code', constraint: 'customer_codes_code_check' }],
  },
];

/** A column that takes a domain, with the table check the domain replaces. */
interface DomainColumn {
  column: string;
  constraint: string;
  domain: (typeof DOMAINS)[number];
}

/** The columns of each table, so that each table is altered by one statement. */
function byTable(): Map<string, DomainColumn[]> {
  const tables = new Map<string, DomainColumn[]>();
  for (const domain of DOMAINS) {
    for (const { table, column, constraint } of domain.columns) {
      const list = tables.get(table) ?? [];
      list.push({ column, constraint, domain });
      tables.set(table, list);
    }
  }
  return tables;
}

/** The other CHECK constraints of a table that name one of these columns: name and definition. */
async function checksNaming(
  db: Kysely<unknown>,
  table: string,
  columns: ReadonlyArray<{ column: string; constraint: string }>,
): Promise<Array<{ name: string; definition: string }>> {
  const { rows } = await sql<{ name: string; definition: string }>`
    select c.conname as name, pg_get_constraintdef(c.oid) as definition
    from pg_constraint c
    where c.conrelid = ${table}::regclass and c.contype = 'c'
      and c.conname <> all(${columns.map((c) => c.constraint)}::text[])
      and c.conkey && array(select a.attnum from pg_attribute a
                            where a.attrelid = c.conrelid and a.attname = any(${columns.map((c) => c.column)}::text[]))
    order by c.conname`.execute(db);
  return rows;
}

/** Runs `change` with the customer_balances view dropped, then creates it again as it was. */
async function withoutBalancesView(db: Kysely<unknown>, change: () => Promise<void>): Promise<void> {
  const { rows } = await sql<{ definition: string }>`
    select pg_get_viewdef('customer_balances'::regclass) as definition`.execute(db);
  const definition = rows[0]?.definition;
  if (!definition) throw new Error('customer_balances: view definition not found');
  await sql`drop view customer_balances`.execute(db);
  await change();
  await sql.raw(`create view customer_balances as ${definition}`).execute(db);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await withoutBalancesView(db, async () => {
    for (const domain of DOMAINS) {
      await sql.raw(`create domain ${domain.name} as ${domain.base}`).execute(db);
    }
    for (const [table, columns] of byTable()) {
      const others = await checksNaming(db, table, columns);
      const drops = [...others.map((c) => c.name), ...columns.map((c) => c.constraint)];
      const changes = columns.map((c) => `alter column ${c.column} type ${c.domain.name}`);
      await sql
        .raw(
          `alter table ${table} ${[...drops.map((name) => `drop constraint ${name}`), ...changes].join(', ')}`,
        )
        .execute(db);
      for (const { name, definition } of others) {
        await sql.raw(`alter table ${table} add constraint ${name} ${definition} not valid`).execute(db);
      }
    }
    for (const domain of DOMAINS) {
      await sql
        .raw(
          `alter domain ${domain.name} add constraint ${domain.name}_check check (${domain.check('value')}) not valid`,
        )
        .execute(db);
    }
  });
  await installLedgerFunctions(db);
}

// Back to table constraints under their old names; the functions work on either schema.
export async function down(db: Kysely<unknown>): Promise<void> {
  await withoutBalancesView(db, async () => {
    for (const [table, columns] of byTable()) {
      const changes = columns.map((c) => `alter column ${c.column} type ${c.domain.base}`);
      const adds = columns.map((c) => `add constraint ${c.constraint} check (${c.domain.check(c.column)})`);
      await sql.raw(`alter table ${table} ${[...changes, ...adds].join(', ')}`).execute(db);
    }
    for (const domain of DOMAINS) {
      await sql.raw(`drop domain ${domain.name}`).execute(db);
    }
  });
}
