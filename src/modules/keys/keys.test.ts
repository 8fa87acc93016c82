import { hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { SignJWT } from 'jose';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestMerchant } from '../../../test/helpers/factories.js';
import { createStaffSession, portalRequest } from '../../../test/helpers/portal.js';
import { buildApp } from '../../app.js';
import { loadConfig } from '../../config.js';
import type { Database } from '../../db/database.js';
import { SecretBox } from '../../lib/crypto.js';
import { createPortalUser } from '../auth/auth.service.js';
import { getWebhookEndpointForDelivery } from '../webhooks/webhooks.service.js';
import {
  applyEmbeddedInstallationKey,
  ensureAppKey,
  KEY_FILE_NAME,
  readOrCreateKeyFile,
  rotateSealedSecrets,
  sealPlaintextWebhookSecrets,
} from './keys.service.js';

// Keys and secrets at rest: no key in the source, one installation's tokens are worthless at
// another, access follows the account on every request, webhook secrets never appear in a dump.

let a: TestApp;
let b: TestApp;

beforeAll(async () => {
  // Two installations: two databases, neither with APP_ENCRYPTION_KEY or JWT_SECRET configured.
  [a, b] = await Promise.all([createTestApp(), createTestApp()]);
});

afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
});

async function createOperator(t: TestApp): Promise<{ userId: string; accessToken: string }> {
  const email = `ops-${randomUUID().slice(0, 8)}@example.com`;
  const password = 'operator-password-1';
  const user = await createPortalUser(t.db, { merchantId: null, email, password, role: 'operator' });
  const res = await t.app.inject({
    method: 'POST',
    url: '/api/v1/admin/auth/login',
    payload: { email, password },
  });
  expect(res.statusCode, res.body).toBe(200);
  return { userId: user.id, accessToken: res.json().accessToken };
}

function asOperator(app: FastifyInstance, token: string) {
  return app.inject({
    method: 'GET',
    url: '/api/v1/admin/merchants',
    headers: { authorization: `Bearer ${token}` },
  });
}

