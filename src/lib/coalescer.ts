// Runs concurrent calls of one operation together. Up to `inFlight` runs go at once; a call that
// finds a slot free runs at once on its own (`one`: no waiting at low load), and calls that arrive
// while every slot is busy queue and, when a slot frees, run together (`many`, at most `maxBatch`).
// Every call is answered with its own outcome: `many` gives one per item, in the order given, and
// if it throws as a whole, every item of that batch fails with its error.
//
// Group commit (ledger.batcher.ts) and the batched reads of the POS hot path (integration.reads.ts)
// are built on it: one round trip and, for writes, one WAL flush for many requests.

/** The outcome of one item of a batch. */
export type Settled<O> = { ok: true; value: O } | { ok: false; error: unknown };

/** How one call and a batch of calls run. */
export interface CoalescedOperation<I, O> {
  one(item: I): Promise<O>;
  /** One outcome per item, in the order of `items`. */
  many(items: I[]): Promise<Settled<O>[]>;
}

export interface CoalescerOptions {
  maxBatch: number;
  inFlight: number;
}

interface Waiting<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/** Runs concurrent calls together (see the note above). */
export class Coalescer<I, O> {
  private readonly queue: Waiting<I, O>[] = [];
  private running = 0;

  constructor(
    private readonly operation: CoalescedOperation<I, O>,
    private readonly options: CoalescerOptions,
  ) {}

  /** Runs the operation for `item`, alone or with concurrent calls; resolves with its own outcome. */
  run(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.startBatches();
    });
  }

  private startBatches(): void {
    while (this.running < this.options.inFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.running += 1;
      void this.runBatch(batch).finally(() => {
        this.running -= 1;
        this.startBatches();
      });
    }
  }

  private async runBatch(batch: Waiting<I, O>[]): Promise<void> {
    const [only] = batch;
    if (only && batch.length === 1) {
      try {
        only.resolve(await this.operation.one(only.item));
      } catch (error) {
        only.reject(error);
      }
      return;
    }
    let outcomes: Settled<O>[];
    try {
      outcomes = await this.operation.many(batch.map((waiting) => waiting.item));
    } catch (error) {
      for (const waiting of batch) waiting.reject(error);
      return;
    }
    batch.forEach((waiting, i) => {
      const outcome = outcomes[i];
      if (!outcome) waiting.reject(new Error('a batched operation gave no answer for an item'));
      else if (outcome.ok) waiting.resolve(outcome.value);
      else waiting.reject(outcome.error);
    });
  }
}
