import type { Redis } from 'ioredis';
import { AppError } from './errors.js';

/** The outcome of FailureLimiter.reserve: an attempt that may go ahead, or how long to wait. */
export type Reservation = { ok: true; release(): Promise<void> } | { ok: false; retryAfter: number };

// Counts the attempt and refuses it in one step, so parallel requests cannot all pass a check made
// before any of them was counted. Returns the new count, or minus the seconds left when refused.
const RESERVE_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 1 then ttl = 1 end
  return -ttl
end
return n`;

// The seconds a key is refused for (its failures reached the limit), or 0.
const REFUSAL_SCRIPT = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n < tonumber(ARGV[1]) then return 0 end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 1 then ttl = 1 end
return ttl`;

// Counts one failure; past the limit it is not counted (the count stays at the failures answered
// as such) and the seconds the key is refused for are returned.
const FAIL_SCRIPT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n <= tonumber(ARGV[1]) then return 0 end
redis.call('DECR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 1 then ttl = 1 end
return ttl`;

// Gives a reservation back (the attempt succeeded), never below zero nor on a window that ended.
const RELEASE_SCRIPT = `
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if v > 0 then redis.call('DECR', KEYS[1]) end
return v`;

/**
 * Counts failures per key in a fixed window: in Redis when there is one (shared by every replica),
 * otherwise, or while Redis is unreachable, in this process. Two ways to use it:
 * - `reserve` counts an attempt before it is checked and releases it when it succeeds, so at most
 *   `max` attempts of a key are ever checked per window, however many arrive at once; attempts in
 *   flight count against the limit too (logins: few, and slow by design).
 * - `fail` and `refusal` judge an attempt after it was checked: a failure is counted and answered
 *   as refused once it is past `max`, a success is shown only while the key is under `max`. However
 *   many run at once, at most `max` failures and the successes before them are answered per
 *   window, and attempts in flight take nothing from the limit (code lookups: many at once).
 */
export class FailureLimiter {
  private readonly memory = new Map<string, { count: number; resetAt: number }>();
  /** Refusals this process saw (from Redis or memory): key -> until when, ms. */
  private readonly refusedUntil = new Map<string, number>();

  constructor(
    private readonly options: { redis: Redis | null; max: number; windowSeconds: number; prefix: string },
  ) {}

  /** Counts an attempt of the key before it is checked; refused once the key's failures and attempts in flight reach max. */
  async reserve(key: string): Promise<Reservation> {
    const { redis, max, windowSeconds, prefix } = this.options;
    if (redis && redis.status === 'ready') {
      try {
        const result = Number(await redis.eval(RESERVE_SCRIPT, 1, `${prefix}:${key}`, max, windowSeconds));
        if (result < 0) return { ok: false, retryAfter: -result };
        return { ok: true, release: () => this.releaseInRedis(redis, key) };
      } catch {
        // fall through to memory
      }
    }
    // No await between the check and the count: the event loop makes this step atomic.
    this.evictExpired();
    const entry = this.memoryEntry(key) ?? { count: 0, resetAt: Date.now() + windowSeconds * 1000 };
    if (entry.count >= max) return { ok: false, retryAfter: this.secondsLeft(entry) };
    entry.count += 1;
    this.memory.set(key, entry);
    return {
      ok: true,
      release: async () => {
        if (this.memory.get(key) === entry && entry.count > 0) entry.count -= 1;
      },
    };
  }

  /**
   * The seconds the key is refused for because its failures reached max, or 0. For checks that run
   * first and are judged after (a code lookup): a success is shown only while this is 0.
   */
  async refusal(key: string): Promise<number> {
    const { redis, max, prefix } = this.options;
    if (redis && redis.status === 'ready') {
      try {
        return this.remember(key, Number(await redis.eval(REFUSAL_SCRIPT, 1, `${prefix}:${key}`, max)));
      } catch {
        // fall through to memory
      }
    }
    const entry = this.memoryEntry(key);
    return this.remember(key, entry && entry.count >= max ? this.secondsLeft(entry) : 0);
  }

  /**
   * The seconds left of a refusal this process already saw for the key (from `refusal` or `fail`),
   * or 0: a refused key's attempts are turned away without being checked or asking Redis.
   */
  knownRefusal(key: string): number {
    const until = this.refusedUntil.get(key);
    if (until === undefined) return 0;
    if (until > Date.now()) return this.secondsLeft({ resetAt: until });
    this.refusedUntil.delete(key);
    return 0;
  }

  private remember(key: string, seconds: number): number {
    if (seconds > 0) this.refusedUntil.set(key, Date.now() + seconds * 1000);
    return seconds;
  }

  /**
   * Counts one failure of the key; returns the seconds the key is refused for when this failure is
   * past max (it is then not counted, and must be answered as refused, not as a failure), or 0.
   */
  async fail(key: string): Promise<number> {
    const { redis, max, windowSeconds, prefix } = this.options;
    if (redis && redis.status === 'ready') {
      try {
        return this.remember(
          key,
          Number(await redis.eval(FAIL_SCRIPT, 1, `${prefix}:${key}`, max, windowSeconds)),
        );
      } catch {
        // fall through to memory
      }
    }
    this.evictExpired();
    const entry = this.memoryEntry(key) ?? { count: 0, resetAt: Date.now() + windowSeconds * 1000 };
    if (entry.count >= max) return this.remember(key, this.secondsLeft(entry));
    entry.count += 1;
    this.memory.set(key, entry);
    return 0;
  }

  /** Failures of the key in the current window. */
  async failures(key: string): Promise<number> {
    const { redis, prefix } = this.options;
    if (redis && redis.status === 'ready') {
      try {
        return Number((await redis.get(`${prefix}:${key}`)) ?? 0);
      } catch {
        // fall through to memory
      }
    }
    return this.memoryEntry(key)?.count ?? 0;
  }

  /** Records one failure for the key (for counters that slow down rather than refuse). */
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

  private async releaseInRedis(redis: Redis, key: string): Promise<void> {
    try {
      await redis.eval(RELEASE_SCRIPT, 1, `${this.options.prefix}:${key}`);
    } catch {
      // The reservation then counts as a failure until the window ends: the safe side.
    }
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
    for (const [key, until] of this.refusedUntil) if (until <= now) this.refusedUntil.delete(key);
  }

  private secondsLeft(entry: { resetAt: number }): number {
    return Math.max(1, Math.ceil((entry.resetAt - Date.now()) / 1000));
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

/** 429 `rate_limited` with Retry-After, for a refused reservation. */
export function rateLimitedError(message: string, retryAfter: number): AppError {
  return new AppError('rate_limited', message, { retryAfter }, { 'Retry-After': String(retryAfter) });
}
