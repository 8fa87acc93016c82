import { sql } from 'kysely';
import { type Database, prepared } from '../../db/database.js';
import { Coalescer, type CoalescerOptions, type Settled } from '../../lib/coalescer.js';
import {
  type CustomerRef,
  type CustomerState,
  customerStateQuery,
  findCustomerState,
} from '../customers/customers.service.js';

// The reads of the POS hot path, batched (GROUP_READS): every resolve, quote and commit starts with
// one statement that finds the customer (and, for a commit by id or phone, the answer of an earlier
// request with its Idempotency-Key). Concurrent ones run together as one statement and one round
// trip (src/lib/coalescer.ts): PostgreSQL parses, plans and starts one statement for many reads
// (docs/performance.md, "Batched reads"). Alone, a read runs at once.

/** A customer named by a POS, with what its tier needs. */
export interface CustomerStateRequest {
  merchantId: string;
  ref: CustomerRef;
  tierWindowDays: number | null;
}

/** A commit's first read: the customer, unless the Idempotency-Key already has an answer. */
export interface ReplayOrCustomerRequest extends CustomerStateRequest {
  key: string;
}

type Nullable<T> = { [K in keyof T]: T[K] | null };

/** The stored answer of the key (request_hash set) or the customer (id null: no such customer). */
export type ReplayOrCustomerRow = { request_hash: string | null; result: unknown } & Nullable<CustomerState>;

/**
 * Batches of at most this many reads; at most `inFlight` statements of each kind at once (the
 * API sets it from GROUP_READS_IN_FLIGHT).
 */
export const READ_BATCH: CoalescerOptions = { maxBatch: 32, inFlight: 1 };

/** The batched readers of one API process. */
export class IntegrationReads {
  readonly customers: Coalescer<CustomerStateRequest, CustomerState | null>;
  readonly replays: Coalescer<ReplayOrCustomerRequest, ReplayOrCustomerRow | null>;

  constructor(db: Database, options: CoalescerOptions = READ_BATCH) {
    this.customers = new Coalescer(
      {
        one: (request) => findCustomerState(db, request),
        many: (requests) => customerStates(db, requests),
      },
      options,
    );
    this.replays = new Coalescer(
      {
        one: (request) => readReplayOrCustomer(db, request),
        many: (requests) => replaysOrCustomers(db, requests),
      },
      options,
    );
  }
}

/** One statement: the key's stored answer or, when the key is unused, the customer's state. */
export async function readReplayOrCustomer(
  db: Database,
  request: ReplayOrCustomerRequest,
): Promise<ReplayOrCustomerRow | null> {
  const { rows } = await prepared(sql<ReplayOrCustomerRow>`
    select f.request_hash, f.result, s.*
    from loyalty_idempotency_find(${request.merchantId}, ${request.key}) f
      left join lateral (${customerStateQuery(request)}) s on f.request_hash is null`).execute(db);
  return rows[0] ?? null;
}

/** The arguments of loyalty_customer_state (and the key, for a commit's read) of one request. */
function readArguments(request: CustomerStateRequest & { key?: string }) {
  const { merchantId, ref, tierWindowDays, key } = request;
  return {
    merchantId,
    customerId: 'customerId' in ref ? ref.customerId : null,
    phone: 'phone' in ref ? ref.phone : null,
    code: 'code' in ref ? ref.code : null,
    tierWindowDays,
    key: key ?? null,
  };
}

/** The requests as rows `e` (`e.v` the arguments, `e.ord` from 1), and the customer state of each. */
function batchSource(requests: (CustomerStateRequest & { key?: string })[]) {
  return {
    rows: sql`jsonb_array_elements(${JSON.stringify(requests.map(readArguments))}::jsonb) with ordinality as e(v, ord)`,
    state: sql`loyalty_customer_state((e.v->>'merchantId')::uuid, (e.v->>'customerId')::uuid,
      e.v->>'phone', e.v->>'code', (e.v->>'tierWindowDays')::integer)`,
  };
}

async function customerStates(
  db: Database,
  requests: CustomerStateRequest[],
): Promise<Settled<CustomerState | null>[]> {
  const { rows, state } = batchSource(requests);
  const result = await prepared(sql<CustomerState & { i: number }>`
    select (e.ord - 1)::int as i, s.* from ${rows} cross join lateral ${state} s`).execute(db);
  return settledByIndex(requests.length, result.rows, ({ i, ...customer }) => customer);
}

async function replaysOrCustomers(
  db: Database,
  requests: ReplayOrCustomerRequest[],
): Promise<Settled<ReplayOrCustomerRow | null>[]> {
  const { rows, state } = batchSource(requests);
  const result = await prepared(sql<ReplayOrCustomerRow & { i: number }>`
    select (e.ord - 1)::int as i, f.request_hash, f.result, s.*
    from ${rows}
      cross join lateral loyalty_idempotency_find((e.v->>'merchantId')::uuid, e.v->>'key') f
      left join lateral ${state} s on f.request_hash is null`).execute(db);
  return settledByIndex(requests.length, result.rows, ({ i, ...row }) => row);
}

/** One outcome per request from rows numbered by request (`i`); a request without a row: null. */
function settledByIndex<R extends { i: number }, O>(
  count: number,
  rows: R[],
  value: (row: R) => O,
): Settled<O | null>[] {
  const outcomes: Settled<O | null>[] = Array.from({ length: count }, () => ({ ok: true, value: null }));
  for (const row of rows) {
    if (row.i >= 0 && row.i < count) outcomes[row.i] = { ok: true, value: value(row) };
  }
  return outcomes;
}
