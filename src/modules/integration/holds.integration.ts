import type { MerchantAuth } from '../../http/auth.js';
import { cancelHold, createHold, HOLD_TTL_SECONDS, type HoldResult } from '../ledger/holds.service.js';
import { requestHash, runIdempotent } from '../ledger/idempotency.service.js';
import { quoteForCustomer } from '../ledger/ledger.service.js';
import type { CancelHoldBody, CreateHoldBody } from './holds.schema.js';
import {
  assertContext,
  campaignMoment,
  type IntegrationDeps,
  resolveCustomer,
  toRef,
} from './integration.service.js';

// The POS side of holds (POST /holds, POST /holds/{id}/cancel); the ledger side is
// ledger/holds.service.ts. A hold looks the customer up like a purchase but does not use up a
// one-time code: the purchase that follows may name the customer by the same code.

/** POST /holds: idempotent, like a purchase (the same Idempotency-Key machinery). */
export async function holdForPos(
  deps: IntegrationDeps,
  auth: MerchantAuth,
  body: CreateHoldBody,
  idempotencyKey: string,
): Promise<{ result: HoldResult; isReplay: boolean }> {
  const hash = requestHash('holds.create', body);
  const outcome = await runIdempotent(
    deps.db,
    { merchantId: auth.merchantId, key: idempotencyKey, hash },
    async () => {
      const [customer] = await Promise.all([
        resolveCustomer(deps, auth, toRef(body.customer)),
        assertContext(deps, auth, body),
      ]);
      // The programme's rules for this receipt, as a quote applies them (redeem cap, available
      // balance: redeem_limit_exceeded, insufficient_points); the ledger checks the balance again
      // under lock.
      quoteForCustomer({
        rules: auth.rules,
        customer,
        receipt: body.receipt,
        redeemPoints: body.redeemPoints,
        context: body,
        ...(await campaignMoment(deps, auth, customer.id)),
      });
      return createHold(deps.db, {
        merchantId: auth.merchantId,
        customerId: customer.id,
        points: body.redeemPoints,
        ttlSeconds: body.ttlSeconds ?? HOLD_TTL_SECONDS.default,
        receipt: body.receipt,
        context: body,
        idempotencyKey,
        requestHash: hash,
      });
    },
  );
  if (!outcome.isReplay) deps.notifier?.poke();
  return outcome;
}

/** POST /holds/{id}/cancel: gives the points back; repeating it answers the same. */
export async function cancelHoldForPos(
  deps: IntegrationDeps,
  auth: MerchantAuth,
  holdId: string,
  body: CancelHoldBody,
): Promise<HoldResult> {
  await assertContext(deps, auth, body);
  const result = await cancelHold(deps.db, { merchantId: auth.merchantId, holdId });
  deps.notifier?.poke();
  return result;
}
