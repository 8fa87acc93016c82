import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { authenticateCustomer, customerOf } from '../../http/auth.js';
import { SecretBox } from '../../lib/crypto.js';
import { listCustomerOffers, OffersResponse } from '../campaigns/campaigns.offers.js';
import { EarnBreakdownItem } from '../campaigns/campaigns.schema.js';
import {
  getCustomerProfile,
  issueCustomerCode,
  listCustomerTransactions,
  setCustomerBirthDate,
} from '../customers/customers.service.js';
import { BirthDate, ErrorResponse } from '../integration/integration.schema.js';
import { signInWithMiniApp } from './miniapp-auth.js';

const security = [{ userToken: [] }];

const CodeResponse = z.object({
  code: z.string().describe('6 digits to show at the till'),
  expiresAt: z.string(),
  ttlSeconds: z.int(),
});

const TelegramAuthBody = z.strictObject({
  initData: z.string().min(1).max(8192).describe('Telegram.WebApp.initData, exactly as the Mini App got it'),
  merchantId: z.uuid().describe('The merchant whose bot opened the Mini App (the `m` query parameter)'),
});

const CustomerSummary = z.object({ id: z.string(), name: z.string().nullable(), phone: z.string() });

const TelegramAuthResponse = z.object({
  token: z.string().describe('User token for Authorization: Bearer (valid 30 days)'),
  customer: CustomerSummary,
});

const MeResponse = z.object({
  customer: CustomerSummary.extend({
    referralCode: z.string(),
    birthDate: z.string().nullable().describe('YYYY-MM-DD, or null while not given (birthday campaigns)'),
  }),
  merchant: z.object({ id: z.string(), name: z.string() }),
  balance: z.object({ available: z.int(), pending: z.int(), held: z.int() }),
  tier: z
    .object({
      name: z.string().nullable().describe('null below the first tier'),
      earnRateBp: z.int(),
      spend: z.int().describe('Spend in the tier window, minor units'),
      next: z.object({ name: z.string(), minSpend: z.int(), remaining: z.int() }).nullable(),
    })
    .nullable()
    .describe('null when the programme has no tiers'),
  programme: z.object({ pointValueMinor: z.int(), earnRateBp: z.int() }),
  referralCode: z
    .string()
    .describe("The customer's referral code, for friends joining at the till or in the bot"),
  referralLink: z
    .string()
    .nullable()
    .describe("The bot link that joins a friend as this customer's referral; null while no bot is connected"),
});

const MeUpdateBody = z.strictObject({
  birthDate: BirthDate.describe(
    "The customer's date of birth, for the merchant's birthday campaigns: given once (409 birth_date_already_set after)",
  ),
});

const OffersQuery = z.strictObject({
  lang: z.enum(['ru', 'en']).default('ru').describe("Language of the offers' descriptions"),
});

const Transaction = z.object({
  id: z.int(),
  kind: z.string(),
  bucket: z.string(),
  points: z.int(),
  purchaseId: z.string().nullable(),
  refundId: z.string().nullable(),
  orderId: z.string().nullable(),
  reason: z.string().nullable(),
  createdAt: z.string(),
  earnBreakdown: z
    .array(EarnBreakdownItem)
    .nullable()
    .describe("On a purchase's earn and redeem entries: why it earned what it did (null for other entries)"),
});

const TransactionsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  before: z.coerce.number().int().min(1).optional().describe('Entry id to page from (exclusive)'),
});

/** The customer-facing API (Bearer user token), mounted at /api/v1/client. */
export function clientRoutes(deps: { db: Database; config: Config; box?: SecretBox }): FastifyPluginAsyncZod {
  return async (root) => {
    const box = deps.box ?? new SecretBox(deps.config.APP_ENCRYPTION_KEY);
    root.decorateRequest('customerAuth', null);

    // Sign-in is the one route without a user token: it is how the Mini App gets one.
    root.post(
      '/auth/telegram',
      {
        schema: {
          tags: ['client'],
          summary: 'Sign in from the Telegram Mini App (initData signed by the merchant bot)',
          security: [],
          body: TelegramAuthBody,
          response: { 200: TelegramAuthResponse, 401: ErrorResponse, 403: ErrorResponse, 404: ErrorResponse },
        },
      },
      async (request) => signInWithMiniApp(deps.db, { ...request.body, box, now: new Date() }),
    );

    await root.register(authenticatedRoutes(deps));
  };
}

function authenticatedRoutes(deps: { db: Database; config: Config }): FastifyPluginAsyncZod {
  return async (app) => {
    app.addHook('preHandler', async (request) => {
      request.customerAuth = await authenticateCustomer(deps.db, request);
    });

    app.post(
      '/code',
      {
        schema: {
          tags: ['client'],
          summary: 'A fresh one-time code to show at the till',
          security,
          response: { 200: CodeResponse, 401: ErrorResponse, 403: ErrorResponse },
        },
      },
      async (request) => {
        const auth = customerOf(request);
        const issued = await issueCustomerCode(deps.db, {
          merchantId: auth.merchantId,
          customerId: auth.customerId,
          ttlSeconds: deps.config.CUSTOMER_CODE_TTL_SECONDS,
        });
        return { ...issued, expiresAt: issued.expiresAt.toISOString() };
      },
    );

    app.get(
      '/me',
      {
        schema: {
          tags: ['client'],
          summary: 'Profile, balance, tier progress and programme',
          security,
          response: { 200: MeResponse, 401: ErrorResponse, 403: ErrorResponse },
        },
      },
      async (request) => getCustomerProfile(deps.db, customerOf(request)),
    );

    app.patch(
      '/me',
      {
        schema: {
          tags: ['client'],
          summary: 'Give the date of birth (once; the shop corrects it after)',
          security,
          body: MeUpdateBody,
          response: {
            200: MeResponse,
            400: ErrorResponse,
            401: ErrorResponse,
            403: ErrorResponse,
            409: ErrorResponse,
          },
        },
      },
      async (request) => {
        const auth = customerOf(request);
        await setCustomerBirthDate(deps.db, { ...auth, birthDate: request.body.birthDate });
        return getCustomerProfile(deps.db, auth);
      },
    );

    app.get(
      '/transactions',
      {
        schema: {
          tags: ['client'],
          summary: 'Ledger history, newest first',
          security,
          querystring: TransactionsQuery,
          response: {
            200: z.object({ items: z.array(Transaction) }),
            401: ErrorResponse,
            403: ErrorResponse,
          },
        },
      },
      async (request) => {
        const items = await listCustomerTransactions(deps.db, { ...customerOf(request), ...request.query });
        return { items: items.map((item) => ({ ...item, createdAt: item.createdAt.toISOString() })) };
      },
    );

    app.get(
      '/offers',
      {
        schema: {
          tags: ['client'],
          summary:
            "The merchant's active campaigns the customer can still get, running now or later (running now first)",
          security,
          querystring: OffersQuery,
          response: { 200: OffersResponse, 401: ErrorResponse, 403: ErrorResponse },
        },
      },
      async (request) => listCustomerOffers(deps.db, { ...customerOf(request), locale: request.query.lang }),
    );
  };
}
