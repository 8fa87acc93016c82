import { sql } from 'kysely';
import { stringify } from 'safe-stable-stringify';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { sha256Hex } from '../../lib/tokens.js';

/** How long a claimed key stays "in use" before a crashed request's claim may be taken over. */
const LEASE_SECONDS = 60;

/** The outcome of claiming a key: go ahead, or replay the stored result of the first request. */
export type IdempotencyClaim = { kind: 'claimed'; claimId: string } | { kind: 'replay'; result: unknown };

/** Hash of what makes two requests "the same": the operation and its canonical body. */
export function requestHash(operation: string, body: unknown): string {
  return sha256Hex(`${operation}\n${stringify(body)}`);
}

/**
 * Claims an Idempotency-Key for a merchant (committed at once, before the work starts):
 * same key + same body after success -> replay; other body -> 422 idempotency_key_reuse;
 * same key while the first is running -> 409 idempotency_key_in_use.
 */
export async function claimIdempotencyKey(
  db: Executor,
  options: { merchantId: string; key: string; hash: string },
): Promise<IdempotencyClaim> {
  const { merchantId, key, hash } = options;
  for (let attempt = 0; attempt < 3; attempt++) {
    const claimed = await sql<{ claim_id: string }>`
      insert into idempotency_keys (merchant_id, key, request_hash, status, locked_until)
      values (${merchantId}, ${key}, ${hash}, 'in_progress', now() + make_interval(secs => ${LEASE_SECONDS}))
      on conflict (merchant_id, key) do update
        set request_hash = excluded.request_hash, locked_until = excluded.locked_until, created_at = now(),
            claim_id = gen_random_uuid()
        where idempotency_keys.status = 'in_progress' and idempotency_keys.locked_until < now()
          and idempotency_keys.request_hash = excluded.request_hash
      returning claim_id
    `.execute(db);
    const claim = claimed.rows[0];
    if (claim) return { kind: 'claimed', claimId: claim.claim_id };
    const existing = await db
      .selectFrom('idempotency_keys')
      .select(['request_hash', 'status', 'result'])
      .where('merchant_id', '=', merchantId)
      .where('key', '=', key)
      .executeTakeFirst();
    if (!existing) continue; // released between the two statements: claim again
    if (existing.request_hash !== hash) {
      throw new AppError(
        'idempotency_key_reuse',
        'This Idempotency-Key was used with a different request; use a new key for a new request',
      );
    }
    if (existing.status === 'done') return { kind: 'replay', result: existing.result };
    throw new AppError(
      'idempotency_key_in_use',
      'A request with this Idempotency-Key is still running',
      undefined,
      {
        'Retry-After': '1',
      },
    );
  }
  throw new AppError('idempotency_key_in_use', 'A request with this Idempotency-Key is still running');
}

/** Frees a claimed key after a request failed, so a retry with the same key runs again. */
export async function releaseIdempotencyKey(
  db: Executor,
  options: { merchantId: string; key: string; claimId: string },
): Promise<void> {
  // Only this request's own claim: a newer claim of the same key (after a lease ran out) stays.
  await db
    .deleteFrom('idempotency_keys')
    .where('merchant_id', '=', options.merchantId)
    .where('key', '=', options.key)
    .where('claim_id', '=', options.claimId)
    .where('status', '=', 'in_progress')
    .execute();
}

/**
 * Runs an operation under an Idempotency-Key: claims the key, replays a finished first request,
 * and frees the key when the operation fails so a retry runs it again. The operation itself marks
 * the key done in its own transaction (the ledger SQL functions do), so success and record commit
 * together.
 */
export async function runIdempotent<T>(
  db: Executor,
  options: { merchantId: string; key: string; hash: string },
  operation: (claimId: string) => Promise<T>,
): Promise<{ result: T; isReplay: boolean }> {
  const claim = await claimIdempotencyKey(db, options);
  if (claim.kind === 'replay') return { result: claim.result as T, isReplay: true };
  try {
    return { result: await operation(claim.claimId), isReplay: false };
  } catch (error) {
    await releaseIdempotencyKey(db, { ...options, claimId: claim.claimId }).catch(() => {});
    throw error;
  }
}
