import { pipeline, Readable } from 'node:stream';
import { stringify } from 'csv-stringify';
import { stringify as stringifySync } from 'csv-stringify/sync';
import { sql } from 'kysely';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { containsText } from './portal.http.js';

// The merchant's purchases with filters, paged by a keyset cursor (created_at, id), and the same
// list as CSV. The cursor carries created_at as Postgres text with microseconds: a JS Date would
// round to milliseconds and skip or repeat rows that share one.

/** Filters of the transaction list and its CSV export. */
export interface TransactionFilters {
  merchantId: string;
  /** First day, inclusive (YYYY-MM-DD in timeZone). */
  from?: string;
  /** Last day, inclusive. */
  to?: string;
  timeZone?: string;
  outletId?: string;
  customerId?: string;
  status?: 'committed' | 'partially_refunded' | 'refunded';
  /** Part of the POS order id (case-insensitive). */
  q?: string;
}

/** One purchase in the list. */
export interface TransactionItem {
  id: string;
  orderId: string;
  customerId: string;
  customerPhone: string;
  outletId: string | null;
  outletName: string | null;
  total: number;
  discount: number;
  earnedPoints: number;
  redeemedPoints: number;
  refundedAmount: number;
  status: string;
  createdAt: Date;
}

interface Cursor {
  at: string;
  id: string;
}

function encodeCursor(cursor: Cursor): string {
  return Buffer.from(JSON.stringify([cursor.at, cursor.id])).toString('base64url');
}

function decodeCursor(value: string): Cursor {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
    if (
      Array.isArray(parsed) &&
      typeof parsed[0] === 'string' &&
      typeof parsed[1] === 'string' &&
      /^\d{4}-\d{2}-\d{2}T[\d:.]+Z$/.test(parsed[0]) &&
      /^[0-9a-f-]{36}$/.test(parsed[1])
    ) {
      return { at: parsed[0], id: parsed[1] };
    }
  } catch {
    // Falls through to the error below.
  }
  throw new AppError('validation_error', 'cursor: not a cursor this list returned', { field: 'cursor' });
}

function selectTransactions(db: Executor, filters: TransactionFilters) {
  const tz = filters.timeZone ?? 'UTC';
  let query = db
    .selectFrom('purchases as p')
    .innerJoin('customers as c', 'c.id', 'p.customer_id')
    .leftJoin('devices as d', 'd.id', 'p.device_id')
    .leftJoin('outlets as o', (join) => join.on(sql<boolean>`o.id = coalesce(p.outlet_id, d.outlet_id)`))
    .select([
      'p.id',
      'p.order_id as orderId',
      'p.customer_id as customerId',
      'c.phone as customerPhone',
      sql<string | null>`coalesce(p.outlet_id, d.outlet_id)`.as('outletId'),
      'o.name as outletName',
      'p.total',
      'p.discount',
      'p.earned_points as earnedPoints',
      'p.redeemed_points as redeemedPoints',
      'p.refunded_amount as refundedAmount',
      'p.status',
      'p.created_at as createdAt',
      sql<string>`to_char(p.created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`.as('cursorAt'),
    ])
    .where('p.merchant_id', '=', filters.merchantId);
  if (filters.from) {
    query = query.where(
      'p.created_at',
      '>=',
      sql<Date>`(${filters.from}::date)::timestamp at time zone ${tz}`,
    );
  }
  if (filters.to) {
    query = query.where(
      'p.created_at',
      '<',
      sql<Date>`(${filters.to}::date + 1)::timestamp at time zone ${tz}`,
    );
  }
  if (filters.outletId) {
    query = query.where(sql<boolean>`coalesce(p.outlet_id, d.outlet_id) = ${filters.outletId}`);
  }
  if (filters.customerId) query = query.where('p.customer_id', '=', filters.customerId);
  if (filters.status) query = query.where('p.status', '=', filters.status);
  if (filters.q) query = query.where(containsText('p.order_id', filters.q));
  return query.orderBy('p.created_at', 'desc').orderBy('p.id', 'desc');
}

