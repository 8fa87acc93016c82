import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Coalescer, type Settled } from './coalescer.js';

/** An operation that records how it was called and answers when released. */
function recording() {
  const calls: string[][] = [];
  const pending: Array<() => void> = [];
  const gate = () => new Promise<void>((resolve) => pending.push(resolve));
  const operation = {
    async one(item: string) {
      calls.push([item]);
      await gate();
      if (item.startsWith('bad')) throw new Error(`failed ${item}`);
      return item.toUpperCase();
    },
    async many(items: string[]): Promise<Settled<string>[]> {
      calls.push(items);
      await gate();
      if (items.includes('all-fail')) throw new Error('batch failed');
      return items.map((item) =>
        item.startsWith('bad')
          ? { ok: false, error: new Error(`failed ${item}`) }
          : { ok: true, value: item.toUpperCase() },
      );
    },
  };
  const releaseAll = async () => {
    while (pending.length > 0) {
      for (const release of pending.splice(0)) release();
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  return { operation, calls, releaseAll };
}

describe('Coalescer', () => {
  it('runs a call at once, alone, when a slot is free', async () => {
    const { operation, calls, releaseAll } = recording();
    const coalescer = new Coalescer(operation, { maxBatch: 8, inFlight: 1 });
    const answer = coalescer.run('a');
    expect(calls).toEqual([['a']]);
    await releaseAll();
    await expect(answer).resolves.toBe('A');
  });

  it('runs the calls that arrive while every slot is busy together, at most maxBatch at a time', async () => {
    const { operation, calls, releaseAll } = recording();
    const coalescer = new Coalescer(operation, { maxBatch: 3, inFlight: 1 });
    const answers = ['a', 'b', 'c', 'd', 'e', 'f'].map((item) => coalescer.run(item));
    await releaseAll();
    expect(calls).toEqual([['a'], ['b', 'c', 'd'], ['e', 'f']]);
    await expect(Promise.all(answers)).resolves.toEqual(['A', 'B', 'C', 'D', 'E', 'F']);
  });

  it('answers every item of a batch with its own outcome', async () => {
    const { operation, releaseAll } = recording();
    const coalescer = new Coalescer(operation, { maxBatch: 8, inFlight: 1 });
    const answers = ['first', 'x', 'bad-y', 'z'].map((item) => coalescer.run(item));
    const outcomes = Promise.allSettled(answers);
    await releaseAll();
    const settled = await outcomes;
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual([
      'FIRST',
      'X',
      'failed bad-y',
      'Z',
    ]);
  });

  it('fails every item of a batch that failed as a whole, and goes on with the next', async () => {
    const { operation, releaseAll } = recording();
    const coalescer = new Coalescer(operation, { maxBatch: 2, inFlight: 1 });
    const answers = ['first', 'x', 'all-fail', 'y'].map((item) => coalescer.run(item));
    const outcomes = Promise.allSettled(answers);
    await releaseAll();
    const settled = await outcomes;
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual([
      'FIRST',
      'batch failed',
      'batch failed',
      'Y',
    ]);
  });

  it('fails an item the batch gave no answer for instead of leaving it waiting', async () => {
    const coalescer = new Coalescer<string, string>(
      {
        one: async (item) => item,
        many: async (items) => items.slice(1).map((value) => ({ ok: true, value })),
      },
      { maxBatch: 8, inFlight: 1 },
    );
    const answers = ['first', 'x', 'y'].map((item) => coalescer.run(item));
    const settled = await Promise.allSettled(answers);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
  });

  it('runs up to inFlight batches at once', async () => {
    const { operation, calls, releaseAll } = recording();
    const coalescer = new Coalescer(operation, { maxBatch: 8, inFlight: 2 });
    const answers = ['a', 'b', 'c', 'd'].map((item) => coalescer.run(item));
    expect(calls).toEqual([['a'], ['b']]);
    await releaseAll();
    expect(calls).toEqual([['a'], ['b'], ['c', 'd']]);
    await expect(Promise.all(answers)).resolves.toEqual(['A', 'B', 'C', 'D']);
  });

  it('with keyOf, runs no two batches with a key in common at once, and keeps the order of a key', async () => {
    const { operation, calls, releaseAll } = recording();
    const coalescer = new Coalescer(operation, {
      maxBatch: 8,
      inFlight: 2,
      keyOf: (item: string) => item.slice(0, 1),
    });
    const answers = ['a1', 'a2', 'b1', 'a3', 'c1'].map((item) => coalescer.run(item));
    // a2 waits for a1 although a slot is free, and b1 takes that slot.
    expect(calls).toEqual([['a1'], ['b1']]);
    await releaseAll();
    expect(calls.flat().filter((item) => item.startsWith('a'))).toEqual(['a1', 'a2', 'a3']);
    expect(calls.flat().sort()).toEqual(['a1', 'a2', 'a3', 'b1', 'c1']);
    await expect(Promise.all(answers)).resolves.toEqual(['A1', 'A2', 'B1', 'A3', 'C1']);
  });

  it('with keyOf, starts the waiting calls of a key once the batch that held it ends', async () => {
    const { operation, calls, releaseAll } = recording();
    const coalescer = new Coalescer(operation, { maxBatch: 8, inFlight: 2, keyOf: () => 'same' });
    const answers = ['x', 'y', 'z'].map((item) => coalescer.run(item));
    expect(calls).toEqual([['x']]);
    await releaseAll();
    expect(calls).toEqual([['x'], ['y', 'z']]);
    await expect(Promise.all(answers)).resolves.toEqual(['X', 'Y', 'Z']);
  });
  describe('a batch that runs longer than slowAfterMs', () => {
    // Only the coalescer's timer is faked: releaseAll still turns the event loop.
    beforeEach(() => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    });
    afterEach(() => {
      vi.useRealTimers();
    });

    it('frees its slot: the calls waiting behind it start, up to maxInFlight batches in all', async () => {
      const { operation, calls, releaseAll } = recording();
      const coalescer = new Coalescer(operation, {
        maxBatch: 8,
        inFlight: 1,
        slowAfterMs: 50,
        maxInFlight: 2,
      });
      const answers = ['a', 'b', 'c'].map((item) => coalescer.run(item));
      expect(calls).toEqual([['a']]);
      // Within the threshold the waiting calls keep waiting for the running batch.
      await vi.advanceTimersByTimeAsync(49);
      expect(calls).toEqual([['a']]);
      // Past it, the slow batch no longer holds the slot: the waiting calls run as a batch.
      await vi.advanceTimersByTimeAsync(1);
      expect(calls).toEqual([['a'], ['b', 'c']]);
      // Two batches run, both slow now: maxInFlight lets no third start.
      const late = coalescer.run('d');
      await vi.advanceTimersByTimeAsync(100);
      expect(calls).toEqual([['a'], ['b', 'c']]);
      await releaseAll();
      expect(calls).toEqual([['a'], ['b', 'c'], ['d']]);
      await expect(Promise.all([...answers, late])).resolves.toEqual(['A', 'B', 'C', 'D']);
    });

    it('keeps its keys: a call of a key it holds still waits for it', async () => {
      const { operation, calls, releaseAll } = recording();
      const keyOf = (item: string) => item.slice(0, 1);
      const coalescer = new Coalescer(operation, {
        maxBatch: 8,
        inFlight: 1,
        slowAfterMs: 10,
        maxInFlight: 4,
        keyOf,
      });
      const answers = ['a1', 'a2', 'b1'].map((item) => coalescer.run(item));
      await vi.advanceTimersByTimeAsync(10);
      expect(calls).toEqual([['a1'], ['b1']]);
      await releaseAll();
      expect(calls).toEqual([['a1'], ['b1'], ['a2']]);
      await expect(Promise.all(answers)).resolves.toEqual(['A1', 'A2', 'B1']);
    });

    it('counts once: a batch that ends after turning slow frees one place, not two', async () => {
      const { operation, calls, releaseAll } = recording();
      const coalescer = new Coalescer(operation, {
        maxBatch: 1,
        inFlight: 1,
        slowAfterMs: 10,
        maxInFlight: 3,
      });
      const first = coalescer.run('a');
      await vi.advanceTimersByTimeAsync(10);
      await releaseAll();
      await first;
      // Back to one batch at a time: the second call waits for the first.
      const answers = [coalescer.run('x'), coalescer.run('y')];
      expect(calls.slice(1)).toEqual([['x']]);
      await releaseAll();
      expect(calls.slice(1)).toEqual([['x'], ['y']]);
      await expect(Promise.all(answers)).resolves.toEqual(['X', 'Y']);
    });
  });
});
