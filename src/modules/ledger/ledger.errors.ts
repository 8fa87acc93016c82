import { AppError, ERROR_STATUS, type ErrorCode } from '../../http/errors.js';

const MESSAGES: Partial<Record<ErrorCode, string>> = {
  insufficient_points: 'Not enough available points',
  customer_not_found: 'Customer not found',
  code_not_found: 'Code not found, expired or already used',
  purchase_not_found: 'Purchase not found',
  purchase_fully_refunded: 'The purchase is already fully refunded',
  refund_exceeds_remaining: 'Refund amount exceeds what is left to refund',
  refund_item_not_found:
    'No receipt line of the purchase matches this item (or it has nothing left to refund)',
  refund_items_unavailable: 'The purchase receipt has no lines: refund by amount',
  refund_mode_conflict:
    'A purchase refunded by amount cannot be refunded by line, nor one refunded by line by part of an amount',
  duplicate_order_id: 'A purchase with this orderId already exists',
  hold_not_found: 'Hold not found',
  hold_not_active: 'The hold is not active: its points were already redeemed, or it was cancelled',
  hold_expired: 'The hold has expired and its points were released',
  hold_customer_mismatch: 'The hold belongs to another customer',
  hold_mismatch: 'redeemPoints must equal the points of the hold',
};

interface PgError {
  code?: string;
  message?: string;
  detail?: string;
  constraint?: string;
}

/**
 * Maps errors raised by the ledger SQL functions (SQLSTATE P0001, code as message, JSON details)
 * and known constraint violations to AppErrors; anything else is rethrown as it is.
 */
export function toAppError(error: unknown): unknown {
  const e = error as PgError;
  if (e?.code === 'P0001' && e.message && e.message in ERROR_STATUS) {
    const code = e.message as ErrorCode;
    let details: unknown;
    try {
      details = e.detail ? JSON.parse(e.detail) : undefined;
    } catch {
      details = undefined;
    }
    const hasDetails = details && typeof details === 'object' && Object.keys(details).length > 0;
    return new AppError(code, MESSAGES[code] ?? code, hasDetails ? details : undefined);
  }
  if (e?.code === '23505' && e.constraint === 'purchases_order_id_unique') {
    return new AppError('duplicate_order_id', MESSAGES.duplicate_order_id ?? '', undefined);
  }
  return error;
}
