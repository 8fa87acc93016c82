import { Webhook } from 'standardwebhooks';

/** The Standard Webhooks headers of one signed message. */
export interface WebhookSignatureHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/**
 * Signs a message the Standard Webhooks way with every given secret (`whsec_...`). The signatures
 * are joined with a space, so during a rotation a receiver that knows only the old secret and one
 * that already has the new one both verify. `messageId` must be stable across retries (receivers
 * de-duplicate on it); `timestamp` is the time of this attempt (receivers reject old timestamps).
 */
export function signWebhook(options: {
  secrets: string[];
  messageId: string;
  timestamp: Date;
  body: string;
}): WebhookSignatureHeaders {
  const secrets = [...new Set(options.secrets)];
  if (secrets.length === 0) throw new Error('signWebhook needs at least one secret');
  const signature = secrets
    .map((secret) => new Webhook(secret).sign(options.messageId, options.timestamp, options.body))
    .join(' ');
  return {
    'webhook-id': options.messageId,
    'webhook-timestamp': String(Math.floor(options.timestamp.getTime() / 1000)),
    'webhook-signature': signature,
  };
}
