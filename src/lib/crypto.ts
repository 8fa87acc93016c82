import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { decodeKey } from '../config.js';

// Secrets at rest (merchant bot tokens) are sealed with AES-256-GCM under APP_ENCRYPTION_KEY.
// Format: v1.<iv>.<tag>.<ciphertext>, base64url parts.

/** Seals and opens secrets with the configured key. */
export class SecretBox {
  private readonly key: Buffer;

  /**
   * `key` is APP_ENCRYPTION_KEY (32 bytes, hex or base64). Outside production a missing key falls
   * back to a fixed development key, so `npm start` works on a fresh machine; production requires one.
   */
  constructor(key: string | undefined) {
    const decoded = key ? decodeKey(key) : null;
    this.key = decoded ?? createHash('sha256').update('loyalty-development-key').digest();
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
