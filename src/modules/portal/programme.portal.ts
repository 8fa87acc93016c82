import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database } from '../../db/database.js';
import { DraftCampaign, EarnBreakdownItem } from '../campaigns/campaigns.schema.js';
import { ErrorResponse } from '../integration/integration.schema.js';
import { MAX_AMOUNT_MINOR, ProgrammeRules, Receipt, Tier } from '../programme/programme.schema.js';
import { actorOf, allow, merchantIdOf, portalErrors, portalSecurity } from './portal.http.js';
import { getMerchantRules, previewQuote, saveProgrammeRules } from './programme.service.js';

const tags = ['portal: programme'];
const RulesBody = z.strictObject({ rules: ProgrammeRules });
const RulesResponse = z.object({ rules: ProgrammeRules });
const PreviewBody = z.strictObject({
  rules: ProgrammeRules.optional().describe('Rules to try; default: the current ones'),
  receipt: Receipt,
  redeemPoints: z.int().min(0).max(MAX_AMOUNT_MINOR).optional(),
  availablePoints: z
    .int()
    .min(0)
    .max(MAX_AMOUNT_MINOR)
    .optional()
    .describe("The sample customer's balance; default: enough for any redemption"),
  tierSpend: z.int().min(0).max(MAX_AMOUNT_MINOR).optional().describe('Spend in the tier window; default 0'),
  at: z.iso
    .datetime({ offset: true })
    .optional()
    .describe(
      "The moment of the sample purchase (campaign periods and schedules, merchant's clocks); default now",
    ),
  outletId: z.uuid().optional().describe('The outlet of the sample purchase (campaign conditions)'),
  campaign: DraftCampaign.optional().describe(
    'A campaign being edited, applied as if active (in place of the stored one its id names); nothing is saved',
  ),
});
const PreviewResponse = z.object({
  earnPoints: z.int(),
  maxRedeemPoints: z.int(),
  redeemPoints: z.int(),
  discount: z.int(),
  payable: z.int(),
  eligibleAmount: z.int(),
  earnRateBp: z.int(),
  tier: Tier.nullable(),
  earnBreakdown: z
    .array(EarnBreakdownItem)
    .describe('Why earnPoints: base, tier, one line per campaign (an unsaved draft: campaignId null)'),
});

/** GET/PUT /programme and POST /programme/preview. */
export function programmeRoutes(deps: { db: Database }): FastifyPluginAsyncZod {
  const { db } = deps;
  return async (app) => {
    app.get(
      '/programme',
      {
        onRequest: allow('programme:read'),
        schema: {
          tags,
          summary: 'The programme rules',
          security: portalSecurity,
          response: { 200: RulesResponse, ...portalErrors },
        },
      },
      async (request) => ({ rules: await getMerchantRules(db, merchantIdOf(request)) }),
    );

    app.put(
      '/programme',
      {
        onRequest: allow('programme:write'),
        schema: {
          tags,
          summary: 'Replace the programme rules (applies to the next purchase on every replica)',
          security: portalSecurity,
          body: RulesBody,
          response: { 200: RulesResponse, ...portalErrors },
        },
      },
      async (request) => ({
        rules: await saveProgrammeRules(db, {
          merchantId: merchantIdOf(request),
          rules: request.body.rules,
          actor: actorOf(request),
        }),
      }),
    );

    app.post(
      '/programme/preview',
      {
        onRequest: allow('programme:read'),
        schema: {
          tags,
          summary: 'What a sample receipt earns and redeems (the integration quote; writes nothing)',
          security: portalSecurity,
          body: PreviewBody,
          response: { 200: PreviewResponse, ...portalErrors, 422: ErrorResponse },
        },
      },
      async (request) => previewQuote(db, { merchantId: merchantIdOf(request), ...request.body }),
    );
  };
}
