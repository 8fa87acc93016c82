// Runs concurrent calls of one operation together. Up to `inFlight` runs go at once; a call that
// finds a slot free runs at once on its own (`one`: no waiting at low load), and calls that arrive
// while every slot is busy queue and, when a slot frees, run together (`many`, at most `maxBatch`).
// Every call is answered with its own outcome: `many` gives one per item, in the order given, and
// if it throws as a whole, every item of that batch fails with its error.
// With `slowAfterMs`, a batch that has run that long stops holding its slot (it may be waiting on a
// lock): the calls waiting behind it start, up to `maxInFlight` batches in all. So one slot can be
// the rule under load (the largest batches, the least work per call) without one stuck batch
// holding up every call of the process.
// With `keyOf`, batches that run at the same time hold no key in common: a call whose key is in a
// running batch waits for the next one (calls of one key keep their order). For group commit the key
// is the customer, whose balance row a batch locks until it commits: a second batch with that
// customer would only wait for the first's lock and flush, and leave a core idle meanwhile.
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
  /** Batches running at once, those past `slowAfterMs` not counted. */
  inFlight: number;
  /** A batch running this long no longer counts against `inFlight` (unset: always counts). */
  slowAfterMs?: number;
  /** Batches running at once, slow ones included (default: `inFlight`). */
  maxInFlight?: number;
  /** Called when a batch turns slow (for a metric). */
  onSlow?: () => void;
}

/** Batches that may start past `inFlight` while the running ones are slow (`lanes`). */
export const SPARE_LANES = 3;

/**
 * The slots of a Coalescer: `inFlight` batches at once and, with `slowAfterMs` > 0, up to
 * SPARE_LANES more while the running ones have run that long (0: never more than `inFlight`).
 */
export function lanes(
  inFlight: number,
  slowAfterMs: number,
  onSlow?: () => void,
): Pick<CoalescerOptions, 'inFlight' | 'slowAfterMs' | 'maxInFlight' | 'onSlow'> {
  return slowAfterMs > 0
    ? { inFlight, slowAfterMs, maxInFlight: inFlight + SPARE_LANES, onSlow }
    : { inFlight };
}

/** The options of a Coalescer whose items have keys (see the note above). */
export interface KeyedCoalescerOptions<I> extends CoalescerOptions {
  keyOf?: (item: I) => string;
}

interface Waiting<I, O> {
  item: I;
  resolve: (value: O) => void;
  reject: (error: unknown) => void;
}

/** Runs concurrent calls together (see the note above). */
export class Coalescer<I, O> {
  private readonly queue: Waiting<I, O>[] = [];
  /** Batches running, and those of them not yet slow (see slowAfterMs). */
  private running = 0;
  private counted = 0;
  /** Keys of the running batches. */
  private readonly busy = new Set<string>();

  constructor(
    private readonly operation: CoalescedOperation<I, O>,
    private readonly options: KeyedCoalescerOptions<I>,
  ) {}

  /** Runs the operation for `item`, alone or with concurrent calls; resolves with its own outcome. */
  run(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.startBatches();
    });
  }

  private startBatches(): void {
    const { inFlight, maxInFlight = inFlight, slowAfterMs, keyOf, onSlow } = this.options;
    while (this.counted < inFlight && this.running < maxInFlight && this.queue.length > 0) {
      const batch = this.take();
      // Every waiting call's key is in a running batch: the next to end starts them.
      if (batch.length === 0) return;
      // No other running batch holds these keys (take), so this batch's end frees them all.
      const keys = keyOf ? batch.map((waiting) => keyOf(waiting.item)) : [];
      for (const key of keys) this.busy.add(key);
      this.running += 1;
      this.counted += 1;
      let isCounted = true;
      const uncount = () => {
        if (!isCounted) return;
        isCounted = false;
        this.counted -= 1;
      };
      const slow =
        slowAfterMs === undefined
          ? undefined
          : setTimeout(() => {
              uncount();
              onSlow?.();
              this.startBatches();
            }, slowAfterMs);
      slow?.unref();
      void this.runBatch(batch).finally(() => {
        clearTimeout(slow);
        uncount();
        for (const key of keys) this.busy.delete(key);
        this.running -= 1;
        this.startBatches();
      });
    }
  }

  /** The next batch: the first waiting calls, up to maxBatch, whose keys no running batch holds. */
  private take(): Waiting<I, O>[] {
    const { keyOf, maxBatch } = this.options;
    if (!keyOf || this.busy.size === 0) return this.queue.splice(0, maxBatch);
    const batch: Waiting<I, O>[] = [];
    const left: Waiting<I, O>[] = [];
    for (const waiting of this.queue) {
      if (batch.length < maxBatch && !this.busy.has(keyOf(waiting.item))) batch.push(waiting);
      else left.push(waiting);
    }
    this.queue.splice(0, this.queue.length, ...left);
    return batch;
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
