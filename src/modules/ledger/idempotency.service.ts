import { sql } from 'kysely';
import { stringify } from 'safe-stable-stringify';
import type { Database, Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { sha256Hex } from '../../lib/tokens.js';
import { toAppError } from './ledger.errors.js';

// Idempotency-Key rules (DESIGN.md section 5): same key + same body replays the stored answer;
// same key + other body -> 422 idempotency_key_reuse; same key while the first request runs ->
// 409 idempotency_key_in_use. The record is written by the ledger SQL function in the same
// transaction as the operation (loyalty_idempotency_begin), so it exists exactly when the operation
// committed: a request that failed leaves nothing behind and its retry runs again. A purchase keeps
// its key on its own row, a refund in idempotency_keys (loyalty_idempotency_find reads both).

// Ids are UUIDs, which PostgreSQL reads in any letter case: one spelling for the hash.
const ID_FIELDS = new Set(['customerId', 'outletId', 'deviceId', 'managerId', 'purchaseId']);

function canonicalIds(key: string, value: unknown): unknown {
  return ID_FIELDS.has(key) && typeof value === 'string' ? value.toLowerCase() : value;
}

/** Hash of what makes two requests "the same": the operation and its canonical body. */
export function requestHash(operation: string, body: unknown): string {
  return sha256Hex(`${operation}\n${stringify(body, canonicalIds)}`);
}

/**
 * For a request that cannot run because what it names is used up (a customer code consumed by a
 * request with the same key): 409 idempotency_key_in_use while that request runs, its stored answer
 * once it committed (422 for another body), null when the key was never used.
 */
export async function findConcurrentResult(
  db: Executor,
  options: { merchantId: string; key: string; hash: string },
): Promise<unknown | null> {
  try {
    const { rows } = await sql<{ r: unknown | null }>`
      select loyalty_idempotency_begin(${options.merchantId}, ${options.key}, ${options.hash}) as r`.execute(
      db,
    );
    return rows[0]?.r ?? null;
  } catch (error) {
    throw toAppError(error);
  }
}

/** The stored answer of a finished request with this key, or null; 422 when the body differs. */
export async function findStoredResult(
  db: Executor,
  options: { merchantId: string; key: string; hash: string },
): Promise<unknown | null> {
  // A purchase keeps its key on its own row, a refund in idempotency_keys: the function looks in both.
  const { rows } = await sql<{ request_hash: string | null; result: unknown }>`
    select request_hash, result from loyalty_idempotency_find(${options.merchantId}, ${options.key})`.execute(
    db,
  );
  return storedResultOf(rows[0], options.hash);
}

/**
 * What a row of loyalty_idempotency_find means for a request with this hash: the stored answer to
 * replay, null when the key is unused, 422 when it was used with another body.
 */
export function storedResultOf(
  row: { request_hash: string | null; result: unknown } | undefined,
  hash: string,
): unknown | null {
  if (!row || row.request_hash === null) return null;
  if (row.request_hash !== hash) {
    throw new AppError(
      'idempotency_key_reuse',
      'This Idempotency-Key was used with a different request; use a new key for a new request',
    );
  }
  return row.result;
}

/** The outcome of an idempotent operation's own answer (`replayed` when its SQL function replayed). */
export function outcomeOf<T extends object>(
  answer: T & { replayed?: boolean },
): {
  result: T;
  isReplay: boolean;
} {
  const { replayed, ...result } = answer;
  return { result: result as unknown as T, isReplay: replayed === true };
}

/**
 * Runs an idempotent ledger operation. A finished request is replayed before any other work (its
 * code may be used up by now); otherwise the operation runs, and its SQL function replays instead
 * when another request with the key committed in between (`replayed: true` in its answer).
 */
export async function runIdempotent<T extends object>(
  db: Executor,
  options: { merchantId: string; key: string; hash: string },
  operation: () => Promise<T & { replayed?: boolean }>,
): Promise<{ result: T; isReplay: boolean }> {
  const stored = await findStoredResult(db, options);
  if (stored) return { result: stored as T, isReplay: true };
  return outcomeOf(await operation());
}

/**
 * Runs an idempotent operation written in TypeScript (not a ledger SQL function) in one transaction:
 * loyalty_idempotency_begin claims the key (409 while a request with it runs; the stored answer,
 * `replayed`, once one committed; 422 for another body), then the operation runs and its answer is
 * stored with the key (idempotency_keys). A failed operation stores nothing, so its retry runs again.
 */
export async function runInIdempotentTransaction<T extends object>(
  db: Database,
  options: { merchantId: string; key: string; hash: string },
  operation: (trx: Executor) => Promise<T>,
): Promise<T & { replayed?: boolean }> {
  try {
    return await db.transaction().execute(async (trx) => {
      const stored = await findConcurrentResult(trx, options);
      if (stored) return stored as T & { replayed: true };
      const result = await operation(trx);
      await trx
        .insertInto('idempotency_keys')
        .values({
          merchant_id: options.merchantId,
          key: options.key,
          request_hash: options.hash,
          result: JSON.stringify(result),
        })
        .execute();
      return result;
    });
  } catch (error) {
    throw toAppError(error);
  }
}
