import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { z } from 'zod';
import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { isSealed, type SecretBox } from '../../lib/crypto.js';
import { assertPublicUrl } from './ssrf.js';

// Merchant webhook endpoints. Secrets must be read back (not hashed) because every delivery signs
// with them, so they are sealed under the app key (SecretBox) like bot tokens: a database dump holds
// only the sealed value and a 10-character display prefix. They leave this module in the clear only
// through creation, rotation and the delivery lookup.

const MAX_URL_LENGTH = 2048;
const MAX_OVERLAP_SECONDS = 30 * 86_400;
// Enough to recognise a secret in a list ("whsec_AbCd") without giving any of its strength away.
const SECRET_PREFIX_LENGTH = 10;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const EventTypes = z
  .array(
    z
      .string()
      .trim()
      .min(1)
      .max(100)
      .regex(/^[A-Za-z0-9_.:-]+$/, 'event types are letters, digits and . _ : -'),
  )
  .max(50)
  .transform((types) => [...new Set(types)]);
const Description = z.string().trim().max(500).nullable();

/** An endpoint as merchants and operators see it: never the secret, only its first characters. */
export interface WebhookEndpointView {
  id: string;
  url: string;
  description: string | null;
  eventTypes: string[];
  enabled: boolean;
  disabledReason: string | null;
  secretPrefix: string;
  /** Until when the secret before the last rotation still verifies; null when there is none. */
  previousSecretExpiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** What the dispatcher needs to deliver to one endpoint. */
export interface WebhookDeliveryTarget {
  id: string;
  merchantId: string;
  url: string;
  enabled: boolean;
  disabledReason: string | null;
  /** The current secret first, then the previous one while its rotation overlap lasts. */
  secrets: string[];
}

/** A new secret in the format Standard Webhooks libraries accept: `whsec_` + base64 of 24 random bytes. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString('base64')}`;
}

function validationError(field: string, message: string): AppError {
  return new AppError('validation_error', `${field}: ${message}`, { issues: [{ field, message }] });
}

function parseField<T>(schema: z.ZodType<T>, field: string, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw validationError(field, parsed.error.issues[0]?.message ?? 'invalid value');
}

/** Validates a webhook URL (absolute http(s), at most 2048 characters, no literal private target). */
function parseEndpointUrl(input: string, allowPrivate: boolean): string {
  if (input.length > MAX_URL_LENGTH)
    throw validationError('url', `must be at most ${MAX_URL_LENGTH} characters`);
  const url = URL.parse(input.trim());
  if (url === null) throw validationError('url', 'must be an absolute http or https URL');
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw validationError('url', 'must use http or https');
  }
  if (url.href.length > MAX_URL_LENGTH)
    throw validationError('url', `must be at most ${MAX_URL_LENGTH} characters`);
  assertPublicUrl(url, { allowPrivate });
  return url.href;
}

async function assertMerchant(db: Executor, merchantId: string): Promise<void> {
  const found = UUID.test(merchantId)
    ? await db.selectFrom('merchants').select('id').where('id', '=', merchantId).executeTakeFirst()
    : undefined;
  if (!found) throw new AppError('merchant_not_found', `Merchant ${merchantId} not found`);
}

function endpointNotFound(): AppError {
  return new AppError('not_found', 'Webhook endpoint not found');
}

function selectView(db: Executor) {
  return db
    .selectFrom('webhook_endpoints')
    .select((eb) => [
      'id',
      'url',
      'description',
      'event_types as eventTypes',
      'enabled',
      'disabled_reason as disabledReason',
      'secret_prefix as secretPrefix',
      eb
        .case()
        .when('previous_secret_expires_at', '>', sql<Date>`now()`)
        .then(eb.ref('previous_secret_expires_at'))
        .else(null)
        .end()
        .as('previousSecretExpiresAt'),
      'created_at as createdAt',
      'updated_at as updatedAt',
    ]);
}

