import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../src/lib/crypto.js';
import { can, type Permission } from '../src/modules/auth/permissions.js';
import { CreateCampaignBody } from '../src/modules/campaigns/campaigns.schema.js';
import { createCampaign } from '../src/modules/campaigns/campaigns.service.js';
import { createWebhookEndpoint } from '../src/modules/webhooks/webhooks.service.js';
import { createTestApp, type TestApp } from './helpers/app.js';
import { createTestCustomer } from './helpers/factories.js';
import { type DocumentedOperation, documentedOperations, fillPath } from './helpers/openapi.js';
import { createMerchantTeam, type MerchantTeam } from './helpers/portal.js';
import { commitPayload, postCommit, postHold } from './helpers/pos.js';

// Generated from the OpenAPI document, so a new route is covered by being documented:
// - every route taking an id, called with merchant A's credentials and merchant B's id of the
//   right kind, answers 404 (or 403): tenancy holds for objects, not only for lists;
// - a cashier gets 403 on every portal route whose permission (x-permission, from the table in
//   src/modules/auth/permissions.ts) the cashier role lacks.

const ADMIN_TOKEN = 'a'.repeat(40);

let t: TestApp;
let a: MerchantTeam;
let b: MerchantTeam;
/** Merchant B's ids, by the collection segment in front of `{id}` in a path. */
let idsOfB: Record<string, string>;

