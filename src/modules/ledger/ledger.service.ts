import { sql } from 'kysely';
import { type Executor, prepared } from '../../db/database.js';
import { AppError } from '../../http/errors.js';
import { activeTraceCarrier, withSpan } from '../../lib/tracing.js';
import { explainEarn, type RuleCampaign } from '../campaigns/campaigns.rules.js';
import type { EarnBreakdownItem } from '../campaigns/campaigns.schema.js';
import type { CustomerState } from '../customers/customers.service.js';
import {
  isExcludedItem,
  type QuoteResult,
  quotePurchase,
  RuleViolation,
} from '../programme/programme.rules.js';
import type { ProgrammeRules, Receipt } from '../programme/programme.schema.js';
import type { PurchaseCommitter } from './ledger.batcher.js';
import { toAppError } from './ledger.errors.js';

/** Where a POS operation happened; ids are the platform's, checked against the merchant. */
export interface PosContext {
  outletId?: string;
  deviceId?: string;
  managerId?: string;
}

/** Where a purchase stands after its refunds. */
export type PurchaseStatus = 'committed' | 'partially_refunded' | 'refunded';

/** The balance as clients see it; available excludes the points held for a purchase (held). */
export interface Balance {
  available: number;
  pending: number;
  held: number;
}

/** What a committed purchase returns (and what its Idempotency-Key replays). */
export interface CommitResult {
  purchase: {
    id: string;
    orderId: string;
    customerId: string;
    status: PurchaseStatus;
    total: number;
    discount: number;
    payable: number;
    earnedPoints: number;
    redeemedPoints: number;
    createdAt: string;
    /** Why it earned what it did (base, tier, campaigns); adds up to earnedPoints. */
    earnBreakdown: EarnBreakdownItem[];
  };
  balance: Balance;
}

/** What a refund returns (and what its Idempotency-Key replays). */
export interface RefundResult {
  refund: {
    id: string;
    purchaseId: string;
    orderId: string;
    amount: number;
    returnedPoints: number;
    revokedPoints: number;
    unrecoveredPoints: number;
    createdAt: string;
  };
  balance: Balance;
}

/** Where and when a purchase happens, for its campaigns. */
export interface CampaignMoment {
  /** Campaigns that may apply (CampaignCache.forPurchase); none = the programme alone. */
  campaigns: readonly RuleCampaign[];
  timeZone: string;
  at: Date;
}

/** A quote with its earn explained: earnPoints includes campaign points. */
export type ExplainedQuote = QuoteResult & { earnBreakdown: EarnBreakdownItem[] };

/**
 * Applies the programme and the campaigns to a receipt for a customer, as quote and commit both
 * do; rule violations become 422s.
 */
export function quoteForCustomer(
  options: {
    rules: ProgrammeRules;
    customer: Pick<CustomerState, 'available' | 'spend'>;
    receipt: Receipt;
    redeemPoints: number;
    context?: PosContext;
  } & Partial<CampaignMoment>,
): ExplainedQuote {
  let quote: QuoteResult;
  try {
    quote = quotePurchase({
      rules: options.rules,
      receipt: options.receipt,
      redeemPoints: options.redeemPoints,
      availablePoints: options.customer.available,
      tierSpend: options.customer.spend,
    });
  } catch (error) {
    if (error instanceof RuleViolation) {
      throw new AppError(error.code, error.message, error.details);
    }
    throw error;
  }
  const explained = explainEarn(
    {
      rules: options.rules,
      receipt: options.receipt,
      quote,
      at: options.at ?? new Date(),
      timeZone: options.timeZone ?? 'UTC',
      outletId: options.context?.outletId ?? null,
    },
    options.campaigns ?? [],
  );
  return { ...quote, earnPoints: explained.earnPoints, earnBreakdown: explained.earnBreakdown };
}

