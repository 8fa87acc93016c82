import { Redis } from 'ioredis';

/**
 * Connects to Redis when REDIS_URL is set. Commands fail fast while Redis is down (no offline
 * queue, one retry) so callers fall back to their in-process path instead of hanging.
 */
export function createRedis(url: string | undefined): Redis | null {
  if (!url) return null;
  const redis = new Redis(url, {
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  });
  // Connection errors are expected while Redis is down; readiness reports them.
  redis.on('error', () => {});
  return redis;
}
