import { z } from 'zod';
import { HOLD_TTL_SECONDS } from '../ledger/holds.service.js';
import { MAX_AMOUNT_MINOR, Receipt } from '../programme/programme.schema.js';
import { BalanceBody, CustomerRefBody, contextShape, requireContext } from './integration.schema.js';

/** POST /holds: reserve points for a purchase about to be paid. */
export const CreateHoldBody = z
  .strictObject({
    customer: CustomerRefBody.describe(
      'The customer, as for a purchase; a one-time code is not used up by a hold',
    ),
    receipt: Receipt.describe(
      "The receipt the points will pay for: the programme's redeem cap applies to it",
    ),
    redeemPoints: z.int().min(1).max(MAX_AMOUNT_MINOR).describe('Points to reserve'),
    ttlSeconds: z
      .int()
      .min(HOLD_TTL_SECONDS.min)
      .max(HOLD_TTL_SECONDS.max)
      .optional()
      .describe(`How long the hold lives (default ${HOLD_TTL_SECONDS.default} s); then its points come back`),
    ...contextShape,
  })
  .superRefine(requireContext);
export type CreateHoldBody = z.infer<typeof CreateHoldBody>;

/** POST /holds/{id}/cancel: only the POS context. */
export const CancelHoldBody = z.strictObject(contextShape).superRefine(requireContext);
export type CancelHoldBody = z.infer<typeof CancelHoldBody>;

/** Path parameters naming a hold. */
export const HoldParams = z.strictObject({ id: z.uuid() });

/** Answer of create (201, and its replays) and cancel (200). */
export const HoldResponse = z.object({
  hold: z.object({
    id: z.uuid(),
    customerId: z.uuid(),
    points: z.int(),
    status: z.enum(['active', 'committed', 'cancelled', 'expired']),
    expiresAt: z.string(),
    createdAt: z.string(),
    releasedAt: z.string().nullable(),
    purchaseId: z.uuid().nullable().describe('The purchase that redeemed the points (status committed)'),
  }),
  balance: BalanceBody,
});
