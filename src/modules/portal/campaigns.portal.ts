import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Database, Executor } from '../../db/database.js';
import type { Actor } from '../audit/audit.service.js';
import {
  Campaign,
  CreateCampaignBody as CreateBody,
  type CreateCampaignBody,
  SimulateCampaignBody,
  SimulationResult,
  UpdateCampaignBody as UpdateBody,
  type UpdateCampaignBody,
} from '../campaigns/campaigns.schema.js';
import {
  createCampaign,
  deleteCampaign,
  getCampaign,
  listCampaigns,
  toRuleCampaign,
  updateCampaign,
} from '../campaigns/campaigns.service.js';
import { simulateCampaign } from '../campaigns/campaigns.simulate.js';
import { getMerchantTimeZone } from '../merchants/merchants.service.js';
import { runAudited } from './portal.audit.js';
import {
  actorOf,
  allow,
  IdParams,
  merchantIdOf,
  NoContent,
  portalErrors,
  portalSecurity,
} from './portal.http.js';
import { getMerchantRules } from './programme.service.js';

const tags = ['portal: campaigns'];
const CampaignResponse = z.object({ campaign: Campaign });

function audited<T>(
  db: Executor,
  request: { merchantId: string; actor: Actor; action: string },
  work: Parameters<typeof runAudited<T>>[2],
): Promise<T> {
  return runAudited(
    db,
    { actor: request.actor, merchantId: request.merchantId, action: request.action, entityType: 'campaign' },
    work,
  );
}

/** Creates a campaign, recorded in the audit log. */
function addCampaign(db: Executor, options: { merchantId: string; actor: Actor; input: CreateCampaignBody }) {
  return audited(db, { ...options, action: 'campaign.create' }, async (trx) => {
    const campaign = await createCampaign(trx, options);
    return { result: campaign, entityId: campaign.id, after: campaign };
  });
}

/** Changes a campaign, recorded in the audit log with before and after. */
function changeCampaign(
  db: Executor,
  options: { merchantId: string; actor: Actor; id: string; patch: UpdateCampaignBody },
) {
  return audited(db, { ...options, action: 'campaign.update' }, async (trx) => {
    const { before, after } = await updateCampaign(trx, options);
    return { result: after, entityId: after.id, before, after };
  });
}

/** Deletes a campaign, recorded in the audit log. */
function removeCampaign(db: Executor, options: { merchantId: string; actor: Actor; id: string }) {
  return audited(db, { ...options, action: 'campaign.delete' }, async (trx) => {
    const before = await deleteCampaign(trx, options);
    return { result: undefined, entityId: before.id, before };
  });
}

/** What a campaign would have added to the purchases of a period (merchant's time zone); writes nothing. */
async function simulate(db: Executor, options: { merchantId: string; id: string; from: string; to: string }) {
  const [campaign, rules, timeZone] = await Promise.all([
    getCampaign(db, options),
    getMerchantRules(db, options.merchantId),
    getMerchantTimeZone(db, options.merchantId),
  ]);
  return simulateCampaign(db, { ...options, campaign: toRuleCampaign(campaign), rules, timeZone });
}

/** Campaigns: list and read (campaigns:read), create/change/delete (campaigns:write), simulate. */
export function campaignRoutes(deps: { db: Database }): FastifyPluginAsyncZod {
  const { db } = deps;
  return async (app) => {
    app.get(
      '/campaigns',
      {
        onRequest: allow('campaigns:read'),
        schema: {
          tags,
          summary: 'Campaigns, newest first',
          security: portalSecurity,
          response: { 200: z.object({ campaigns: z.array(Campaign) }), ...portalErrors },
        },
      },
      async (request) => ({ campaigns: await listCampaigns(db, merchantIdOf(request)) }),
    );

    app.post(
      '/campaigns',
      {
        onRequest: allow('campaigns:write'),
        schema: {
          tags,
          summary: 'Create a campaign (status draft unless given; only active campaigns apply)',
          security: portalSecurity,
          body: CreateBody,
          response: { 201: CampaignResponse, ...portalErrors },
        },
      },
      async (request, reply) => {
        const campaign = await addCampaign(db, {
          merchantId: merchantIdOf(request),
          actor: actorOf(request),
          input: request.body,
        });
        return reply.status(201).send({ campaign });
      },
    );

    app.get(
      '/campaigns/:id',
      {
        onRequest: allow('campaigns:read'),
        schema: {
          tags,
          summary: 'One campaign',
          security: portalSecurity,
          params: IdParams,
          response: { 200: CampaignResponse, ...portalErrors },
        },
      },
      async (request) => ({
        campaign: await getCampaign(db, { merchantId: merchantIdOf(request), id: request.params.id }),
      }),
    );

    app.patch(
      '/campaigns/:id',
      {
        onRequest: allow('campaigns:write'),
        schema: {
          tags,
          summary: 'Change a campaign (pause: {status: "paused"}); the result is checked whole',
          security: portalSecurity,
          params: IdParams,
          body: UpdateBody,
          response: { 200: CampaignResponse, ...portalErrors },
        },
      },
      async (request) => ({
        campaign: await changeCampaign(db, {
          merchantId: merchantIdOf(request),
          actor: actorOf(request),
          id: request.params.id,
          patch: request.body,
        }),
      }),
    );

    app.delete(
      '/campaigns/:id',
      {
        onRequest: allow('campaigns:write'),
        schema: {
          tags,
          summary: 'Delete a campaign (points it granted stay with the customers)',
          security: portalSecurity,
          params: IdParams,
          response: { 204: NoContent, ...portalErrors },
        },
      },
      async (request, reply) => {
        await removeCampaign(db, {
          merchantId: merchantIdOf(request),
          actor: actorOf(request),
          id: request.params.id,
        });
        return reply.status(204).send();
      },
    );

    app.post(
      '/campaigns/:id/simulate',
      {
        onRequest: allow('campaigns:read'),
        schema: {
          tags,
          summary:
            "What the campaign would have added to the purchases of from..to (inclusive days in the merchant's time zone); writes nothing",
          security: portalSecurity,
          params: IdParams,
          body: SimulateCampaignBody,
          response: { 200: SimulationResult, ...portalErrors },
        },
      },
      async (request) =>
        simulate(db, { merchantId: merchantIdOf(request), id: request.params.id, ...request.body }),
    );
  };
}
