import { randomUUID } from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import type { Balance } from '../../src/modules/ledger/ledger.service.js';
import type { TestMerchant } from './factories.js';

// Requests a till makes to the integration (POS) API, for tests that drive the ledger through it.
// Answers are typed with the service's own CommitResult / RefundResult / Balance.

export const DAY_MS = 86_400_000;

export function daysFromNow(days: number): Date {
  return new Date(Date.now() + days * DAY_MS);
}

/** The `error.code` of an error answer (undefined when there is none). */
export function errorCode(res: LightMyRequestResponse): string | undefined {
  return res.json<{ error?: { code?: string } }>().error?.code;
}

/** A purchase commit body at the merchant's outlet; a fresh orderId unless given, no redemption unless given. */
export function commitPayload(
  merchant: TestMerchant,
  input: { customerId: string; total: number; redeemPoints?: number; orderId?: string },
) {
  return {
    customer: { customerId: input.customerId },
    receipt: { total: input.total },
    redeemPoints: input.redeemPoints ?? 0,
    orderId: input.orderId ?? `order-${randomUUID()}`,
    outletId: merchant.outletId,
  };
}

/** POST /purchases with the merchant's key and an Idempotency-Key (a fresh one unless given). */
export function postCommit(
  app: FastifyInstance,
  merchant: TestMerchant,
  payload: object,
  key: string = randomUUID(),
) {
  return app.inject({
    method: 'POST',
    url: '/api/v1/integration/purchases',
    headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': key },
    payload,
  });
}

/** POST /purchases/:id/refunds at the merchant's outlet; `amount` undefined refunds all that is left. */
export function postRefund(
  app: FastifyInstance,
  merchant: TestMerchant,
  purchaseId: string,
  amount: number | undefined,
  key: string = randomUUID(),
) {
  return app.inject({
    method: 'POST',
    url: `/api/v1/integration/purchases/${purchaseId}/refunds`,
    headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': key },
    payload: amount === undefined ? { outletId: merchant.outletId } : { amount, outletId: merchant.outletId },
  });
}

/** POST /purchases/quote with the merchant's key. */
export function postQuote(app: FastifyInstance, merchant: TestMerchant, payload: object) {
  return app.inject({
    method: 'POST',
    url: '/api/v1/integration/purchases/quote',
    headers: { 'x-api-key': merchant.apiKey },
    payload,
  });
}

/** POST /customers/resolve with the merchant's key. */
export function resolveCustomer(
  app: FastifyInstance,
  merchant: TestMerchant,
  ref: { customerId: string } | { phone: string },
) {
  return app.inject({
    method: 'POST',
    url: '/api/v1/integration/customers/resolve',
    headers: { 'x-api-key': merchant.apiKey },
    payload: ref,
  });
}

/** The customer's balance as the POS sees it; expects 200. */
export async function balanceOf(
  app: FastifyInstance,
  merchant: TestMerchant,
  customerId: string,
): Promise<Balance> {
  const res = await resolveCustomer(app, merchant, { customerId });
  expect(res.statusCode).toBe(200);
  return res.json<{ balance: Balance }>().balance;
}

/** The most points a quote lets the customer redeem on a receipt of `total`; expects 200. */
export async function quoteMaxRedeem(
  app: FastifyInstance,
  merchant: TestMerchant,
  customerId: string,
  total: number,
): Promise<number> {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/integration/purchases/quote',
    headers: { 'x-api-key': merchant.apiKey },
    payload: { customer: { customerId }, receipt: { total } },
  });
  expect(res.statusCode).toBe(200);
  return res.json<{ maxRedeemPoints: number }>().maxRedeemPoints;
}

/** POST /holds with the merchant's key at its outlet and an Idempotency-Key (a fresh one unless given). */
export function postHold(
  app: FastifyInstance,
  merchant: TestMerchant,
  payload: Record<string, unknown>,
  key: string = randomUUID(),
) {
  return app.inject({
    method: 'POST',
    url: '/api/v1/integration/holds',
    headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': key },
    payload: { outletId: merchant.outletId, ...payload },
  });
}

/** POST /holds/:id/cancel with the merchant's key at its outlet. */
export function postCancelHold(app: FastifyInstance, merchant: TestMerchant, holdId: string) {
  return app.inject({
    method: 'POST',
    url: `/api/v1/integration/holds/${holdId}/cancel`,
    headers: { 'x-api-key': merchant.apiKey },
    payload: { outletId: merchant.outletId },
  });
}
