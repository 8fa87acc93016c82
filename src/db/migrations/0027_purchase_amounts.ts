import { type Kysely, sql } from 'kysely';

// The purchase's eligible amount, discount and refunded amount take the loyalty_amount domain
// (value >= 0), so their two-column checks keep only what needs two columns (docs/performance.md,
// "The purchase's amounts as domains": PostgreSQL parses a table's CHECK constraints again for every
// statement that writes the table; the domain's check is parsed once per connection). What each
// column accepts does not change, so the previous release runs on this schema (decision 003).
//
// Without a long lock on purchases, as 0025 did it: a column changes to a domain over its own type
// without a rewrite only when the domain has no constraint at that moment, so loyalty_amount's
// check is dropped and added back NOT VALID around the type change, in this migration's one
// transaction (every value it covered held it, and the new columns' values held the table checks'
// `>= 0`); the slimmer two-column checks are added NOT VALID for the same reason.

/** Each changed column with its two-column check: the old definition and the new one. */
export const PURCHASE_AMOUNTS = [
  {
    column: 'eligible_amount',
    constraint: 'purchases_check',
    before: '(eligible_amount >= 0 and eligible_amount <= total)',
    after: '(eligible_amount <= total)',
  },
  {
    column: 'discount',
    constraint: 'purchases_check1',
    before: '(discount >= 0 and discount <= total)',
    after: '(discount <= total)',
  },
  {
    column: 'refunded_amount',
    constraint: 'purchases_check2',
    before: '(refunded_amount >= 0 and refunded_amount <= total)',
    after: '(refunded_amount <= total)',
  },
] as const;

/** Changes the columns' type and puts `definition` of each check in place of the current one. */
async function retype(db: Kysely<unknown>, type: string, definition: 'before' | 'after'): Promise<void> {
  const drops = PURCHASE_AMOUNTS.map((a) => `drop constraint ${a.constraint}`);
  const changes = PURCHASE_AMOUNTS.map((a) => `alter column ${a.column} type ${type}`);
  const adds = PURCHASE_AMOUNTS.map((a) => `add constraint ${a.constraint} check ${a[definition]} not valid`);
  await sql.raw(`alter table purchases ${[...drops, ...changes].join(', ')}`).execute(db);
  await sql.raw(`alter table purchases ${adds.join(', ')}`).execute(db);
}

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`alter domain loyalty_amount drop constraint loyalty_amount_check`.execute(db);
  await retype(db, 'loyalty_amount', 'after');
  await sql`alter domain loyalty_amount add constraint loyalty_amount_check check (value >= 0) not valid`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await retype(db, 'bigint', 'before');
}
