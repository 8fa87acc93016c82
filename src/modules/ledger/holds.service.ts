import type { Executor } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import type { Receipt } from '../programme/programme.schema.js';
import {
  type Balance,
  type BatchResult,
  callLedger,
  type PosContext,
  runInBatches,
} from './ledger.service.js';

// Holds: points reserved before payment and redeemed by the purchase that names the hold
// (docs/decisions/004-holds.md). The ledger functions do the work: loyalty_create_hold,
// loyalty_cancel_hold, loyalty_release_expired_holds; a commit with holdId goes through
// loyalty_commit_purchase (loyalty_use_hold, loyalty_take_hold_points).

/** Where a hold stands: active until it is redeemed, cancelled or past its expiry. */
export type HoldStatus = 'active' | 'committed' | 'cancelled' | 'expired';

/** What create and cancel answer (and what a hold's Idempotency-Key replays). */
export interface HoldResult {
  hold: {
    id: string;
    customerId: string;
    points: number;
    status: HoldStatus;
    expiresAt: string;
    createdAt: string;
    releasedAt: string | null;
    purchaseId: string | null;
  };
  balance: Balance;
}

/** Default lifetime of a hold, and its bounds (ttlSeconds). */
export const HOLD_TTL_SECONDS = { default: 900, min: 30, max: 86_400 } as const;

/**
 * Reserves `points` of the customer's available balance (checked under lock; the caller checked
 * the programme's redeem cap for the receipt) until `ttlSeconds` from the database's now().
 */
export function createHold(
  db: Executor,
  options: {
    merchantId: string;
    customerId: string;
    points: number;
    ttlSeconds: number;
    receipt: Receipt;
    context: PosContext;
    idempotencyKey?: string;
    requestHash?: string;
  },
): Promise<HoldResult & { replayed?: boolean }> {
  return callLedger<HoldResult>(db, 'loyalty_create_hold', {
    merchantId: options.merchantId,
    customerId: options.customerId,
    points: options.points,
    ttlSeconds: options.ttlSeconds,
    receipt: options.receipt,
    idempotencyKey: options.idempotencyKey ?? null,
    requestHash: options.requestHash ?? null,
    outletId: options.context.outletId ?? null,
    deviceId: options.context.deviceId ?? null,
    managerId: options.context.managerId ?? null,
  });
}

/** Cancels a hold (its points go back to their lots); a cancelled or expired one answers as it is. */
export function cancelHold(
  db: Executor,
  options: { merchantId: string; holdId: string },
): Promise<HoldResult> {
  return callLedger<HoldResult>(db, 'loyalty_cancel_hold', options);
}

/** A hold a purchase is about to redeem, as it stands now (the commit checks it again under lock). */
export interface HoldForRedeem {
  id: string;
  customerId: string;
  points: number;
}

/**
 * The merchant's hold `holdId` if it can be redeemed by the customer now; otherwise the error the
 * commit would answer (hold_not_found, hold_customer_mismatch, hold_expired, hold_not_active).
 */
export async function findHoldForRedeem(
  db: Executor,
  options: { merchantId: string; holdId: string; customerId: string },
): Promise<HoldForRedeem> {
  const hold = await db
    .selectFrom('holds')
    .select(['id', 'customer_id', 'points', 'status', 'expires_at'])
    .select((eb) => eb('expires_at', '<=', eb.fn<Date>('now', [])).as('is_due'))
    .where('id', '=', options.holdId)
    .where('merchant_id', '=', options.merchantId)
    .executeTakeFirst();
  if (!hold) throw new AppError('hold_not_found', 'Hold not found', { field: 'holdId' });
  if (hold.customer_id !== options.customerId) {
    throw new AppError('hold_customer_mismatch', 'The hold belongs to another customer', { field: 'holdId' });
  }
  if (hold.status === 'expired' || (hold.status === 'active' && hold.is_due)) {
    throw new AppError('hold_expired', 'The hold has expired and its points were released', {
      field: 'holdId',
      expiresAt: hold.expires_at.toISOString(),
    });
  }
  if (hold.status !== 'active') {
    throw new AppError('hold_not_active', `The hold is ${hold.status}`, {
      field: 'holdId',
      status: hold.status,
    });
  }
  return { id: hold.id, customerId: hold.customer_id, points: hold.points };
}

/** Releases every active hold past its expiry at `now` (default: the database's now()); safe to run concurrently. */
export function releaseExpiredHolds(
  db: Executor,
  options: { now?: Date; batchSize?: number } = {},
): Promise<BatchResult> {
  return runInBatches(db, 'loyalty_release_expired_holds', options);
}
