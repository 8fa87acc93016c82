import pg from 'pg';

/** Replaces the database name in a connection string. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function onServer<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: withDatabase(url, 'postgres') });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Creates a database on the server of `url`, optionally as a copy of a template database and with a
 * C library locale of its own (which needs template0).
 */
export async function createDatabaseOn(
  url: string,
  name: string,
  template?: string,
  options: { locale?: string } = {},
): Promise<string> {
  const templateClause = template ? ` template ${quote(template)}` : '';
  const localeClause = options.locale
    ? ` encoding 'UTF8' locale_provider libc locale '${options.locale.replaceAll("'", "''")}'`
    : '';
  await onServer(url, (c) => c.query(`create database ${quote(name)}${templateClause}${localeClause}`));
  return withDatabase(url, name);
}

/** Drops a database on the server of `url`, closing its connections first. */
export async function dropDatabaseOn(url: string, name: string): Promise<void> {
  await onServer(url, (c) => c.query(`drop database if exists ${quote(name)} with (force)`));
}