/** Calls a ledger function that takes and returns one jsonb; its errors become AppErrors. */
export async function callLedger<T>(
  db: Executor,
  fn: 'loyalty_commit_purchase' | 'loyalty_refund_purchase' | 'loyalty_create_hold' | 'loyalty_cancel_hold',
  p: object,
) {
  return withSpan(`ledger ${fn}`, { attributes: { 'db.system': 'postgresql' } }, async () => {
    try {
      // While tracing is on, the outbox events the function writes get the trace context as the
      // column default (loyalty.trace_context, local to this one-statement transaction; the
      // subquery with the volatile set_config runs before the function).
      const carrier = activeTraceCarrier();
      const result = carrier
        ? await prepared(sql<{ r: T }>`select ${sql.raw(fn)}(${JSON.stringify(p)}::jsonb) as r
            from (select set_config('loyalty.trace_context', ${JSON.stringify(carrier)}, true)) as t`).execute(
            db,
          )
        : await prepared(sql<{ r: T }>`select ${sql.raw(fn)}(${JSON.stringify(p)}::jsonb) as r`).execute(db);
      const row = result.rows[0];
      if (!row) throw new Error(`${fn} returned no row`);
      return row.r;
    } catch (error) {
      throw toAppError(error);
    }
  });
}

/**
 * Commits a purchase in one transaction (one SQL function call): redeems FIFO by expiry, records
 * the earned lot, the ledger entries, the outbox event, consumes the code and completes the
 * idempotency record. The figures come from the same quote a POS sees.
 */
export async function commitPurchase(
  db: Executor,
  options: {
    merchantId: string;
    rules: ProgrammeRules;
    customer: CustomerState;
    code?: string;
    orderId: string;
    receipt: Receipt;
    redeemPoints: number;
    context: PosContext;
    idempotencyKey?: string;
    requestHash?: string;
    /** Group commit: runs the call together with concurrent ones (GROUP_COMMIT). */
    batcher?: PurchaseCommitter;
    /** The hold whose points this purchase redeems (redeemPoints must equal them). */
    holdId?: string;
  } & Partial<CampaignMoment>,
): Promise<CommitResult & { replayed?: boolean }> {
  const { rules, receipt } = options;
  const quote = quoteForCustomer(options);
  // The programme's part is earned by the purchase's own lot; each campaign line becomes a lot
  // of its own, granted (within its limits, checked again under lock) by loyalty_grant_campaigns.
  const programmeEarn = quote.earnBreakdown
    .filter((item) => item.source !== 'campaign')
    .reduce((sum, item) => sum + item.points, 0);
  const payload = {
    merchantId: options.merchantId,
    customerId: options.customer.id,
    orderId: options.orderId,
    code: options.code ?? null,
    idempotencyKey: options.idempotencyKey ?? null,
    requestHash: options.requestHash ?? null,
    outletId: options.context.outletId ?? null,
    deviceId: options.context.deviceId ?? null,
    managerId: options.context.managerId ?? null,
    total: receipt.total,
    eligibleAmount: quote.eligibleAmount,
    discount: quote.discount,
    earnPoints: programmeEarn,
    earnBreakdown: quote.earnBreakdown,
    redeemPoints: quote.redeemPoints,
    earnRateBp: quote.earnRateBp,
    tier: quote.tier?.name ?? null,
    receipt,
    // Fixed at commit: a refund by receipt line needs what each line could earn and be paid with.
    lineEligible: receipt.items?.map((item) => !isExcludedItem(rules, item)) ?? null,
    pendingDays: rules.pendingDays,
    lifetimeDays: rules.pointsLifetimeDays,
    holdId: options.holdId ?? null,
  };
  if (options.batcher) return options.batcher.commit<CommitResult>(payload);
  return callLedger<CommitResult>(db, 'loyalty_commit_purchase', payload);
}

/** A receipt line to refund: by its position in the receipt (0-based) or its sku, and how much of it. */
export interface RefundItem {
  index?: number;
  sku?: string;
  amount: number;
}

