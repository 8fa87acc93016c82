import { sql } from 'kysely';
import { type Database, prepared } from '../../db/database.js';
import { Coalescer, type CoalescerOptions, type Settled } from '../../lib/coalescer.js';
import { toAppError } from './ledger.errors.js';
import { callLedger } from './ledger.service.js';

// Group commit of purchases (GROUP_COMMIT), on the Coalescer (src/lib/coalescer.ts). Up to `inFlight` commit transactions run at once; a
// commit that finds a slot free runs at once on its own (loyalty_commit_purchase: no waiting at low
// load), and commits that arrive while every slot is busy queue and, when a slot frees, run together
// as one transaction and one round trip (loyalty_commit_purchases, at most `maxBatch`), which share
// one WAL flush. Each caller is answered after its batch committed. The SQL function locks the
// batch's customers in id order, so parallel batches on the same customers cannot deadlock (other
// API processes' batches may hold them; within this process, batches that run at once have no
// customer in common: the Coalescer's keyOf); commits the plain purchases together, one statement
// per table; and runs the others each in its own subtransaction, so one failing item (insufficient
// points, a duplicate orderId) fails alone with the error it would have had alone.

/** What one item of a batch failed with: the fields of a pg error that toAppError reads. */
interface ItemFailure {
  code: string;
  message: string;
  detail: string | null;
  constraint: string | null;
}

interface ItemAnswer {
  i: number;
  result?: unknown;
  error?: ItemFailure;
}

/** The error of a failed batch item, shaped like the pg error the item would have raised alone. */
class BatchItemError extends Error {
  readonly code: string;
  readonly detail: string | undefined;
  readonly constraint: string | undefined;

  constructor(failure: ItemFailure) {
    super(failure.message);
    this.code = failure.code;
    this.detail = failure.detail ?? undefined;
    this.constraint = failure.constraint ?? undefined;
  }
}

/** The argument of loyalty_commit_purchase, as far as the batcher reads it. */
type CommitPayload = { customerId: string };

/** What commits a purchase for commitPurchase: a CommitBatcher, or a test's own. */
export type PurchaseCommitter = Pick<CommitBatcher, 'commit'>;

/** Runs loyalty_commit_purchase calls of concurrent requests together (see the note above). */
export class CommitBatcher {
  private readonly coalescer: Coalescer<CommitPayload, unknown>;

  constructor(db: Database, options: CoalescerOptions) {
    this.coalescer = new Coalescer<CommitPayload, unknown>(
      {
        one: (payload) => callLedger(db, 'loyalty_commit_purchase', payload),
        many: (payloads) => commitMany(db, payloads),
      },
      // Two batches at once never share a customer: the second would wait for the first's lock.
      { ...options, keyOf: (payload) => payload.customerId },
    );
  }

  /** Commits one purchase (the argument of loyalty_commit_purchase); resolves once it committed. */
  commit<T>(payload: CommitPayload): Promise<T> {
    return this.coalescer.run(payload) as Promise<T>;
  }
}

/** One loyalty_commit_purchases call: each item's answer, or the error it failed with alone. */
export async function commitMany(db: Database, payloads: object[]): Promise<Settled<unknown>[]> {
  let answers: ItemAnswer[];
  try {
    const { rows } = await prepared(sql<{ r: ItemAnswer[] }>`
      select loyalty_commit_purchases(${JSON.stringify(payloads)}::jsonb) as r
    `).execute(db);
    answers = rows[0]?.r ?? [];
  } catch (error) {
    // The transaction failed as a whole (connection lost, statement timeout): every item with it.
    throw toAppError(error);
  }
  const outcomes: Settled<unknown>[] = [];
  for (const answer of answers) {
    if (answer.i < 0 || answer.i >= payloads.length) continue;
    outcomes[answer.i] = answer.error
      ? { ok: false, error: toAppError(new BatchItemError(answer.error)) }
      : { ok: true, value: answer.result };
  }
  return outcomes;
}
