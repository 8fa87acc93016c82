import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { authenticateCustomer, customerOf } from '../../http/auth.js';
import {
  getCustomerProfile,
  issueCustomerCode,
  listCustomerTransactions,
} from '../customers/customers.service.js';
import { ErrorResponse } from '../integration/integration.schema.js';

const security = [{ userToken: [] }];

const CodeResponse = z.object({
  code: z.string().describe('6 digits to show at the till'),
  expiresAt: z.string(),
  ttlSeconds: z.int(),
});

const TransactionsQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  before: z.coerce.number().int().min(1).optional().describe('Entry id to page from (exclusive)'),
});

/** The customer-facing API (Bearer user token), mounted at /api/v1/client. */
export function clientRoutes(deps: { db: Database; config: Config }): FastifyPluginAsyncZod {
  return async (app) => {
    app.decorateRequest('customerAuth', null);
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
          response: { 200: CodeResponse, 401: ErrorResponse },
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
      { schema: { tags: ['client'], summary: 'Profile, balance and tier', security } },
      async (request) => getCustomerProfile(deps.db, customerOf(request)),
    );

    app.get(
      '/transactions',
      {
        schema: {
          tags: ['client'],
          summary: 'Ledger history, newest first',
          security,
          querystring: TransactionsQuery,
        },
      },
      async (request) => ({
        items: await listCustomerTransactions(deps.db, { ...customerOf(request), ...request.query }),
      }),
    );
  };
}
