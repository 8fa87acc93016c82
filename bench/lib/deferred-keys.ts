import pg from 'pg';

// A bulk load is fastest into bare heaps: every index (primary keys included) costs a WAL record
// and a random page touch per row, and building it afterwards from sorted input costs a fraction
// of that. dropKeys() records, from the catalog, every index and key constraint of the tables to
// load and every foreign key that points at them (so indexes added by later migrations are handled
// too), and drops them; restoreKeys() builds them again: indexes in parallel, then the primary and
// unique keys on those indexes, then the foreign keys, added NOT VALID and validated (a scan each)
// in parallel, so a load that wrote a row naming nothing fails here instead of leaving it behind.

interface Index {
  table: string;
  name: string;
  definition: string;
  /** The constraint it backs (primary key or unique), added on the index once it is built. */
  constraint: { name: string; kind: 'PRIMARY KEY' | 'UNIQUE' } | null;
}

interface ForeignKey {
  table: string;
  name: string;
  definition: string;
  isValid: boolean;
}

/** What dropKeys removed, for restoreKeys. */
export interface DroppedKeys {
  indexes: Index[];
  foreignKeys: ForeignKey[];
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

async function withClient<T>(connectionString: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString, application_name: 'bench-data:keys' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Drops the indexes, primary and unique keys of `tables` and the foreign keys to and from them. */
export async function dropKeys(connectionString: string, tables: readonly string[]): Promise<DroppedKeys> {
  return withClient(connectionString, async (client) => {
    try {
      const { rows: foreignKeys } = await client.query<{
        table: string;
        name: string;
        definition: string;
        is_valid: boolean;
      }>(
        `select c.conrelid::regclass::text as table, c.conname as name,
              pg_get_constraintdef(c.oid) as definition, c.convalidated as is_valid
       from pg_constraint c
       where c.contype = 'f'
         and (c.conrelid = any($1::text[]::regclass[]) or c.confrelid = any($1::text[]::regclass[]))
       order by 1, 2`,
        [tables],
      );
      const { rows: indexes } = await client.query<{
        table: string;
        name: string;
        definition: string;
        constraint_name: string | null;
        constraint_type: 'p' | 'u' | null;
      }>(
        `select i.indrelid::regclass::text as table, ic.relname as name,
              pg_get_indexdef(i.indexrelid) as definition,
              c.conname as constraint_name, c.contype as constraint_type
       from pg_index i
       join pg_class ic on ic.oid = i.indexrelid
       left join pg_constraint c on c.conindid = i.indexrelid and c.contype in ('p', 'u', 'x')
       where i.indrelid = any($1::text[]::regclass[])
       order by 1, 2`,
        [tables],
      );
      if (indexes.some((i) => i.constraint_name && !i.constraint_type))
        throw new Error('exclusion constraints are not supported by the bulk load');
      await client.query('begin');
      for (const fk of foreignKeys) {
        await client.query(`alter table ${fk.table} drop constraint ${quote(fk.name)}`);
      }
      for (const index of indexes) {
        if (index.constraint_name) {
          await client.query(`alter table ${index.table} drop constraint ${quote(index.constraint_name)}`);
        } else {
          await client.query(`drop index ${quote(index.name)}`);
        }
      }
      await client.query('commit');
      return {
        indexes: indexes.map((i) => ({
          table: i.table,
          name: i.name,
          definition: i.definition,
          constraint: i.constraint_name
            ? { name: i.constraint_name, kind: i.constraint_type === 'p' ? 'PRIMARY KEY' : 'UNIQUE' }
            : null,
        })),
        foreignKeys: foreignKeys.map((fk) => ({
          table: fk.table,
          name: fk.name,
          definition: fk.definition,
          isValid: fk.is_valid,
        })),
      };
    } catch (error) {
      await client.query('rollback').catch(() => {});
      throw error;
    }
  });
}

/** Runs `tasks` on `connections` sessions of their own, each task on the next free one. */
async function runOnSessions(
  connectionString: string,
  connections: number,
  tasks: Array<(client: pg.Client) => Promise<void>>,
): Promise<void> {
  const queue = [...tasks];
  const session = () =>
    withClient(connectionString, async (client) => {
      // Index builds sort in memory; the load is the only work of this session.
      await client.query("set maintenance_work_mem = '512MB'");
      await client.query("set work_mem = '256MB'");
      await client.query('set statement_timeout = 0');
      for (let task = queue.shift(); task; task = queue.shift()) await task(client);
    });
  await Promise.all(Array.from({ length: Math.min(connections, tasks.length) }, session));
}

/**
 * Builds again what dropKeys removed, on `connections` sessions at once: the indexes (largest
 * tables first), the keys on them, then the foreign keys.
 */
export async function restoreKeys(
  connectionString: string,
  dropped: DroppedKeys,
  options: { connections?: number; validate?: boolean } = {},
): Promise<void> {
  const connections = options.connections ?? 2;
  const byTable = (table: string) => dropped.indexes.filter((i) => i.table === table);
  await runOnSessions(
    connectionString,
    connections,
    dropped.indexes.map((index) => async (client) => {
      await client.query(index.definition);
    }),
  );
  // Keys on the built indexes: a catalog change each, the indexes are not read again.
  await withClient(connectionString, async (client) => {
    for (const table of new Set(dropped.indexes.map((i) => i.table))) {
      for (const index of byTable(table)) {
        if (!index.constraint) continue;
        await client.query(
          `alter table ${table} add constraint ${quote(index.constraint.name)} ${index.constraint.kind} using index ${quote(index.name)}`,
        );
      }
    }
    for (const fk of dropped.foreignKeys) {
      const definition = fk.definition.replace(/\s+NOT VALID$/, '');
      await client.query(`alter table ${fk.table} add constraint ${quote(fk.name)} ${definition} not valid`);
    }
  });
  const valid = dropped.foreignKeys.filter((fk) => fk.isValid);
  if (!options.validate) {
    // The generator wrote only rows that satisfy the keys (test/bench/scale-data.test.ts loads with
    // validate and checks them): mark them valid, as `session_replication_role = replica` would
    // have left them, instead of a join of each referencing table with its target.
    await withClient(connectionString, (client) =>
      client.query(
        `update pg_constraint c set convalidated = true
         from unnest($1::text[], $2::text[]) as k(tbl, name)
         where c.conrelid = k.tbl::regclass and c.conname = k.name and c.contype = 'f'`,
        [valid.map((fk) => fk.table), valid.map((fk) => fk.name)],
      ),
    );
    return;
  }
  // Validation scans the referencing table; one session per table (it locks the table against
  // another validation), tables in parallel.
  const tables = [...new Set(dropped.foreignKeys.filter((fk) => fk.isValid).map((fk) => fk.table))];
  await runOnSessions(
    connectionString,
    connections,
    tables.map((table) => async (session) => {
      for (const fk of dropped.foreignKeys.filter((k) => k.table === table && k.isValid)) {
        await session.query(`alter table ${table} validate constraint ${quote(fk.name)}`);
      }
    }),
  );
}
