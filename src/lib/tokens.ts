import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

/** SHA-256 of a secret, hex: how API keys and customer tokens are stored. */
export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** A random secret with a readable prefix, e.g. `lk_live_` + 32 url-safe characters. */
export function randomSecret(prefix: string, bytes = 24): string {
  return `${prefix}${randomBytes(bytes).toString('base64url')}`;
}

/** A uniformly random 6-digit code, leading zeros kept. */
export function randomDigits(length = 6): string {
  return String(randomInt(0, 10 ** length)).padStart(length, '0');
}

/**
 * Whether a presented secret equals the expected one, in constant time: both are hashed first, so
 * neither their contents nor their lengths show in the timing.
 */
export function isSameSecret(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  const a = createHash('sha256').update(presented).digest();
  return timingSafeEqual(a, createHash('sha256').update(expected).digest());
}
