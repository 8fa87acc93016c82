import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../../db/database.js';
import { IanaTimeZone } from '../../lib/time-zone.js';
import { getMerchantTimeZone } from '../merchants/merchants.service.js';
import { allow, Day, merchantIdOf, portalErrors, portalSecurity } from './portal.http.js';
import { exportTransactionsCsv, listTransactions } from './transactions.service.js';

const tags = ['portal: transactions'];
const filterShape = {
  from: Day.optional().describe('First day, inclusive'),
  to: Day.optional().describe('Last day, inclusive'),
  tz: IanaTimeZone.optional().describe(
    "IANA time zone of from/to; default: the merchant's (merchant.timeZone in /me)",
  ),
  outletId: z.uuid().optional(),
  customerId: z.uuid().optional(),
  status: z.enum(['committed', 'partially_refunded', 'refunded']).optional(),
  q: z.string().min(1).max(128).optional().describe('Part of the POS order id'),
};
const ListQuery = z.strictObject({
  ...filterShape,
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(200).optional().describe('nextCursor of the previous page'),
});
const ExportQuery = z.strictObject(filterShape);
const TransactionList = z.object({
  items: z.array(
    z.object({
      id: z.uuid(),
      orderId: z.string(),
      customerId: z.uuid(),
      customerPhone: z.string(),
      outletId: z.uuid().nullable(),
      outletName: z.string().nullable(),
      total: z.int(),
      discount: z.int(),
      earnedPoints: z.int(),
      redeemedPoints: z.int(),
      refundedAmount: z.int(),
      status: z.string(),
      createdAt: z.date(),
    }),
  ),
  nextCursor: z.string().nullable(),
});

/** The filters of a request; days count in the merchant's zone (read from the primary) unless `tz` says. */
async function filtersOf(db: Database, merchantId: string, query: z.infer<typeof ExportQuery>) {
  const { tz, ...rest } = query;
  return { merchantId, timeZone: tz ?? (await getMerchantTimeZone(db, merchantId)), ...rest };
}

/**
 * GET /transactions (transactions:read) and GET /transactions.csv (transactions:export); the export
 * reads `readDb` (the replica of DATABASE_READ_URL, or the primary).
 */
export function transactionRoutes(deps: { db: Database; readDb?: Database }): FastifyPluginAsyncZod {
  const { db } = deps;
  const readDb = deps.readDb ?? db;
  return async (app) => {
    app.get(
      '/transactions',
      {
        onRequest: allow('transactions:read'),
        schema: {
          tags,
          summary: 'Purchases, newest first, with filters',
          security: portalSecurity,
          querystring: ListQuery,
          response: { 200: TransactionList, ...portalErrors },
        },
      },
      async (request) => {
        const { limit, cursor, ...filters } = request.query;
        return listTransactions(db, {
          ...(await filtersOf(db, merchantIdOf(request), filters)),
          limit,
          cursor,
        });
      },
    );

    app.get(
      '/transactions.csv',
      {
        onRequest: allow('transactions:export'),
        schema: {
          tags,
          summary: 'The filtered purchases as CSV (UTF-8 with BOM, amounts in minor units)',
          security: portalSecurity,
          querystring: ExportQuery,
          produces: ['text/csv'],
        },
      },
      async (request, reply) => {
        const filters = await filtersOf(db, merchantIdOf(request), request.query);
        const day = new Date().toISOString().slice(0, 10);
        return reply
          .header('content-type', 'text/csv; charset=utf-8')
          .header('content-disposition', `attachment; filename="transactions-${day}.csv"`)
          .send(exportTransactionsCsv(readDb, filters));
      },
    );
  };
}