async function fetchPage(
  db: Executor,
  filters: TransactionFilters,
  options: { limit: number; cursor?: Cursor },
): Promise<{ items: TransactionItem[]; next: Cursor | null }> {
  let query = selectTransactions(db, filters).limit(options.limit + 1);
  const cursor = options.cursor;
  if (cursor) {
    query = query.where(sql<boolean>`(p.created_at, p.id) < (${cursor.at}::timestamptz, ${cursor.id}::uuid)`);
  }
  const rows = await query.execute();
  const page = rows.slice(0, options.limit);
  const last = page.at(-1);
  const next = rows.length > options.limit && last ? { at: last.cursorAt, id: last.id } : null;
  return { items: page.map(({ cursorAt: _, ...item }) => item), next };
}

/** One page of the merchant's purchases, newest first; nextCursor is null on the last page. */
export async function listTransactions(
  db: Executor,
  filters: TransactionFilters & { limit: number; cursor?: string },
): Promise<{ items: TransactionItem[]; nextCursor: string | null }> {
  const { items, next } = await fetchPage(db, filters, {
    limit: filters.limit,
    cursor: filters.cursor ? decodeCursor(filters.cursor) : undefined,
  });
  return { items, nextCursor: next ? encodeCursor(next) : null };
}

const CSV_COLUMNS = [
  'id',
  'orderId',
  'createdAt',
  'customerId',
  'customerPhone',
  'outletId',
  'outletName',
  'total',
  'discount',
  'earnedPoints',
  'redeemedPoints',
  'refundedAmount',
  'status',
] as const satisfies ReadonlyArray<keyof TransactionItem>;

/** Text a person typed (order ids, outlet names) that a spreadsheet would run as a formula. */
const FORMULA_START = /^[=+\-@\t\r]/;
const FREE_TEXT_COLUMNS: ReadonlySet<string> = new Set(['orderId', 'outletName']);

function neutraliseFormula(text: string, isFreeText: boolean): string {
  return isFreeText && FORMULA_START.test(text) ? `'${text}` : text;
}

// RFC 4180 by csv-stringify: CRLF line ends, a field quoted when it holds a comma, quote, CR or LF.
// Free text starting like a formula gets a leading apostrophe (OWASP CSV injection); phones are
// not free text, so a phone's + stays.
const CSV_OPTIONS = {
  record_delimiter: 'windows',
  quoted_match: /[\r\n]/,
  cast: {
    date: (value: Date) => value.toISOString(),
    string: (value: string, context: { column?: number | string }) =>
      neutraliseFormula(value, typeof context.column === 'string' && FREE_TEXT_COLUMNS.has(context.column)),
  },
} as const;

/** One CSV field, quoted and neutralised as the export writes it. */
export function csvField(value: unknown, options: { isFreeText?: boolean } = {}): string {
  if (value === null || value === undefined) return '';
  const text = value instanceof Date ? value.toISOString() : String(value);
  return stringifySync([[neutraliseFormula(text, options.isFreeText ?? false)]], {
    ...CSV_OPTIONS,
    cast: { date: CSV_OPTIONS.cast.date },
    eof: false,
  });
}

async function* transactionPages(
  db: Executor,
  filters: TransactionFilters,
  pageSize: number,
): AsyncGenerator<TransactionItem> {
  let cursor: Cursor | undefined;
  for (;;) {
    const { items, next } = await fetchPage(db, filters, { limit: pageSize, cursor });
    yield* items;
    if (!next) return;
    cursor = next;
  }
}

/**
 * The filtered purchases as CSV: a UTF-8 BOM (so Excel reads Cyrillic), a header row, CRLF line
 * ends, amounts in minor units. A stream read page by page (keyset), each page written out before
 * the next is read: memory stays flat whatever the export's size.
 */
export function exportTransactionsCsv(
  db: Executor,
  filters: TransactionFilters,
  options: { pageSize?: number } = {},
): Readable {
  const rows = Readable.from(transactionPages(db, filters, options.pageSize ?? 1000));
  const csv = stringify({ ...CSV_OPTIONS, bom: true, header: true, columns: [...CSV_COLUMNS] });
  // A failed page read ends the file with an error instead of a silent, truncated export.
  pipeline(rows, csv, () => {});
  return csv.setEncoding('utf8');
}
