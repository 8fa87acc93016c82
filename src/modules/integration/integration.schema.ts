import { z } from 'zod';
import { Phone } from '../../lib/phone.js';
import { text } from '../../lib/text.js';
import { EarnBreakdownItem } from '../campaigns/campaigns.schema.js';
import { MAX_AMOUNT_MINOR, Receipt } from '../programme/programme.schema.js';

/** A customer's one-time code as shown at the till. */
export const CustomerCode = z.string().regex(/^[0-9]{6}$/, 'expected the 6-digit customer code');

const refShape = {
  code: CustomerCode.optional(),
  phone: Phone.optional(),
  customerId: z.uuid().optional(),
};

const contextShape = {
  outletId: z.uuid().optional().describe('Outlet where the operation happens (an id issued by the platform)'),
  deviceId: z.uuid().optional().describe('POS device (an id issued by the platform)'),
  managerId: z.uuid().optional().describe('Cashier (an id issued by the platform)'),
};

type RefFields = { code?: string; phone?: string; customerId?: string };
type ContextFields = { outletId?: string; deviceId?: string; managerId?: string };

function exactlyOneRef(value: RefFields, ctx: z.RefinementCtx, path: string[] = []): void {
  const given = (['code', 'phone', 'customerId'] as const).filter((k) => value[k] !== undefined);
  if (given.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      path: given.length === 0 ? [...path, 'code'] : [...path, given[1] ?? 'code'],
      message: 'give exactly one of code, phone or customerId',
    });
  }
}

function requireContext(value: ContextFields, ctx: z.RefinementCtx): void {
  if (!value.outletId && !value.deviceId && !value.managerId) {
    ctx.addIssue({
      code: 'custom',
      path: ['outletId'],
      message: 'mutations need one of outletId, deviceId or managerId',
    });
  }
}

/** How a POS names the customer: exactly one of code, phone (E.164) or customerId. */
export const CustomerRefBody = z.strictObject(refShape).superRefine((v, ctx) => exactlyOneRef(v, ctx));

/** POST /customers/resolve */
export const ResolveCustomerBody = z
  .strictObject({ ...refShape, ...contextShape })
  .superRefine((v, ctx) => exactlyOneRef(v, ctx));
export type ResolveCustomerBody = z.infer<typeof ResolveCustomerBody>;

const quoteShape = {
  customer: CustomerRefBody,
  receipt: Receipt,
  redeemPoints: z
    .int()
    .min(0)
    .max(MAX_AMOUNT_MINOR)
    .optional()
    .describe(
      "Points to pay with (default 0; with holdId, the hold's points, and if given it must equal them)",
    ),
  holdId: z
    .uuid()
    .optional()
    .describe('A hold of this customer (POST /holds) whose points the purchase redeems'),
  ...contextShape,
};

/** POST /purchases/quote: what a purchase would earn and redeem; writes nothing. */
export const QuotePurchaseBody = z.strictObject(quoteShape);
export type QuotePurchaseBody = z.infer<typeof QuotePurchaseBody>;

/** POST /purchases: the quote body plus the POS order id. */
export const CommitPurchaseBody = z
  .strictObject({
    ...quoteShape,
    orderId: text(1, 128).describe('POS order id, unique per merchant'),
  })
  .superRefine(requireContext);
export type CommitPurchaseBody = z.infer<typeof CommitPurchaseBody>;

/** A date of birth: YYYY-MM-DD, a real calendar date, from 1900 to today. */
export const BirthDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, 'expected a date YYYY-MM-DD')
  .refine((value) => {
    // A value of another shape is reported by the regex alone.
    if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return true;
    const date = new Date(`${value}T00:00:00Z`);
    return (
      !Number.isNaN(date.getTime()) &&
      date.toISOString().startsWith(value) &&
      value >= '1900-01-01' &&
      date.getTime() <= Date.now()
    );
  }, 'expected a real date of birth YYYY-MM-DD, not in the future')
  .meta({ format: 'date' });

/**
 * POST /customers: enroll a customer at the till. The POS context (outletId, deviceId, managerId) is
 * optional here: it is checked when given.
 */
export const EnrollCustomerBody = z.strictObject({
  phone: Phone,
  name: text(1, 200).optional().describe("The customer's name"),
  birthDate: BirthDate.optional().describe('Date of birth (birthday campaigns)'),
  referralCode: text(1, 32).optional().describe('The referral code of the customer who brought this one'),
  ...contextShape,
});
export type EnrollCustomerBody = z.infer<typeof EnrollCustomerBody>;

/** A receipt line given back: named by its position in the receipt (0-based) or its sku. */
export const RefundItemBody = z
  .strictObject({
    index: z.int().min(0).max(999).optional().describe('Position of the line in the receipt, from 0'),
    sku: text(1, 128).optional().describe('sku of the line (the first such line with something left)'),
    amount: z.int().min(1).max(MAX_AMOUNT_MINOR).describe('Part of the line total given back'),
  })
  .superRefine((item, ctx) => {
    if ((item.index === undefined) === (item.sku === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['index'], message: 'give exactly one of index or sku' });
    }
  });

