import { sql } from 'kysely';
import type { Database } from '../../db/database.js';
import { toAppError } from './ledger.errors.js';
import { callLedger } from './ledger.service.js';

// Group commit of purchases (GROUP_COMMIT). Up to `inFlight` commit transactions run at once; a
// commit that finds a slot free runs at once on its own (loyalty_commit_purchase: no waiting at low
// load), and commits that arrive while every slot is busy queue and, when a slot frees, run together
// as one transaction and one round trip (loyalty_commit_purchases, at most `maxBatch`), which share
// one WAL flush. Each caller is answered after its batch committed. The SQL function runs each item
// in its own subtransaction, so one failing item (insufficient points, a duplicate orderId) fails
// alone with the error it would have had alone, and it locks customers in id order, so parallel
// batches on the same customers cannot deadlock.

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

interface Waiting {
  payload: object;
  resolve: (result: unknown) => void;
  reject: (error: unknown) => void;
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

/** Runs loyalty_commit_purchase calls of concurrent requests together (see the note above). */
export class CommitBatcher {
  private readonly queue: Waiting[] = [];
  private running = 0;

  constructor(
    private readonly db: Database,
    private readonly options: { maxBatch: number; inFlight: number },
  ) {}

  /** Commits one purchase (the argument of loyalty_commit_purchase); resolves once it committed. */
  commit<T>(payload: object): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ payload, resolve: resolve as (result: unknown) => void, reject });
      this.startBatches();
    });
  }

  private startBatches(): void {
    while (this.running < this.options.inFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.running += 1;
      void this.run(batch).finally(() => {
        this.running -= 1;
        this.startBatches();
      });
    }
  }

  private async run(batch: Waiting[]): Promise<void> {
    const [only] = batch;
    if (only && batch.length === 1) {
      try {
        only.resolve(await callLedger(this.db, 'loyalty_commit_purchase', only.payload));
      } catch (error) {
        only.reject(error);
      }
      return;
    }
    let answers: ItemAnswer[];
    try {
      const { rows } = await sql<{ r: ItemAnswer[] }>`
        select loyalty_commit_purchases(${JSON.stringify(batch.map((w) => w.payload))}::jsonb) as r
      `.execute(this.db);
      answers = rows[0]?.r ?? [];
    } catch (error) {
      // The transaction failed as a whole (connection lost, statement timeout): every item with it.
      const mapped = toAppError(error);
      for (const waiting of batch) waiting.reject(mapped);
      return;
    }
    const answered = new Set<number>();
    for (const answer of answers) {
      const waiting = batch[answer.i];
      if (!waiting) continue;
      answered.add(answer.i);
      if (answer.error) waiting.reject(toAppError(new BatchItemError(answer.error)));
      else waiting.resolve(answer.result);
    }
    batch.forEach((waiting, i) => {
      if (!answered.has(i)) waiting.reject(new Error('loyalty_commit_purchases gave no answer for an item'));
    });
  }
}
