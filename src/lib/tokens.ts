import { createHash, randomBytes, randomInt } from 'node:crypto';

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
