import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { Config } from '../../config.js';
import { AppError } from '../../http/errors.js';
import { FailureLimiter, rateLimitedError } from '../../http/rate-limit.js';
import type { Audience } from './auth.service.js';

/**
 * The login limits of one door (portal or admin; each has its own, so a flood at one never locks
 * the other). Per client address, and per account from one address, failures refuse with 429; per
 * account from all addresses they only delay, so a stranger can slow an owner down but never lock
 * them out.
 */
export interface LoginLimiters {
  perIp: FailureLimiter;
  perAccountIp: FailureLimiter;
  perAccount: FailureLimiter;
  slowdownAfter: number;
  slowdownMs: number;
}

/** The limiters of one door, in Redis when there is one. */
export function createLoginLimiters(config: Config, redis: Redis | null, audience: Audience): LoginLimiters {
  const limiter = (name: string, max: number) =>
    new FailureLimiter({
      redis,
      max,
      windowSeconds: config.LOGIN_WINDOW_SECONDS,
      prefix: `loyalty:login:${audience}:${name}`,
    });
  return {
    perIp: limiter('ip', config.LOGIN_MAX_FAILURES_PER_IP),
    perAccountIp: limiter('account-ip', config.LOGIN_MAX_FAILURES_PER_ACCOUNT),
    perAccount: limiter('account', config.LOGIN_ACCOUNT_SLOWDOWN_AFTER),
    slowdownAfter: config.LOGIN_ACCOUNT_SLOWDOWN_AFTER,
    slowdownMs: config.LOGIN_ACCOUNT_SLOWDOWN_MS,
  };
}

/**
 * Runs one login attempt under the limits: the attempt is reserved before the password is checked
 * (so parallel guesses cannot overtake the count), kept as a failure when the credentials are
 * wrong, and given back otherwise.
 */
export async function withLoginLimits<T>(
  limiters: LoginLimiters,
  options: { account: string; ip: string },
  attempt: () => Promise<T>,
): Promise<T> {
  const message = 'Too many failed logins; try again later';
  const ipSlot = await limiters.perIp.reserve(options.ip);
  if (!ipSlot.ok) throw rateLimitedError(message, ipSlot.retryAfter);
  const pairSlot = await limiters.perAccountIp.reserve(`${options.account}|${options.ip}`);
  if (!pairSlot.ok) {
    await ipSlot.release();
    throw rateLimitedError(message, pairSlot.retryAfter);
  }
  if ((await limiters.perAccount.failures(options.account)) >= limiters.slowdownAfter) {
    await sleep(limiters.slowdownMs);
  }
  try {
    const result = await attempt();
    await Promise.all([ipSlot.release(), pairSlot.release()]);
    return result;
  } catch (error) {
    if (error instanceof AppError && error.code === 'invalid_credentials') {
      await limiters.perAccount.recordFailure(options.account);
    } else {
      await Promise.all([ipSlot.release(), pairSlot.release()]);
    }
    throw error;
  }
}