/**
 * POST /purchases/{id}/refunds: `amount` in minor units (points move pro rata to amount / total),
 * or `items`, the receipt lines given back (points move with what those lines earned and what points
 * paid for them); neither = all that is left.
 */
export const RefundPurchaseBody = z
  .strictObject({
    amount: z.int().min(1).max(MAX_AMOUNT_MINOR).optional().describe('Part of the receipt total given back'),
    items: z.array(RefundItemBody).min(1).max(1000).optional().describe('Receipt lines given back'),
    ...contextShape,
  })
  .superRefine((body, ctx) => {
    requireContext(body, ctx);
    if (body.amount !== undefined && body.items !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['items'], message: 'give amount or items, not both' });
    }
  });
export type RefundPurchaseBody = z.infer<typeof RefundPurchaseBody>;

/** Headers of a mutation. */
export const IdempotencyHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x21-\x7e]+$/, 'expected 1-255 visible ASCII characters')
    .describe('Unique per operation; a retry with the same key and body replays the first answer'),
});

/** Shared by the hold schemas (holds.schema.ts). */
export { contextShape, requireContext };

/** Path parameters naming a purchase. */
export const PurchaseParams = z.strictObject({ id: z.uuid() });

/** A balance: available excludes the points held for purchases (held) and those not yet active (pending). */
export const BalanceBody = z.object({ available: z.int(), pending: z.int(), held: z.int() });
const TierBody = z.object({ name: z.string(), earnRateBp: z.int(), spend: z.int() }).nullable();

/** Answer of resolve. */
export const ResolveCustomerResponse = z.object({
  customer: z.object({ id: z.uuid(), name: z.string().nullable(), phone: z.string() }),
  balance: BalanceBody,
  tier: TierBody,
});

/** Answer of enrollment (201, and its replays): the balance includes the welcome points. */
export const EnrollCustomerResponse = z.object({
  customer: z.object({
    id: z.uuid(),
    phone: z.string(),
    name: z.string().nullable(),
    referralCode: z.string(),
  }),
  balance: BalanceBody,
});
export type EnrollCustomerResponse = z.infer<typeof EnrollCustomerResponse>;

/** Answer of quote. */
export const QuoteResponse = z.object({
  earnPoints: z.int(),
  earnBreakdown: z
    .array(EarnBreakdownItem)
    .describe('Why: base, tier and campaign points, adding up to earnPoints'),
  maxRedeemPoints: z.int(),
  redeemPoints: z.int(),
  discount: z.int(),
  payable: z.int(),
  eligibleAmount: z.int(),
  earnRateBp: z.int(),
  customer: z.object({ id: z.uuid() }),
  balance: BalanceBody,
  tier: TierBody,
});

const PurchaseSummary = z.object({
  id: z.uuid(),
  orderId: z.string(),
  customerId: z.uuid(),
  status: z.enum(['committed', 'partially_refunded', 'refunded']),
  total: z.int(),
  discount: z.int(),
  payable: z.int(),
  earnedPoints: z.int(),
  redeemedPoints: z.int(),
  createdAt: z.string(),
  earnBreakdown: z
    .array(EarnBreakdownItem)
    .describe('Why: base, tier and campaign points as applied, adding up to earnedPoints'),
});

/** Answer of commit (201, and its replays). */
export const CommitResponse = z.object({ purchase: PurchaseSummary, balance: BalanceBody });

const RefundSummary = z.object({
  id: z.uuid(),
  amount: z.int(),
  returnedPoints: z.int(),
  revokedPoints: z.int(),
  unrecoveredPoints: z.int(),
  createdAt: z.string(),
});

/** Answer of refund (201, and its replays). */
export const RefundResponse = z.object({
  refund: RefundSummary.extend({ purchaseId: z.uuid(), orderId: z.string() }),
  balance: BalanceBody,
});

/** Answer of GET /purchases/{id}. */
export const PurchaseResponse = z.object({
  purchase: PurchaseSummary.extend({
    eligibleAmount: z.int(),
    earnRateBp: z.int(),
    tier: z.string().nullable(),
    refundedAmount: z.int(),
    returnedPoints: z.int(),
    revokedPoints: z.int(),
    unrecoveredPoints: z.int(),
    outletId: z.uuid().nullable(),
    deviceId: z.uuid().nullable(),
    managerId: z.uuid().nullable(),
    receipt: z.unknown(),
    refunds: z.array(
      RefundSummary.extend({
        outletId: z.uuid().nullable(),
        deviceId: z.uuid().nullable(),
        managerId: z.uuid().nullable(),
      }),
    ),
  }),
});

/** Error body of every route. */
export const ErrorResponse = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});
