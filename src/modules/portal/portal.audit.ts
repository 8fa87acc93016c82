import type { Executor } from '../../db/database.js';
import { type Actor, writeAudit } from '../audit/audit.service.js';

/** What an audited change reports about itself: the entity it touched and its state around the change. */
export interface AuditedOutcome<T> {
  result: T;
  entityId?: string | null;
  before?: unknown;
  after?: unknown;
}

/** Runs `work` in a transaction (or inside the caller's) and runs `fn` with one. */
export function inTransaction<T>(db: Executor, fn: (trx: Executor) => Promise<T>): Promise<T> {
  return db.isTransaction ? fn(db) : db.transaction().execute(fn);
}

/**
 * Runs a change and writes its audit entry in the same transaction: a change is never recorded
 * without happening, nor happens without being recorded. Secrets never go into before/after.
 */
export async function runAudited<T>(
  db: Executor,
  entry: { actor: Actor; merchantId: string | null; action: string; entityType: string },
  work: (trx: Executor) => Promise<AuditedOutcome<T>>,
): Promise<T> {
  return inTransaction(db, async (trx) => {
    const outcome = await work(trx);
    await writeAudit(trx, {
      actor: entry.actor,
      merchantId: entry.merchantId,
      action: entry.action,
      entityType: entry.entityType,
      entityId: outcome.entityId ?? null,
      before: outcome.before,
      after: outcome.after,
    });
    return outcome.result;
  });
}
