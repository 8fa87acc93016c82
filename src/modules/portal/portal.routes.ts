import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Config } from '../../config.js';
import type { Database } from '../../db/database.js';
import { SecretBox } from '../../lib/crypto.js';
import { apiKeyRoutes } from './apikeys.portal.js';
import { campaignRoutes } from './campaigns.portal.js';
import { customerRoutes } from './customers.portal.js';
import { dashboardRoutes } from './dashboard.portal.js';
import { merchantRoutes } from './merchant.portal.js';
import { outletRoutes } from './outlets.portal.js';
import { authenticatePortalRequest, documentPermission } from './portal.http.js';
import { programmeRoutes } from './programme.portal.js';
import { telegramPortalRoutes } from './telegram.portal.js';
import { NotifyBotInfo } from './telegram.service.js';
import { transactionRoutes } from './transactions.portal.js';
import { userRoutes } from './users.portal.js';
import { webhookRoutes } from './webhooks.portal.js';

/**
 * The merchant portal's API (Bearer access token of a staff user), mounted at /api/v1/portal next
 * to the sign-in routes. Every route checks its permission (src/modules/auth/permissions.ts) before
 * anything else, scopes every query by the user's merchant (another merchant's id is a 404) and
 * writes an audit entry for every change.
 */
export function portalRoutes(deps: {
  db: Database;
  readDb: Database;
  config: Config;
}): FastifyPluginAsyncZod {
  const { db, readDb, config } = deps;
  return async (app) => {
    // onRequest, before the body is parsed: a stranger learns nothing of our validation.
    app.addHook('onRequest', async (request) => authenticatePortalRequest(db, config, request));
    app.addHook('onRoute', documentPermission);
    // The analytics read the replica when DATABASE_READ_URL is set.
    await app.register(dashboardRoutes({ db: readDb, primary: db }));
    await app.register(programmeRoutes({ db }));
    await app.register(merchantRoutes({ db }));
    await app.register(campaignRoutes({ db }));
    await app.register(outletRoutes({ db }));
    await app.register(apiKeyRoutes({ db }));
    await app.register(customerRoutes({ db }));
    await app.register(transactionRoutes({ db, readDb }));
    await app.register(
      webhookRoutes({
        db,
        allowPrivateNetworks: config.WEBHOOK_ALLOW_PRIVATE_NETWORKS,
        box: new SecretBox(config.APP_ENCRYPTION_KEY),
      }),
    );
    await app.register(telegramPortalRoutes({ db, config, notifyBot: new NotifyBotInfo(config) }));
    await app.register(userRoutes({ db }));
  };
}