/**
 * Refunds `amount`, the given receipt lines, or all that is left of a purchase: redeemed points go
 * back to the lots they came from, earned points are revoked as far as they were not lost to
 * expiry, never below zero (the shortfall is unrecoveredPoints, settled when points come back).
 * docs/decisions/002-ledger-provenance.md has the rules.
 */
export async function refundPurchase(
  db: Executor,
  options: {
    merchantId: string;
    rules: ProgrammeRules;
    purchaseId: string;
    amount?: number;
    items?: RefundItem[];
    context: PosContext;
    idempotencyKey?: string;
    requestHash?: string;
  },
): Promise<RefundResult & { replayed?: boolean }> {
  return callLedger<RefundResult>(db, 'loyalty_refund_purchase', {
    merchantId: options.merchantId,
    purchaseId: options.purchaseId,
    amount: options.amount ?? null,
    items: options.items ?? null,
    idempotencyKey: options.idempotencyKey ?? null,
    requestHash: options.requestHash ?? null,
    outletId: options.context.outletId ?? null,
    deviceId: options.context.deviceId ?? null,
    managerId: options.context.managerId ?? null,
    lifetimeDays: options.rules.pointsLifetimeDays,
    // Receipts of purchases committed before lines were classified at commit are judged by today's rules.
    excludedCategories: options.rules.excludedCategories,
  });
}

/** A merchant's purchase with its refunds; 404 for another merchant's or an unknown id. */
export async function getPurchase(db: Executor, options: { merchantId: string; purchaseId: string }) {
  const purchase = await db
    .selectFrom('purchases')
    .selectAll()
    .where('id', '=', options.purchaseId)
    .where('merchant_id', '=', options.merchantId)
    .executeTakeFirst();
  if (!purchase) throw new AppError('purchase_not_found', 'Purchase not found');
  const refunds = await db
    .selectFrom('refunds')
    .selectAll()
    .where('purchase_id', '=', purchase.id)
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return {
    id: purchase.id,
    orderId: purchase.order_id,
    customerId: purchase.customer_id,
    status: purchase.status as PurchaseStatus,
    total: purchase.total,
    eligibleAmount: purchase.eligible_amount,
    discount: purchase.discount,
    payable: purchase.total - purchase.discount,
    earnedPoints: purchase.earned_points,
    redeemedPoints: purchase.redeemed_points,
    earnRateBp: purchase.earn_rate_bp,
    tier: purchase.tier,
    refundedAmount: purchase.refunded_amount,
    returnedPoints: purchase.returned_points,
    revokedPoints: purchase.revoked_points,
    unrecoveredPoints: purchase.unrecovered_points,
    outletId: purchase.outlet_id,
    deviceId: purchase.device_id,
    managerId: purchase.manager_id,
    receipt: purchase.receipt,
    createdAt: purchase.created_at.toISOString(),
    earnBreakdown: (purchase.earn_breakdown as EarnBreakdownItem[] | null) ?? [
      // Purchases committed before campaigns: all their points came from the programme.
      { source: 'base' as const, campaignId: null, name: 'Base', points: purchase.earned_points },
    ],
    refunds: refunds.map((r) => ({
      id: r.id,
      amount: r.amount,
      returnedPoints: r.returned_points,
      revokedPoints: r.revoked_points,
      unrecoveredPoints: r.unrecovered_points,
      outletId: r.outlet_id,
      deviceId: r.device_id,
      managerId: r.manager_id,
      createdAt: r.created_at.toISOString(),
    })),
  };
}

/** Totals of one expiry or activation run. */
export interface BatchResult {
  customers: number;
  points: number;
}

