import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../../db/database.js';
import { text } from '../../lib/text.js';
import { BirthDate, ErrorResponse } from '../integration/integration.schema.js';
import {
  adjustCustomerPoints,
  getCustomerDetail,
  getCustomerLedger,
  searchCustomers,
  updateCustomerBirthDate,
} from './customers.service.js';
import { actorOf, allow, IdParams, merchantIdOf, portalErrors, portalSecurity } from './portal.http.js';

const tags = ['portal: customers'];
const Balance = z.object({ available: z.int(), pending: z.int(), held: z.int() });
const ListQuery = z.strictObject({
  q: z.string().max(100).optional().describe('Phone digits or part of the name (case-insensitive)'),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
});
const LedgerQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  before: z.coerce.number().int().min(1).optional().describe('Entries with a smaller id (the next page)'),
});
const AdjustBody = z.strictObject({
  points: z
    .int()
    .min(-1_000_000_000)
    .max(1_000_000_000)
    .refine((p) => p !== 0, 'must not be zero')
    .describe('Points to add (positive) or take (negative)'),
  reason: text(1, 200),
});
const UpdateBody = z.strictObject({
  birthDate: BirthDate.nullable().describe('YYYY-MM-DD, or null to clear it (birthday campaigns)'),
});

const CustomerListResponse = z.object({
  items: z.array(
    z.object({
      id: z.uuid(),
      name: z.string().nullable(),
      phone: z.string(),
      available: z.int(),
      pending: z.int(),
      held: z.int(),
      createdAt: z.date(),
      lastPurchaseAt: z.date().nullable(),
    }),
  ),
  total: z.int(),
});
const CustomerResponse = z.object({
  customer: z.object({
    id: z.uuid(),
    name: z.string().nullable(),
    phone: z.string(),
    createdAt: z.date(),
    lastPurchaseAt: z.date().nullable(),
    hasTelegram: z.boolean(),
    referralCode: z.string().describe('The code friends give to join as this customer’s referrals'),
    referredBy: z.uuid().nullable().describe('The customer who referred this one'),
    birthDate: z.string().nullable().describe('YYYY-MM-DD (birthday campaigns)'),
  }),
  balance: Balance,
  tier: z
    .object({
      name: z.string().nullable().describe('null below the first tier'),
      earnRateBp: z.int(),
      spend: z.int(),
      next: z.object({ name: z.string(), minSpend: z.int() }).nullable(),
    })
    .nullable()
    .describe('null when the programme has no tiers'),
});
const LedgerResponse = z.object({
  items: z.array(
    z.object({
      id: z.int(),
      kind: z.string(),
      bucket: z.string(),
      points: z.int(),
      purchaseId: z.uuid().nullable(),
      refundId: z.uuid().nullable(),
      orderId: z.string().nullable(),
      reason: z.string().nullable(),
      createdAt: z.date(),
    }),
  ),
});

/**
 * Customers: search, profile, ledger (customers:read), the date of birth (customers:write) and manual
 * adjustments (customers:adjust).
 */
export function customerRoutes(deps: { db: Database }): FastifyPluginAsyncZod {
  const { db } = deps;
  return async (app) => {
    app.get(
      '/customers',
      {
        onRequest: allow('customers:read'),
        schema: {
          tags,
          summary: 'Search customers by phone or name',
          security: portalSecurity,
          querystring: ListQuery,
          response: { 200: CustomerListResponse, ...portalErrors },
        },
      },
      async (request) => searchCustomers(db, { merchantId: merchantIdOf(request), ...request.query }),
    );

    app.get(
      '/customers/:id',
      {
        onRequest: allow('customers:read'),
        schema: {
          tags,
          summary: 'A customer with balance and tier progress',
          security: portalSecurity,
          params: IdParams,
          response: { 200: CustomerResponse, ...portalErrors },
        },
      },
      async (request) =>
        getCustomerDetail(db, { merchantId: merchantIdOf(request), customerId: request.params.id }),
    );

    app.patch(
      '/customers/:id',
      {
        onRequest: allow('customers:write'),
        schema: {
          tags,
          summary: "Set or correct the customer's date of birth (audited)",
          security: portalSecurity,
          params: IdParams,
          body: UpdateBody,
          response: { 200: CustomerResponse, ...portalErrors },
        },
      },
      async (request) => {
        const merchantId = merchantIdOf(request);
        await updateCustomerBirthDate(db, {
          merchantId,
          customerId: request.params.id,
          birthDate: request.body.birthDate,
          actor: actorOf(request),
        });
        return getCustomerDetail(db, { merchantId, customerId: request.params.id });
      },
    );

    app.get(
      '/customers/:id/ledger',
      {
        onRequest: allow('customers:read'),
        schema: {
          tags,
          summary: 'Every ledger entry of a customer, newest first',
          security: portalSecurity,
          params: IdParams,
          querystring: LedgerQuery,
          response: { 200: LedgerResponse, ...portalErrors },
        },
      },
      async (request) => ({
        items: await getCustomerLedger(db, {
          merchantId: merchantIdOf(request),
          customerId: request.params.id,
          ...request.query,
        }),
      }),
    );

    app.post(
      '/customers/:id/adjustments',
      {
        onRequest: allow('customers:adjust'),
        schema: {
          tags,
          summary: 'Add or take points by hand, with a reason (never below zero: 422 insufficient_points)',
          security: portalSecurity,
          params: IdParams,
          body: AdjustBody,
          response: { 200: z.object({ balance: Balance }), ...portalErrors, 422: ErrorResponse },
        },
      },
      async (request) => ({
        balance: await adjustCustomerPoints(db, {
          merchantId: merchantIdOf(request),
          customerId: request.params.id,
          ...request.body,
          actor: actorOf(request),
        }),
      }),
    );
  };
}