/** A token signed the way the old code did without a configured key: with a string from the source. */
function forgeWithSourceKey(claims: { sub: string; role: string; mid: string | null }): Promise<string> {
  const key = new Uint8Array(
    hkdfSync('sha256', Buffer.from('loyalty-development-key'), Buffer.alloc(0), 'loyalty access tokens', 32),
  );
  return new SignJWT({ mid: claims.mid, role: claims.role, email: 'forged@example.com' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(claims.sub)
    .setIssuedAt()
    .setExpirationTime('15m')
    .setIssuer('loyalty')
    .sign(key);
}

describe('installation keys', () => {
  it('refuses operator and owner tokens forged with the key that used to be in the source', async () => {
    const operator = await forgeWithSourceKey({ sub: randomUUID(), role: 'operator', mid: null });
    expect((await asOperator(a.app, operator)).statusCode).toBe(401);
    // Even naming a real operator's id.
    const real = await createOperator(a);
    const forgedReal = await forgeWithSourceKey({ sub: real.userId, role: 'operator', mid: null });
    expect((await asOperator(a.app, forgedReal)).statusCode).toBe(401);

    const merchant = await createTestMerchant(a.db);
    const owner = await createStaffSession(a.app, a.db, { merchantId: merchant.merchantId, role: 'owner' });
    const forgedOwner = await forgeWithSourceKey({
      sub: owner.userId,
      role: 'owner',
      mid: merchant.merchantId,
    });
    const keys = await portalRequest(
      a.app,
      { accessToken: forgedOwner },
      { method: 'POST', url: '/api-keys', payload: { name: 'x' } },
    );
    expect(keys.statusCode).toBe(401);
  });

  it('gives every database its own key: a token minted by one installation is refused by another', async () => {
    expect(a.config.APP_ENCRYPTION_KEY).toMatch(/^[0-9a-f]{64}$/);
    expect(b.config.APP_ENCRYPTION_KEY).toMatch(/^[0-9a-f]{64}$/);
    expect(a.config.APP_ENCRYPTION_KEY).not.toBe(b.config.APP_ENCRYPTION_KEY);

    const operatorA = await createOperator(a);
    expect((await asOperator(a.app, operatorA.accessToken)).statusCode).toBe(200);
    expect((await asOperator(b.app, operatorA.accessToken)).statusCode).toBe(401);

    const merchant = await createTestMerchant(a.db);
    const owner = await createStaffSession(a.app, a.db, { merchantId: merchant.merchantId, role: 'owner' });
    expect((await portalRequest(a.app, owner, { method: 'GET', url: '/me' })).statusCode).toBe(200);
    expect((await portalRequest(b.app, owner, { method: 'GET', url: '/me' })).statusCode).toBe(401);
    expect((await portalRequest(b.app, owner, { method: 'GET', url: '/outlets' })).statusCode).toBe(401);
  });

  it('keeps the key of a database across restarts: tokens outlive a rebuilt app', async () => {
    const operator = await createOperator(a);
    const { config } = loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent' });
    await ensureAppKey(a.db, config);
    expect(config.APP_ENCRYPTION_KEY).toBe(a.config.APP_ENCRYPTION_KEY);
    expect((await asOperator(a.app, operator.accessToken)).statusCode).toBe(200);
  });

  it('keeps the embedded installation key in a 0600 file in the data folder, the same on every start', () => {
    const dirA = mkdtempSync(path.join(tmpdir(), 'loyalty-key-'));
    const dirB = mkdtempSync(path.join(tmpdir(), 'loyalty-key-'));
    try {
      const first = loadConfig({ NODE_ENV: 'development' }).config;
      applyEmbeddedInstallationKey(first, dirA);
      const file = path.join(dirA, KEY_FILE_NAME);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, 'utf8').trim()).toBe(first.APP_ENCRYPTION_KEY);
      expect(first.APP_ENCRYPTION_KEY).toMatch(/^[0-9a-f]{64}$/);

      const again = loadConfig({ NODE_ENV: 'development' }).config;
      applyEmbeddedInstallationKey(again, dirA);
      expect(again.APP_ENCRYPTION_KEY).toBe(first.APP_ENCRYPTION_KEY);
      expect(readOrCreateKeyFile(dirB)).not.toBe(first.APP_ENCRYPTION_KEY);

      // A configured key wins, and the file is left alone.
      const configured = loadConfig({ APP_ENCRYPTION_KEY: 'cd'.repeat(32) }).config;
      applyEmbeddedInstallationKey(configured, dirA);
      expect(configured.APP_ENCRYPTION_KEY).toBe('cd'.repeat(32));
    } finally {
      rmSync(dirA, { recursive: true, force: true });
      rmSync(dirB, { recursive: true, force: true });
    }
  });

  it('never falls back to a built-in key', () => {
    expect(() => new SecretBox(undefined)).toThrow(/APP_ENCRYPTION_KEY/);
    expect(() => new SecretBox('not-a-key')).toThrow(/APP_ENCRYPTION_KEY/);
  });
});

describe('access follows the account on every request', () => {
  it('a disabled operator is refused on the next request, not when the token expires', async () => {
    const operator = await createOperator(a);
    expect((await asOperator(a.app, operator.accessToken)).statusCode).toBe(200);
    await a.db
      .updateTable('portal_users')
      .set({ disabled_at: new Date() })
      .where('id', '=', operator.userId)
      .execute();
    expect((await asOperator(a.app, operator.accessToken)).statusCode).toBe(401);
    const me = await a.app.inject({
      method: 'GET',
      url: '/api/v1/admin/me',
      headers: { authorization: `Bearer ${operator.accessToken}` },
    });
    expect(me.statusCode).toBe(401);
  });

  it('a deleted operator is refused, and a demoted one is no operator any more', async () => {
    const gone = await createOperator(a);
    await a.db.deleteFrom('refresh_tokens').where('user_id', '=', gone.userId).execute();
    await a.db.deleteFrom('portal_users').where('id', '=', gone.userId).execute();
    expect((await asOperator(a.app, gone.accessToken)).statusCode).toBe(401);

    const merchant = await createTestMerchant(a.db);
    const demoted = await createOperator(a);
    await a.db
      .updateTable('portal_users')
      .set({ role: 'owner', merchant_id: merchant.merchantId })
      .where('id', '=', demoted.userId)
      .execute();
    expect((await asOperator(a.app, demoted.accessToken)).statusCode).toBe(403);
  });

  it('a staff member disabled by the owner is refused on the next request', async () => {
    const merchant = await createTestMerchant(a.db);
    const owner = await createStaffSession(a.app, a.db, { merchantId: merchant.merchantId, role: 'owner' });
    const cashier = await createStaffSession(a.app, a.db, {
      merchantId: merchant.merchantId,
      role: 'cashier',
    });
    expect((await portalRequest(a.app, cashier, { method: 'GET', url: '/me' })).statusCode).toBe(200);
    const disabled = await portalRequest(a.app, owner, {
      method: 'PATCH',
      url: `/users/${cashier.userId}`,
      payload: { disabled: true },
    });
    expect(disabled.statusCode, disabled.body).toBe(200);
    expect((await portalRequest(a.app, cashier, { method: 'GET', url: '/me' })).statusCode).toBe(401);
    expect((await portalRequest(a.app, cashier, { method: 'GET', url: '/customers' })).statusCode).toBe(401);
  });
});