/** Creates an endpoint for a merchant; the secret is returned here and on rotation only. */
export async function createWebhookEndpoint(
  db: Executor,
  options: {
    merchantId: string;
    url: string;
    eventTypes?: string[];
    description?: string | null;
    /** WEBHOOK_ALLOW_PRIVATE_NETWORKS: lets loopback and private literal targets through. */
    allowPrivateNetworks?: boolean;
    /** Seals the secret at rest. */
    box: SecretBox;
  },
): Promise<{ id: string; secret: string }> {
  const url = parseEndpointUrl(options.url, options.allowPrivateNetworks ?? false);
  const eventTypes = parseField(EventTypes, 'eventTypes', options.eventTypes ?? []);
  const description = parseField(Description, 'description', options.description ?? null);
  await assertMerchant(db, options.merchantId);
  const secret = generateWebhookSecret();
  const row = await db
    .insertInto('webhook_endpoints')
    .values({
      merchant_id: options.merchantId,
      url,
      event_types: eventTypes,
      description,
      secret_enc: options.box.seal(secret),
      secret_prefix: secret.slice(0, SECRET_PREFIX_LENGTH),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return { id: row.id, secret };
}

/** A merchant's endpoints, oldest first, without their secrets. */
export async function listWebhookEndpoints(
  db: Executor,
  options: { merchantId: string },
): Promise<WebhookEndpointView[]> {
  await assertMerchant(db, options.merchantId);
  return selectView(db)
    .where('merchant_id', '=', options.merchantId)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
}

/** Changes an endpoint of the merchant; re-enabling clears the reason it was disabled for. */
export async function updateWebhookEndpoint(
  db: Executor,
  options: {
    merchantId: string;
    endpointId: string;
    url?: string;
    eventTypes?: string[];
    enabled?: boolean;
    description?: string | null;
    allowPrivateNetworks?: boolean;
  },
): Promise<WebhookEndpointView> {
  const url =
    options.url === undefined
      ? undefined
      : parseEndpointUrl(options.url, options.allowPrivateNetworks ?? false);
  const eventTypes =
    options.eventTypes === undefined ? undefined : parseField(EventTypes, 'eventTypes', options.eventTypes);
  const description =
    options.description === undefined
      ? undefined
      : parseField(Description, 'description', options.description);
  if (!UUID.test(options.endpointId)) throw endpointNotFound();
  const updated = await db
    .updateTable('webhook_endpoints')
    .set({
      url,
      event_types: eventTypes,
      description,
      enabled: options.enabled,
      // A merchant turning an endpoint back on has dealt with whatever disabled it.
      disabled_reason:
        options.enabled === undefined ? undefined : options.enabled ? null : 'disabled by the merchant',
      updated_at: new Date(),
    })
    .where('id', '=', options.endpointId)
    .where('merchant_id', '=', options.merchantId)
    .returning('id')
    .executeTakeFirst();
  if (!updated) throw endpointNotFound();
  return selectView(db).where('id', '=', updated.id).executeTakeFirstOrThrow();
}

/**
 * Issues a new secret. The old one stays valid for `overlapSeconds` (deliveries carry signatures of
 * both meanwhile), so the merchant can roll their receiver without dropping events. A second
 * rotation within the overlap retires the oldest secret at once: only one previous secret is kept.
 */
export async function rotateWebhookSecret(
  db: Executor,
  options: { merchantId: string; endpointId: string; overlapSeconds?: number; box: SecretBox },
): Promise<{ secret: string }> {
  const overlap = parseField(
    z.number().int().min(0).max(MAX_OVERLAP_SECONDS),
    'overlapSeconds',
    options.overlapSeconds ?? 86_400,
  );
  if (!UUID.test(options.endpointId)) throw endpointNotFound();
  const secret = generateWebhookSecret();
  const updated = await db
    .updateTable('webhook_endpoints')
    // In an UPDATE the right-hand `secret_enc` is the old value, so the swap is one atomic statement.
    .set((eb) => ({
      previous_secret_enc: overlap > 0 ? eb.ref('secret_enc') : null,
      previous_secret_expires_at: overlap > 0 ? sql<Date>`now() + make_interval(secs => ${overlap})` : null,
      secret_enc: options.box.seal(secret),
      secret_prefix: secret.slice(0, SECRET_PREFIX_LENGTH),
      updated_at: new Date(),
    }))
    .where('id', '=', options.endpointId)
    .where('merchant_id', '=', options.merchantId)
    .returning('id')
    .executeTakeFirst();
  if (!updated) throw endpointNotFound();
  return { secret };
}

/** Deletes an endpoint of the merchant (its pending deliveries go with it). */
export async function deleteWebhookEndpoint(
  db: Executor,
  options: { merchantId: string; endpointId: string },
): Promise<void> {
  if (!UUID.test(options.endpointId)) throw endpointNotFound();
  const result = await db
    .deleteFrom('webhook_endpoints')
    .where('id', '=', options.endpointId)
    .where('merchant_id', '=', options.merchantId)
    .executeTakeFirst();
  if (result.numDeletedRows === 0n) throw endpointNotFound();
}

/**
 * Disables an endpoint on the platform's behalf (e.g. it answered 410 Gone). True when this call
 * disabled it, false when it was already disabled or is gone: the caller notifies the merchant once.
 */
export async function disableWebhookEndpoint(
  db: Executor,
  options: { endpointId: string; reason: string },
): Promise<boolean> {
  if (!UUID.test(options.endpointId)) return false;
  const result = await db
    .updateTable('webhook_endpoints')
    .set({ enabled: false, disabled_reason: options.reason.slice(0, 500), updated_at: new Date() })
    .where('id', '=', options.endpointId)
    .where('enabled', '=', true)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** The merchant's enabled endpoints subscribed to an event type (an empty list subscribes to all). */
export async function findEndpointsForEvent(
  db: Executor,
  options: { merchantId: string; type: string },
): Promise<Array<{ id: string; url: string }>> {
  if (!UUID.test(options.merchantId)) return [];
  return db
    .selectFrom('webhook_endpoints')
    .select(['id', 'url'])
    .where('merchant_id', '=', options.merchantId)
    .where('enabled', '=', true)
    .where(sql<boolean>`(cardinality(event_types) = 0 or ${options.type} = any(event_types))`)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
}

/** An endpoint with its signing secrets, for the dispatcher; null when it no longer exists. */
export async function getWebhookEndpointForDelivery(
  db: Executor,
  endpointId: string,
  box: SecretBox,
): Promise<WebhookDeliveryTarget | null> {
  if (!UUID.test(endpointId)) return null;
  const row = await db
    .selectFrom('webhook_endpoints')
    .select([
      'id',
      'merchant_id as merchantId',
      'url',
      'enabled',
      'disabled_reason as disabledReason',
      'secret_enc as secret',
      // Compared with the database clock, the same clock that set the expiry at rotation.
      sql<string | null>`case when previous_secret_expires_at > now() then previous_secret_enc end`.as(
        'previousSecret',
      ),
    ])
    .where('id', '=', endpointId)
    .executeTakeFirst();
  if (!row) return null;
  const { secret, previousSecret, ...rest } = row;
  // Opening throws when the secret was sealed under another key: the dispatcher records that attempt
  // as failed (the operator rotates keys with keys:rotate, which re-seals every secret). A secret
  // still in plain text (stored before 0007, not yet sealed at start) is used as it is.
  const stored = previousSecret ? [secret, previousSecret] : [secret];
  return { ...rest, secrets: stored.map((s) => (isSealed(s) ? box.open(s) : s)) };
}