/** Runs a batch job's ledger function until a batch comes back short. */
export async function runInBatches(
  db: Executor,
  fn: 'loyalty_expire_points' | 'loyalty_activate_points' | 'loyalty_release_expired_holds',
  options: { now?: Date; batchSize?: number },
): Promise<BatchResult> {
  // Without an explicit time, PostgreSQL's now() decides: the database is the single clock of record,
  // so an app server whose clock jumps ahead cannot expire or activate points early.
  const now = atOrNow(options.now);
  const batchSize = options.batchSize ?? 500;
  const total: BatchResult = { customers: 0, points: 0 };
  // Each call is its own short transaction over at most batchSize customers; loop until done.
  for (;;) {
    const result = await sql<{ r: BatchResult & { scanned: number } }>`
      select ${sql.raw(fn)}(${now}, ${batchSize}) as r`.execute(db);
    const batch = result.rows[0]?.r ?? { customers: 0, points: 0, scanned: 0 };
    total.customers += batch.customers;
    total.points += batch.points;
    // A customer looked at may have had nothing left to move, so the batch size is judged by scanned.
    if (batch.scanned < batchSize) return total;
  }
}

/** `at` as a timestamptz parameter, or PostgreSQL's now() when none is given. */
function atOrNow(at: Date | undefined) {
  return at === undefined ? sql<Date>`now()` : sql<Date>`${at}::timestamptz`;
}

/** Expires every lot whose expiry is at or before `now` (default: the database's now()); safe to run concurrently. */
export function expirePoints(db: Executor, options: { now?: Date; batchSize?: number } = {}) {
  return runInBatches(db, 'loyalty_expire_points', options);
}

/** Makes available every pending lot whose pending period ended at or before `now` (default: the database's now()). */
export function activatePoints(db: Executor, options: { now?: Date; batchSize?: number } = {}) {
  return runInBatches(db, 'loyalty_activate_points', options);
}

/** Adds (positive) or takes (negative) points by hand, with a reason; never below zero. */
export async function adjustPoints(
  db: Executor,
  options: { merchantId: string; customerId: string; points: number; reason: string; rules: ProgrammeRules },
): Promise<Balance> {
  try {
    const result = await sql<{ r: Balance }>`
      select loyalty_adjust_points(${options.merchantId}, ${options.customerId}, ${options.points},
                                   ${options.reason}, ${options.rules.pointsLifetimeDays}::integer) as r
    `.execute(db);
    const row = result.rows[0];
    if (!row) throw new Error('loyalty_adjust_points returned no row');
    return row.r;
  } catch (error) {
    throw toAppError(error);
  }
}

/**
 * Writes one `points.expiring` event per customer whose points expire within `withinDays` of `now`
 * (the sum of those lots and the soonest expiry); each lot is reminded of once, so running it
 * again, or on two replicas at once (SKIP LOCKED), sends nothing twice.
 */
export async function remindExpiringPoints(
  db: Executor,
  options: { now?: Date; withinDays: number },
): Promise<{ customers: number; points: number }> {
  const now = atOrNow(options.now);
  const { rows } = await sql<{ points: number }>`
    with due as (
      select id from point_lots
      where state = 'active' and remaining > 0 and expires_at is not null and expiry_reminded_at is null
        and expires_at > ${now} and expires_at <= ${now}::timestamptz + make_interval(days => ${options.withinDays})
      for update skip locked
    ), marked as (
      update point_lots l set expiry_reminded_at = ${now}
      from due where l.id = due.id
      returning l.merchant_id, l.customer_id, l.remaining, l.expires_at
    ), per_customer as (
      select merchant_id, customer_id, sum(remaining)::bigint as points, min(expires_at) as expires_at
      from marked group by merchant_id, customer_id
    )
    insert into outbox_events (merchant_id, type, payload)
    select merchant_id, 'points.expiring', jsonb_build_object(
      'customerId', customer_id, 'points', points, 'expiresAt', loyalty_iso(expires_at),
      'balance', loyalty_balance_json(customer_id), 'occurredAt', loyalty_iso(${now}))
    from per_customer
    returning (payload->>'points')::bigint as points
  `.execute(db);
  return { customers: rows.length, points: rows.reduce((sum, r) => sum + Number(r.points), 0) };
}
