import type { Redis } from 'ioredis';

/**
 * Counts failures per key in a fixed window: in Redis when there is one (shared by every replica),
 * otherwise, or while Redis is unreachable, in this process.
 */
export class FailureLimiter {
  private readonly memory = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly options: { redis: Redis | null; max: number; windowSeconds: number; prefix: string },
  ) {}

  /** Seconds until the key may try again, or 0 when it is not blocked. */
  async blockedFor(key: string): Promise<number> {
    const { redis, max, prefix } = this.options;
    if (redis && redis.status === 'ready') {
      try {
        const [count, ttl] = await Promise.all([
          redis.get(`${prefix}:${key}`),
          redis.ttl(`${prefix}:${key}`),
        ]);
        return Number(count ?? 0) >= max ? Math.max(ttl, 1) : 0;
      } catch {
        // fall through to memory
      }
    }
    const entry = this.memoryEntry(key);
    return entry && entry.count >= max ? Math.ceil((entry.resetAt - Date.now()) / 1000) : 0;
  }

  /** Records one failure for the key. */
  async recordFailure(key: string): Promise<void> {
    const { redis, windowSeconds, prefix } = this.options;
    if (redis && redis.status === 'ready') {
      try {
        await redis.multi().incr(`${prefix}:${key}`).expire(`${prefix}:${key}`, windowSeconds, 'NX').exec();
        return;
      } catch {
        // fall through to memory
      }
    }
    this.evictExpired();
    const entry = this.memoryEntry(key);
    if (entry) entry.count += 1;
    else this.memory.set(key, { count: 1, resetAt: Date.now() + windowSeconds * 1000 });
  }

  /** How many keys the in-process store holds (expired ones go at the next sweep). */
  get memoryKeys(): number {
    return this.memory.size;
  }

  // Keys are usually never asked about again once their window ends (a scan of random codes or
  // addresses), so a sweep at most once per window drops them: memory holds the failures of the
  // last two windows at most, not of every window since the process started.
  private nextSweepAt = 0;

  private evictExpired(): void {
    const now = Date.now();
    if (now < this.nextSweepAt) return;
    this.nextSweepAt = now + this.options.windowSeconds * 1000;
    for (const [key, entry] of this.memory) if (entry.resetAt <= now) this.memory.delete(key);
  }

  private memoryEntry(key: string) {
    const entry = this.memory.get(key);
    if (entry && entry.resetAt <= Date.now()) {
      this.memory.delete(key);
      return undefined;
    }
    return entry;
  }
}
