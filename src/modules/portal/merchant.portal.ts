import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../../db/database.js';
import { IanaTimeZone } from '../../lib/time-zone.js';
import { getMerchantTimeZone, updateMerchantTimeZone } from '../merchants/merchants.service.js';
import { runAudited } from './portal.audit.js';
import { actorOf, allow, merchantIdOf, portalErrors, portalSecurity } from './portal.http.js';

const tags = ['portal: merchant'];
const MerchantSettingsBody = z.strictObject({
  timeZone: IanaTimeZone.describe(
    'IANA time zone (e.g. Europe/Moscow): campaign schedules, birthdays and dates use it',
  ),
});
const MerchantResponse = z.object({
  merchant: z.object({ id: z.uuid(), name: z.string(), timeZone: z.string() }),
});

/** PATCH /merchant: the merchant's own settings (its time zone). */
export function merchantRoutes(deps: { db: Database }): FastifyPluginAsyncZod {
  const { db } = deps;
  return async (app) => {
    app.patch(
      '/merchant',
      {
        onRequest: allow('merchant:write'),
        schema: {
          tags,
          summary: "Change the merchant's settings (time zone)",
          security: portalSecurity,
          body: MerchantSettingsBody,
          response: { 200: MerchantResponse, ...portalErrors },
        },
      },
      async (request) => {
        const merchantId = merchantIdOf(request);
        const merchant = await runAudited(
          db,
          { actor: actorOf(request), merchantId, action: 'merchant.update', entityType: 'merchant' },
          async (trx) => {
            const before = await getMerchantTimeZone(trx, merchantId);
            const result = await updateMerchantTimeZone(trx, { merchantId, timeZone: request.body.timeZone });
            return {
              result,
              entityId: merchantId,
              before: { timeZone: before },
              after: { timeZone: result.timeZone },
            };
          },
        );
        return { merchant };
      },
    );
  };
}
