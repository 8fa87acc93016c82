import { type Kysely, sql } from 'kysely';

// Case-insensitive search (ILIKE) follows the collation of what it compares. Under a database
// created with the C locale (the embedded server before builtin C.UTF-8, or a production server
// made by others) ILIKE folds only ASCII letters, so `анна` never finds `Анна`. Searches compare
// under `loyalty_search` instead: a copy of the first Unicode-aware collation this server has
// (PostgreSQL 17+'s builtin pg_c_utf8, then ICU's root locale, then the C library's C.UTF-8).

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql
    .raw(`
do $$
declare
  source text;
begin
  select collname into source
  from pg_collation
  where collname in ('pg_c_utf8', 'und-x-icu', 'C.utf8', 'C.UTF-8')
    and collencoding in (-1, pg_char_to_encoding(getdatabaseencoding()))
  order by array_position(array['pg_c_utf8', 'und-x-icu', 'C.utf8', 'C.UTF-8'], collname::text)
  limit 1;
  if source is null then
    raise exception 'no Unicode-aware collation on this server (pg_c_utf8, und-x-icu or C.utf8): '
      'case-insensitive search of non-Latin names needs PostgreSQL 17+, ICU or a C.UTF-8 locale';
  end if;
  execute format('create collation loyalty_search from %I', source);
end
$$;
`)
    .execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql.raw('drop collation if exists loyalty_search').execute(db);
}
