import { afterEach, describe, expect, it, vi } from 'vitest';
import { FailureLimiter } from './rate-limit.js';

// Without Redis the limiter counts in process memory; keys whose window has ended must go, or a
// scan of random codes or addresses grows the process without bound.

afterEach(() => {
  vi.useRealTimers();
});

describe('FailureLimiter in memory', () => {
  it('evicts the keys of ended windows, keeping the live ones', async () => {
    vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') });
    const limiter = new FailureLimiter({ redis: null, max: 3, windowSeconds: 60, prefix: 'test' });
    for (let i = 0; i < 1000; i += 1) await limiter.recordFailure(`scan-${i}`);
    expect(limiter.memoryKeys).toBe(1000);

    vi.advanceTimersByTime(61_000);
    await limiter.recordFailure('live');
    expect(limiter.memoryKeys).toBe(1);

    // Counting still works for the keys that remain.
    await limiter.recordFailure('live');
    await limiter.recordFailure('live');
    expect(await limiter.failures('live')).toBe(3);
    expect(await limiter.failures('scan-1')).toBe(0);
  });
});