beforeAll(async () => {
  t = await createTestApp({ env: { ADMIN_API_TOKEN: ADMIN_TOKEN } });
  [a, b] = await Promise.all([
    createMerchantTeam(t.app, t.db, { name: 'A' }),
    createMerchantTeam(t.app, t.db, { name: 'B' }),
  ]);
  const customer = await createTestCustomer(t.db, { merchant: b.merchant, points: 100 });
  const purchase = await postCommit(
    t.app,
    b.merchant,
    commitPayload(b.merchant, { customerId: customer.customerId, total: 10_000 }),
  );
  expect(purchase.statusCode, purchase.body).toBe(201);
  const hold = await postHold(t.app, b.merchant, {
    customer: { customerId: customer.customerId },
    receipt: { total: 10_000 },
    redeemPoints: 10,
  });
  expect(hold.statusCode, hold.body).toBe(201);
  const endpoint = await createWebhookEndpoint(t.db, {
    box: new SecretBox(randomBytes(32).toString('hex')),
    merchantId: b.merchant.merchantId,
    url: 'https://hooks.example.com/b',
  });
  const campaign = await createCampaign(t.db, {
    merchantId: b.merchant.merchantId,
    input: CreateCampaignBody.parse({ name: 'B bonus', kind: 'bonus_points', effect: { points: 10 } }),
  });
  const staffChat = await t.db
    .insertInto('staff_telegram_links')
    .values({
      merchant_id: b.merchant.merchantId,
      token_hash: randomUUID(),
      token_expires_at: new Date(Date.now() + 60_000),
      chat_id: '424242',
      linked_at: new Date(),
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  idsOfB = {
    outlets: b.merchant.outletId,
    devices: b.merchant.deviceId,
    cashiers: b.merchant.managerId,
    'api-keys': b.merchant.apiKeyId,
    customers: customer.customerId,
    purchases: purchase.json<{ purchase: { id: string } }>().purchase.id,
    holds: hold.json<{ hold: { id: string } }>().hold.id,
    webhooks: endpoint.id,
    campaigns: campaign.id,
    'staff-chats': staffChat.id,
    users: b.manager.userId,
  };
});
afterAll(async () => t?.close());

/** A body the operation's schema accepts: required fields, POS context, or else the first field. */
function sampleBody(schema: unknown): unknown {
  const known: Record<string, unknown> = {
    outletId: a.merchant.outletId,
    deviceId: a.merchant.deviceId,
    managerId: a.merchant.managerId,
    url: 'https://hooks.example.com/a',
  };
  const sample = (node: unknown, name?: string): unknown => {
    const s = (node ?? {}) as Record<string, unknown>;
    if (name !== undefined && name in known) return known[name];
    if (Array.isArray(s.anyOf)) return sample(s.anyOf[0], name);
    if (Array.isArray(s.enum)) return s.enum[0];
    if (s.type === 'object') {
      const properties = (s.properties ?? {}) as Record<string, unknown>;
      const required = new Set([...((s.required as string[]) ?? []), ...Object.keys(known)]);
      const names = Object.keys(properties).filter((key) => required.has(key));
      const chosen = names.length > 0 ? names : Object.keys(properties).slice(0, 1);
      return Object.fromEntries(chosen.map((key) => [key, sample(properties[key], key)]));
    }
    if (s.type === 'integer' || s.type === 'number') {
      return Math.min(Math.max(1, Number(s.minimum ?? 1)), Number(s.maximum ?? 1));
    }
    if (s.type === 'boolean') return true;
    if (s.type === 'array') return [];
    if (s.format === 'date-time') return new Date(Date.now() - 3_600_000).toISOString();
    if (s.format === 'date') return new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    if (s.format === 'uuid') return randomUUID();
    return 'x'.repeat(Math.max(1, Number(s.minLength ?? 1)));
  };
  return sample(schema);
}

function callAs(op: DocumentedOperation, headers: Record<string, string>, url: string) {
  return t.app.inject({
    method: op.method,
    url,
    headers: { ...headers, 'idempotency-key': randomUUID() },
    ...(op.hasBody ? { payload: sampleBody(op.requestBodySchema) as object } : {}),
  });
}

function idOfB(param: string, segmentBefore: string, op: DocumentedOperation): string {
  const id = idsOfB[segmentBefore];
  if (!id) {
    throw new Error(
      `${op.method} ${op.path}: no id of merchant B for "${segmentBefore}/{${param}}"; add one`,
    );
  }
  return id;
}

describe('tenancy, generated from the OpenAPI document', () => {
  it("merchant A's credentials with merchant B's ids get 404 on every route taking an id", async () => {
    const operations = documentedOperations(t.app).filter((op) => op.pathParams.length > 0);
    const portal = operations.filter((op) => op.path.startsWith('/api/v1/portal/'));
    const integration = operations.filter((op) => op.path.startsWith('/api/v1/integration/'));
    // Operators see every merchant; their routes naming a merchant must not reach another's objects.
    const admin = operations.filter(
      (op) =>
        op.path.startsWith('/api/v1/admin/') &&
        op.pathParams.includes('merchantId') &&
        op.pathParams.length > 1,
    );
    expect(portal.length).toBeGreaterThan(15);
    expect(integration.length).toBeGreaterThan(1);
    expect(admin.length).toBeGreaterThan(1);
    const checks: Array<[DocumentedOperation, Record<string, string>, string]> = [
      ...portal.map(
        (op) =>
          [
            op,
            { authorization: `Bearer ${a.owner.accessToken}` },
            fillPath(op.path, (p, s) => idOfB(p, s, op)),
          ] as [DocumentedOperation, Record<string, string>, string],
      ),
      ...integration.map(
        (op) =>
          [op, { 'x-api-key': a.merchant.apiKey }, fillPath(op.path, (p, s) => idOfB(p, s, op))] as [
            DocumentedOperation,
            Record<string, string>,
            string,
          ],
      ),
      ...admin.map(
        (op) =>
          [
            op,
            { authorization: `Bearer ${ADMIN_TOKEN}` },
            fillPath(op.path, (p, s) => (p === 'merchantId' ? a.merchant.merchantId : idOfB(p, s, op))),
          ] as [DocumentedOperation, Record<string, string>, string],
      ),
    ];
    for (const [op, headers, url] of checks) {
      const res = await callAs(op, headers, url);
      expect([403, 404], `${op.method} ${url}: ${res.statusCode} ${res.body}`).toContain(res.statusCode);
    }
    // B's hold is untouched by A's cancel.
    const held = await t.db
      .selectFrom('holds')
      .select('status')
      .where('id', '=', idsOfB.holds ?? '')
      .executeTakeFirst();
    expect(held?.status).toBe('active');
    // B's objects are untouched: the owner of B still sees them all.
    const outlets = await t.app.inject({
      method: 'GET',
      url: '/api/v1/portal/outlets',
      headers: { authorization: `Bearer ${b.owner.accessToken}` },
    });
    expect(outlets.json<{ items: Array<{ id: string }> }>().items.map((o) => o.id)).toContain(idsOfB.outlets);
  });

  it("POS enrollment never reaches merchant B: B's referral codes, outlets and phones are unknown to A", async () => {
    const customerOfB = await t.db
      .selectFrom('customers')
      .select(['referral_code', 'phone'])
      .where('id', '=', idsOfB.customers ?? '')
      .executeTakeFirstOrThrow();
    const enroll = (body: object) =>
      t.app.inject({
        method: 'POST',
        url: '/api/v1/integration/customers',
        headers: { 'x-api-key': a.merchant.apiKey, 'idempotency-key': randomUUID() },
        payload: body,
      });
    const referred = await enroll({ phone: '+79990001122', referralCode: customerOfB.referral_code });
    expect(referred.statusCode, referred.body).toBe(400);
    expect(referred.json().error.code).toBe('referral_code_not_found');
    const atOutletOfB = await enroll({ phone: '+79990001122', outletId: idsOfB.outlets });
    expect(atOutletOfB.statusCode, atOutletOfB.body).toBe(404);
    // Phones are per merchant: B's customer's phone is a new customer of A, not a 409 naming B's id.
    const samePhone = await enroll({ phone: customerOfB.phone });
    expect(samePhone.statusCode, samePhone.body).toBe(201);
    expect(samePhone.json().customer.id).not.toBe(idsOfB.customers);
  });

  it('cashiers get 403 on every portal route the permission table denies them', async () => {
    const operations = documentedOperations(t.app).filter(
      (op) => op.path.startsWith('/api/v1/portal/') && op.security?.length && op.path !== '/api/v1/portal/me',
    );
    const denied = operations.filter((op) => {
      expect(op.permission, `${op.method} ${op.path} declares no x-permission`).toBeDefined();
      return !can('cashier', op.permission as Permission);
    });
    expect(denied.length).toBeGreaterThan(20);
    for (const op of denied) {
      const url = fillPath(op.path, () => randomUUID());
      const res = await callAs(op, { authorization: `Bearer ${a.cashier.accessToken}` }, url);
      expect(res.statusCode, `${op.method} ${op.path}: ${res.body}`).toBe(403);
      expect(res.json().error.code).toBe('forbidden');
    }
  });
});
