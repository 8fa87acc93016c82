import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/** A value of one COPY text-format field: null becomes \N, dates ISO 8601, text escaped. */
export type CopyValue = string | number | boolean | Date | null;

function field(value: CopyValue): string {
  if (value === null) return '\\N';
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'string')
    return /[\\\t\n\r]/.test(value) ? value.replace(/[\\\t\n\r]/g, escapeChar) : value;
  return String(value);
}

function escapeChar(ch: string): string {
  return ch === '\\' ? '\\\\' : ch === '\t' ? '\\t' : ch === '\n' ? '\\n' : '\\r';
}

const FLUSH_AT = 256 * 1024;

/**
 * One table loaded with `COPY ... FROM STDIN` on its own connection, inside a transaction that
 * commits only when every table of the load is written (commit()), so a failed load leaves nothing.
 * With `skipTriggers`, foreign keys are not checked row by row (session_replication_role = replica,
 * superuser only): the tables of one load are written in parallel and their rows name each other.
 */
export class CopyTable {
  rows = 0;
  private buffer = '';
  private stream: Writable | null = null;

  private constructor(
    readonly table: string,
    private readonly client: pg.Client,
  ) {}

  static async open(
    connectionString: string,
    table: string,
    columns: readonly string[],
    options: { skipTriggers?: boolean } = {},
  ): Promise<CopyTable> {
    const client = new pg.Client({ connectionString, application_name: `bench-data:${table}` });
    await client.connect();
    await client.query('begin');
    if (options.skipTriggers) await client.query("set local session_replication_role = 'replica'");
    const copy = new CopyTable(table, client);
    copy.stream = client.query(copyFrom(`copy ${table} (${columns.join(', ')}) from stdin`));
    return copy;
  }

  /** Queues one row; call flush() now and then so the buffer reaches the server. */
  push(values: readonly CopyValue[]): void {
    this.buffer += `${values.map(field).join('\t')}\n`;
    this.rows += 1;
  }

  /** Writes the buffer when it is big enough (or always, with force), waiting while the socket is full. */
  async flush(force = false): Promise<void> {
    if (!this.stream || (!force && this.buffer.length < FLUSH_AT) || this.buffer.length === 0) return;
    const chunk = this.buffer;
    this.buffer = '';
    if (!this.stream.write(chunk)) await once(this.stream, 'drain');
  }

  /** Ends the COPY (the rows are in, not yet committed). */
  async end(): Promise<void> {
    await this.flush(true);
    const stream = this.stream;
    if (!stream) return;
    stream.end();
    await finished(stream);
  }

  async commit(): Promise<void> {
    await this.client.query('commit');
    await this.client.end();
  }

  async abort(): Promise<void> {
    this.stream?.destroy();
    await this.client.query('rollback').catch(() => {});
    await this.client.end().catch(() => {});
  }
}