/** Every value of every row of every table, as text: what a dump of the database would hold. */
async function dumpText(db: Database): Promise<string> {
  const { rows: tables } = await sql<{ name: string }>`
    select table_name as name from information_schema.tables
    where table_schema = 'public' and table_type = 'BASE TABLE'`.execute(db);
  const parts: string[] = [];
  for (const { name } of tables) {
    const { rows } = await sql<{ row: string }>`select t::text as row from ${sql.table(name)} t`.execute(db);
    parts.push(...rows.map((r) => r.row));
  }
  return parts.join('\n');
}

describe('webhook secrets at rest', () => {
  it('appear nowhere in the database, only a display prefix of at most 10 characters', async () => {
    const merchant = await createTestMerchant(a.db);
    const owner = await createStaffSession(a.app, a.db, { merchantId: merchant.merchantId, role: 'owner' });
    const operator = await createOperator(a);
    const viaPortal = await portalRequest(a.app, owner, {
      method: 'POST',
      url: '/webhooks',
      payload: { url: 'https://hooks.example.com/portal' },
    });
    expect(viaPortal.statusCode, viaPortal.body).toBe(201);
    const rotated = await portalRequest(a.app, owner, {
      method: 'POST',
      url: `/webhooks/${viaPortal.json().id}/rotate-secret`,
      payload: { overlapSeconds: 3600 },
    });
    expect(rotated.statusCode, rotated.body).toBe(200);
    const viaAdmin = await a.app.inject({
      method: 'POST',
      url: `/api/v1/admin/merchants/${merchant.merchantId}/webhooks`,
      headers: { authorization: `Bearer ${operator.accessToken}` },
      payload: { url: 'https://hooks.example.com/admin' },
    });
    expect(viaAdmin.statusCode, viaAdmin.body).toBe(201);

    const secrets = [viaPortal.json().secret, rotated.json().secret, viaAdmin.json().secret] as string[];
    const dump = await dumpText(a.db);
    for (const secret of secrets) {
      expect(secret).toMatch(/^whsec_/);
      // Neither the secret nor its random part, nor any 11 characters of it.
      const body = secret.slice('whsec_'.length);
      for (let i = 0; i + 11 <= secret.length; i += 1) expect(dump).not.toContain(secret.slice(i, i + 11));
      expect(dump).not.toContain(body);
    }
    // Deliveries still sign with the current and the previous secret.
    const target = await getWebhookEndpointForDelivery(
      a.db,
      viaPortal.json().id,
      new SecretBox(a.config.APP_ENCRYPTION_KEY),
    );
    expect(target?.secrets).toEqual([secrets[1], secrets[0]]);
  });

  it('seals secrets stored in plain text before they were sealed', async () => {
    const merchant = await createTestMerchant(a.db);
    const legacy = `whsec_${randomBytes(24).toString('base64')}`;
    const previous = `whsec_${randomBytes(24).toString('base64')}`;
    const { id } = await a.db
      .insertInto('webhook_endpoints')
      .values({
        merchant_id: merchant.merchantId,
        url: 'https://legacy.example.com/',
        secret_enc: legacy,
        secret_prefix: legacy.slice(0, 10),
        previous_secret_enc: previous,
        previous_secret_expires_at: new Date(Date.now() + 3_600_000),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    const box = new SecretBox(a.config.APP_ENCRYPTION_KEY);
    // Until sealed, deliveries use them as they are; a starting process seals them.
    expect((await getWebhookEndpointForDelivery(a.db, id, box))?.secrets).toEqual([legacy, previous]);
    expect(await sealPlaintextWebhookSecrets(a.db, box)).toBe(1);
    expect(await dumpText(a.db)).not.toContain(legacy.slice(6));
    expect(await dumpText(a.db)).not.toContain(previous.slice(6));
    expect((await getWebhookEndpointForDelivery(a.db, id, box))?.secrets).toEqual([legacy, previous]);
  });
  it('are sealed by the API when it starts', async () => {
    const merchant = await createTestMerchant(a.db);
    const legacy = `whsec_${randomBytes(24).toString('base64')}`;
    await a.db
      .insertInto('webhook_endpoints')
      .values({
        merchant_id: merchant.merchantId,
        url: 'https://legacy.example.com/',
        secret_enc: legacy,
        secret_prefix: legacy.slice(0, 10),
      })
      .execute();
    const restarted = await buildApp(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent' }).config, {
      db: a.db,
      logger: false,
    });
    try {
      await expect.poll(async () => (await dumpText(a.db)).includes(legacy.slice(6))).toBe(false);
    } finally {
      await restarted.close();
    }
  });
});

describe('rotating the app key', () => {
  it('re-seals every stored secret under the new key, all or nothing, and can run again', async () => {
    const oldKey = randomBytes(32).toString('hex');
    const newKey = randomBytes(32).toString('base64');
    const { db } = b;
    const oldBox = new SecretBox(oldKey);
    const merchant = await createTestMerchant(db);
    await db
      .updateTable('merchants')
      .set({ telegram_bot_token_enc: oldBox.seal('123456:bot-token') })
      .where('id', '=', merchant.merchantId)
      .execute();
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const { id } = await db
      .insertInto('webhook_endpoints')
      .values({
        merchant_id: merchant.merchantId,
        url: 'https://rotate.example.com/',
        secret_enc: oldBox.seal(secret),
        secret_prefix: secret.slice(0, 10),
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    // Installation b holds no other sealed secret: every one of them is this test's.
    const wrong = rotateSealedSecrets(db, { oldKey: randomBytes(32).toString('hex'), newKey });
    await expect(wrong).rejects.toMatchObject({ code: 'key_mismatch' });
    const dry = await rotateSealedSecrets(db, { oldKey, newKey, dryRun: true });
    expect(dry).toMatchObject({
      dryRun: true,
      resealed: { 'webhook_endpoints.secret_enc': 1, 'merchants.telegram_bot_token_enc': 1 },
    });
    // Neither changed anything.
    expect((await getWebhookEndpointForDelivery(db, id, oldBox))?.secrets).toEqual([secret]);

    const done = await rotateSealedSecrets(db, { oldKey, newKey });
    expect(done).toEqual({
      dryRun: false,
      resealed: {
        'merchants.telegram_bot_token_enc': 1,
        'webhook_endpoints.secret_enc': 1,
        'webhook_endpoints.previous_secret_enc': 0,
      },
      alreadyCurrent: 0,
      sealedPlaintext: 0,
      installationKeyRetired: false,
    });
    const newBox = new SecretBox(newKey);
    expect((await getWebhookEndpointForDelivery(db, id, newBox))?.secrets).toEqual([secret]);
    await expect(getWebhookEndpointForDelivery(db, id, oldBox)).rejects.toThrow();
    const bot = await db
      .selectFrom('merchants')
      .select('telegram_bot_token_enc')
      .where('id', '=', merchant.merchantId)
      .executeTakeFirstOrThrow();
    expect(newBox.open(bot.telegram_bot_token_enc ?? '')).toBe('123456:bot-token');

    const again = await rotateSealedSecrets(db, { oldKey, newKey });
    expect(again).toMatchObject({ alreadyCurrent: 2, resealed: { 'webhook_endpoints.secret_enc': 0 } });
  });
});
