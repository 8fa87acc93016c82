import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { decodeKey } from '../config.js';

// Secrets at rest (merchant bot tokens, webhook signing secrets) are sealed with AES-256-GCM under
// APP_ENCRYPTION_KEY. Format: v1.<iv>.<tag>.<ciphertext>, base64url parts.

/** Whether a stored value is a sealed secret (not plain text). */
export function isSealed(value: string): boolean {
  return value.startsWith('v1.');
}

/** Seals and opens secrets with the configured key. */
export class SecretBox {
  private readonly key: Buffer;

  /**
   * `key` is APP_ENCRYPTION_KEY (32 bytes, hex or base64): configured, or the installation's own
   * (src/modules/keys). There is no fallback key: without one nothing can be sealed or opened.
   */
  constructor(key: string | undefined) {
    const decoded = key ? decodeKey(key) : null;
    if (!decoded) throw new Error('APP_ENCRYPTION_KEY is missing or not a 32-byte key');
    this.key = decoded;
  }

  /** Encrypts a secret. */
  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return ['v1', iv, cipher.getAuthTag(), data]
      .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
      .join('.');
  }

  /** Decrypts a sealed secret; throws when it was tampered with or sealed under another key. */
  open(sealed: string): string {
    const [version, iv, tag, data] = sealed.split('.');
    if (version !== 'v1' || !iv || !tag || data === undefined) throw new Error('not a sealed secret');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString(
      'utf8',
    );
  }
}
