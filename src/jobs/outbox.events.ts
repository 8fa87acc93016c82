import { z } from 'zod';

// Versioned outbox payloads. Rows outlive deploys, so the worker re-validates every payload it
// reads against these schemas; unknown extra fields are kept (added fields are not breaking).

// held: points reserved by holds; events written before holds have none.
const Balance = z.looseObject({
  available: z.number().int(),
  pending: z.number().int(),
  held: z.number().int().optional(),
});
const Id = z.string().min(1);

/** Payload schemas by event type (version 1). */
export const EVENT_PAYLOADS = {
  'purchase.committed': z.looseObject({
    purchaseId: Id,
    orderId: z.string(),
    customerId: Id,
    total: z.number().int(),
    earnedPoints: z.number().int(),
    redeemedPoints: z.number().int(),
    pendingPoints: z.number().int().optional(),
    balance: Balance,
    outletId: z.string().nullable().optional(),
    occurredAt: z.string(),
  }),
  'purchase.refunded': z.looseObject({
    refundId: Id,
    purchaseId: Id,
    orderId: z.string(),
    customerId: Id,
    amount: z.number().int(),
    returnedPoints: z.number().int(),
    revokedPoints: z.number().int(),
    unrecoveredPoints: z.number().int(),
    balance: Balance,
    occurredAt: z.string(),
  }),
  'points.expired': z.looseObject({
    customerId: Id,
    points: z.number().int(),
    balance: Balance,
    occurredAt: z.string(),
  }),
  'points.activated': z.looseObject({
    customerId: Id,
    points: z.number().int(),
    balance: Balance,
    occurredAt: z.string(),
  }),
  'points.adjusted': z.looseObject({
    customerId: Id,
    points: z.number().int(),
    reason: z.string().nullable(),
    balance: Balance,
    occurredAt: z.string(),
  }),
  'points.expiring': z.looseObject({
    customerId: Id,
    points: z.number().int(),
    expiresAt: z.string(),
    balance: Balance,
    occurredAt: z.string(),
  }),
  'customer.created': z.looseObject({ customerId: Id, phone: z.string(), occurredAt: z.string() }),
  // Written by every way of joining (bot sign-up, POS enrollment, CLI), with the welcome points.
  'customer.enrolled': z.looseObject({
    customerId: Id,
    phone: z.string(),
    name: z.string().nullable(),
    source: z.string(),
    referredBy: Id.nullable(),
    referralCode: z.string(),
    welcomePoints: z.number().int(),
    balance: Balance,
    occurredAt: z.string(),
  }),
  'bonus.granted': z.looseObject({
    customerId: Id,
    campaignId: Id,
    campaignName: z.string(),
    kind: z.string(),
    points: z.number().int(),
    purchaseId: Id.nullable().optional(),
    expiresAt: z.string().nullable(),
    occurredAt: z.string(),
  }),
  'hold.created': z.looseObject({
    holdId: Id,
    customerId: Id,
    points: z.number().int(),
    expiresAt: z.string(),
    balance: Balance,
    outletId: z.string().nullable().optional(),
    occurredAt: z.string(),
  }),
  // reason: cancelled (POST /holds/{id}/cancel), expired (past its expiry), committed (a purchase
  // redeemed the points: purchaseId).
  'hold.released': z.looseObject({
    holdId: Id,
    customerId: Id,
    points: z.number().int(),
    reason: z.enum(['cancelled', 'expired', 'committed']),
    purchaseId: Id.nullable().optional(),
    balance: Balance,
    occurredAt: z.string(),
  }),
  'webhook.test': z.looseObject({ message: z.string(), occurredAt: z.string() }),
  'staff.large_purchase': z.looseObject({ purchaseId: Id, orderId: z.string(), total: z.number().int() }),
  'staff.daily_summary': z.looseObject({
    date: z.string(),
    purchases: z.number().int(),
    revenue: z.number().int(),
    pointsEarned: z.number().int(),
    pointsRedeemed: z.number().int(),
  }),
  'staff.webhook_failing': z.looseObject({ endpointId: Id, url: z.string(), lastError: z.string() }),
} as const;

/** Every event type the platform writes. */
export type EventType = keyof typeof EVENT_PAYLOADS;

/** Event types a merchant's webhook endpoint may subscribe to. */
export const WEBHOOK_EVENT_TYPES = [
  'purchase.committed',
  'purchase.refunded',
  'points.expired',
  'points.activated',
  'points.adjusted',
  'points.expiring',
  'customer.created',
  'customer.enrolled',
  'bonus.granted',
  'hold.created',
  'hold.released',
  'webhook.test',
] as const satisfies readonly EventType[];

/** Validates a stored payload; returns the parsed payload or an error message. */
export function parseEventPayload(
  type: string,
  payload: unknown,
): { ok: true; payload: Record<string, unknown> } | { ok: false; error: string } {
  const schema = EVENT_PAYLOADS[type as EventType];
  if (!schema) return { ok: false, error: `unknown event type ${type}` };
  const parsed = schema.safeParse(payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, error: `invalid ${type} payload: ${issue?.path.join('.')}: ${issue?.message}` };
  }
  return { ok: true, payload: parsed.data };
}
