import { type Kysely, sql } from 'kysely';

// Foreign keys the ledger's writes do not need (decision 005, docs/performance.md). Every insert
// checked each of them with a row lock on the row it names: the merchant's row ten times per
// purchase and the outlet's once, rows every till of the merchant locks at the same moment (a
// multixact per lock, a WAL record each, and a queue on one hot page), and the purchase and lot the
// same transaction had just inserted. What they guaranteed is kept another way:
// - merchant_id of purchases, point_lots, ledger_entries and holds: each row also names its
//   customer, whose foreign key is kept, and the ledger functions write only the customer's own
//   merchant (the balance row they lock is found by customer and merchant). Deleting a merchant
//   still removes them: it cascades to its customers, and from them to these rows.
// - merchant_id of outbox_events (no customer): deleting a merchant deletes its events by trigger.
// - purchase_id and lot_id of lots and entries: written in the same transaction as the row they
//   name, by the same function; they go with their customer.
// - outlet_id, device_id and manager_id of purchases and holds: checked against the merchant by
//   every POS request (assertContext); deleting an outlet, device or manager that a purchase or
//   hold names is refused by trigger, as the foreign key's NO ACTION did (refunds keep theirs).
// Expand only (decision 003): the previous release writes the same rows and reads nothing else.

/** [table, column, the table it named, whether deleting that row deleted this one] */
const DROPPED: Array<[table: string, column: string, references: string, cascade: boolean]> = [
  ['purchases', 'merchant_id', 'merchants', true],
  ['purchases', 'outlet_id', 'outlets', false],
  ['purchases', 'device_id', 'devices', false],
  ['purchases', 'manager_id', 'managers', false],
  ['point_lots', 'merchant_id', 'merchants', true],
  ['point_lots', 'purchase_id', 'purchases', true],
  ['ledger_entries', 'merchant_id', 'merchants', true],
  ['ledger_entries', 'purchase_id', 'purchases', true],
  ['ledger_entries', 'lot_id', 'point_lots', true],
  ['holds', 'merchant_id', 'merchants', true],
  ['holds', 'outlet_id', 'outlets', false],
  ['holds', 'device_id', 'devices', false],
  ['holds', 'manager_id', 'managers', false],
  ['outbox_events', 'merchant_id', 'merchants', true],
];

/** Drops the single-column foreign key of table.column, whatever its name. */
export async function dropForeignKey(db: Kysely<unknown>, table: string, column: string): Promise<void> {
  const { rows } = await sql<{ name: string }>`
    select c.conname as name
    from pg_constraint c
    join pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
    where c.contype = 'f' and c.conrelid = ${table}::regclass and cardinality(c.conkey) = 1
      and a.attname = ${column}
  `.execute(db);
  for (const { name } of rows) {
    await sql`alter table ${sql.table(table)} drop constraint ${sql.id(name)}`.execute(db);
  }
}

export async function up(db: Kysely<unknown>): Promise<void> {
  for (const [table, column] of DROPPED) await dropForeignKey(db, table, column);
  await sql
    .raw(`
create or replace function merchants_delete_events_fn() returns trigger language plpgsql as $fn$
begin
  delete from outbox_events where merchant_id = old.id;
  return old;
end $fn$;
create trigger merchants_delete_events after delete on merchants
  for each row execute function merchants_delete_events_fn();

-- TG_ARGV[0]: the column of purchases and holds that names the deleted row. A constraint trigger
-- runs at the end of the statement, as the foreign key's NO ACTION check did.
create or replace function pos_member_delete_check_fn() returns trigger language plpgsql as $fn$
declare
  v_used boolean;
begin
  -- Deleting the merchant removes its purchases and holds too, in the same statement.
  if not exists (select 1 from merchants where id = old.merchant_id) then return old; end if;
  execute format('select exists (select 1 from purchases where merchant_id = $1 and %1$I = $2)
                  or exists (select 1 from holds where merchant_id = $1 and %1$I = $2)', tg_argv[0])
    into v_used using old.merchant_id, old.id;
  if v_used then
    raise exception 'update or delete on table "%" violates a reference from purchases or holds', tg_table_name
      using errcode = 'foreign_key_violation';
  end if;
  return old;
end $fn$;
create constraint trigger outlets_delete_referenced after delete on outlets
  for each row execute function pos_member_delete_check_fn('outlet_id');
create constraint trigger devices_delete_referenced after delete on devices
  for each row execute function pos_member_delete_check_fn('device_id');
create constraint trigger managers_delete_referenced after delete on managers
  for each row execute function pos_member_delete_check_fn('manager_id');
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
drop trigger if exists merchants_delete_events on merchants;
drop trigger if exists outlets_delete_referenced on outlets;
drop trigger if exists devices_delete_referenced on devices;
drop trigger if exists managers_delete_referenced on managers;
drop function if exists merchants_delete_events_fn();
drop function if exists pos_member_delete_check_fn();
`)
    .execute(db);
  // Back as NOT VALID: rows written meanwhile are not checked, new rows are.
  for (const [table, column, references, cascade] of DROPPED) {
    await sql
      .raw(
        `alter table ${table} add foreign key (${column}) references ${references} (id)` +
          `${cascade ? ' on delete cascade' : ''} not valid`,
      )
      .execute(db);
  }
}
