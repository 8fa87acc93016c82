import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../../db/database.js';
import { IanaTimeZone } from '../../lib/time-zone.js';
import { getMerchantTimeZone } from '../merchants/merchants.service.js';
import { getDashboard } from './dashboard.service.js';
import { allow, Day, merchantIdOf, portalErrors, portalSecurity } from './portal.http.js';

const DashboardQuery = z.strictObject({
  from: Day.optional().describe('First day (inclusive); default: 29 days before `to`'),
  to: Day.optional().describe('Last day (inclusive); default: today'),
  outletId: z.uuid().optional(),
  tz: IanaTimeZone.optional().describe(
    "IANA time zone days are counted in; default: the merchant's (merchant.timeZone in /me)",
  ),
});

const Figures = {
  purchases: z.int(),
  revenue: z.int().describe('Receipt totals minus refunded amounts, minor units'),
  pointsEarned: z.int().describe('Earned minus revoked by refunds'),
  pointsRedeemed: z.int().describe('Redeemed minus returned by refunds'),
};
const Customers = {
  newCustomers: z.int().describe('Customers whose first purchase was that day'),
  returningCustomers: z.int().describe('Customers who bought that day and on an earlier day'),
};

/** The dashboard's answer. */
export const DashboardResponse = z.object({
  from: z.string(),
  to: z.string(),
  timeZone: z.string(),
  totals: z.object({ ...Figures, ...Customers }),
  byDay: z.array(z.object({ date: z.string(), ...Figures, ...Customers })),
  byOutlet: z.array(z.object({ outletId: z.uuid().nullable(), name: z.string().nullable(), ...Figures })),
  campaigns: z
    .array(
      z.object({
        campaignId: z.uuid(),
        name: z.string().nullable().describe('null: the campaign was deleted (its points stay)'),
        kind: z.string().nullable(),
        points: z.int().describe("The campaign's points net of refund revocations"),
        purchases: z
          .int()
          .describe("Purchases that got the campaign's points (0 for welcome, birthday, referral)"),
        customers: z.int().describe('Distinct customers granted in the period'),
        revenue: z.int().describe('Totals of those purchases net of refunds, minor units'),
      }),
    )
    .describe(
      'Points and revenue by campaign for the whole merchant (the outlet filter does not apply), most points first',
    ),
});

/**
 * GET /dashboard (dashboard:read). `db` is where the figures are read (the read replica when there
 * is one); the merchant's time zone comes from `primary`, so a zone just changed counts at once.
 */
export function dashboardRoutes(deps: { db: Database; primary: Database }): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/dashboard',
      {
        onRequest: allow('dashboard:read'),
        schema: {
          tags: ['portal: dashboard'],
          summary: 'Purchases, revenue, points and customers by day and outlet',
          security: portalSecurity,
          querystring: DashboardQuery,
          response: { 200: DashboardResponse, ...portalErrors },
        },
      },
      async (request) => {
        const merchantId = merchantIdOf(request);
        return getDashboard(deps.db, {
          merchantId,
          from: request.query.from,
          to: request.query.to,
          outletId: request.query.outletId,
          timeZone: request.query.tz ?? (await getMerchantTimeZone(deps.primary, merchantId)),
        });
      },
    );
  };
}
