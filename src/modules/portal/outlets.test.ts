import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { createTestCustomer } from '../../../test/helpers/factories.js';
import { commitPurchaseViaApi } from '../../../test/helpers/outbox.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../../../test/helpers/portal.js';

// Outlets, devices, cashiers and API keys in the portal: audited changes that the integration API
// (which caches POS contexts and keys) sees at once.

let t: TestApp;
let team: MerchantTeam;

beforeAll(async () => {
  // The listener delivers the cache notifications, as in the server.
  t = await createTestApp({ listen: true });
  team = await createMerchantTeam(t.app, t.db);
  // resolveAt finds this customer, so a refused context is the only possible error.
  await createTestCustomer(t.db, { merchant: team.merchant, phone: '+79995550000' });
});
afterAll(async () => {
  await t.close();
});

function call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown) {
  return portalRequest(t.app, team.owner, { method, url, payload });
}

async function auditEntries(action: string) {
  const res = await call('GET', '/audit-log?limit=200');
  return res.json().items.filter((e: { action: string }) => e.action === action);
}

function resolveAt(context: Record<string, string>, apiKey = team.merchant.apiKey) {
  return t.app.inject({
    method: 'POST',
    url: '/api/v1/integration/customers/resolve',
    headers: { 'x-api-key': apiKey },
    payload: { phone: '+79995550000', ...context },
  });
}

describe('outlets, devices and cashiers', () => {
  it('creates, renames and deletes an outlet, each change audited with before and after', async () => {
    const created = await call('POST', '/outlets', { name: 'Парк', address: 'ул. Ленина, 1' });
    expect(created.statusCode).toBe(201);
    const outlet = created.json();
    expect(outlet).toMatchObject({ name: 'Парк', address: 'ул. Ленина, 1' });

    const renamed = await call('PATCH', `/outlets/${outlet.id}`, { name: 'Парк Горького', address: null });
    expect(renamed.json()).toMatchObject({ id: outlet.id, name: 'Парк Горького', address: null });
    const list = await portalRequest(t.app, team.cashier, { method: 'GET', url: '/outlets' });
    expect(list.json().items.map((o: { name: string }) => o.name)).toContain('Парк Горького');

    expect((await call('DELETE', `/outlets/${outlet.id}`)).statusCode).toBe(204);
    expect((await call('DELETE', `/outlets/${outlet.id}`)).statusCode).toBe(404);

    const [update] = await auditEntries('outlet.update');
    expect(update).toMatchObject({
      actor: team.owner.email,
      entityType: 'outlet',
      entityId: outlet.id,
      before: { name: 'Парк', address: 'ул. Ленина, 1' },
      after: { name: 'Парк Горького', address: null },
    });
    const [deleted] = await auditEntries('outlet.delete');
    expect(deleted).toMatchObject({ entityId: outlet.id, before: { name: 'Парк Горького' }, after: null });
    expect(await auditEntries('outlet.create')).toHaveLength(1);
  });

  it('refuses to delete what purchases name (409 conflict), keeping the history intact', async () => {
    const customer = await createTestCustomer(t.db, { merchant: team.merchant });
    await commitPurchaseViaApi(t.app, team.merchant, { customerId: customer.customerId, total: 1000 });
    const res = await call('DELETE', `/outlets/${team.merchant.outletId}`);
    expect(res.statusCode).toBe(409);
    expect(res.json().error).toMatchObject({ code: 'conflict' });
    expect(res.json().error.message).toMatch(/rename it instead/);
    // A device no purchase names can go.
    const device = await call('POST', '/devices', { name: 'Запасная касса' });
    expect((await call('DELETE', `/devices/${device.json().id}`)).statusCode).toBe(204);
  });

  it('moves a device to another outlet, and the integration API sees it at once', async () => {
    const outlet2 = (await call('POST', '/outlets', { name: 'Вокзал' })).json();
    const device = (
      await call('POST', '/devices', { name: 'Касса', outletId: team.merchant.outletId })
    ).json();
    expect(device.outletId).toBe(team.merchant.outletId);
    // The context is checked (and cached) with the device in the first outlet.
    const before = await resolveAt({ outletId: team.merchant.outletId, deviceId: device.id });
    expect(before.statusCode).toBe(200);

    const moved = await call('PATCH', `/devices/${device.id}`, { outletId: outlet2.id });
    expect(moved.json().outletId).toBe(outlet2.id);
    await expect
      .poll(
        async () =>
          (await resolveAt({ outletId: team.merchant.outletId, deviceId: device.id })).json().error.code,
      )
      .toBe('context_mismatch');

    const detached = await call('PATCH', `/devices/${device.id}`, { outletId: null });
    expect(detached.json().outletId).toBeNull();
  });

  it('manages cashiers (the managers of the POS context)', async () => {
    const cashier = (await call('POST', '/cashiers', { name: 'Ольга' })).json();
    expect((await resolveAt({ managerId: cashier.id })).statusCode).toBe(200);
    const renamed = await call('PATCH', `/cashiers/${cashier.id}`, { name: 'Ольга П.' });
    expect(renamed.json().name).toBe('Ольга П.');
    const list = await call('GET', '/cashiers');
    expect(list.json().items.map((c: { id: string }) => c.id)).toContain(cashier.id);
    expect((await call('DELETE', `/cashiers/${cashier.id}`)).statusCode).toBe(204);
    await expect
      .poll(async () => (await resolveAt({ managerId: cashier.id })).json().error.code)
      .toBe('manager_not_found');
  });

  it('validates names and ids, naming the field', async () => {
    const empty = await call('POST', '/outlets', { name: '' });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().error.message).toMatch(/^name/);
    const extra = await call('POST', '/devices', { name: 'x', colour: 'red' });
    expect(extra.json().error.message).toMatch(/^colour/);
    const unknownOutlet = await call('POST', '/cashiers', { name: 'x', outletId: randomUUID() });
    expect(unknownOutlet.statusCode).toBe(404);
    expect(unknownOutlet.json().error.code).toBe('outlet_not_found');
  });
});

describe('API keys', () => {
  it('shows a new key once, lists only prefixes, audits no key, and revokes it everywhere', async () => {
    const created = await portalRequest(t.app, team.admin, {
      method: 'POST',
      url: '/api-keys',
      payload: { name: 'Касса 3' },
    });
    expect(created.statusCode).toBe(201);
    const key = created.json();
    expect(key.key).toMatch(/^lk_live_/);
    expect(key.prefix).toBe(key.key.slice(0, 12));
    expect((await resolveAt({}, key.key)).statusCode).toBe(200);

    const list = await call('GET', '/api-keys');
    const listed = list.json().find((k: { id: string }) => k.id === key.id);
    expect(listed).toEqual({
      id: key.id,
      name: 'Касса 3',
      prefix: key.prefix,
      createdAt: expect.any(String),
      revokedAt: null,
    });
    expect(list.body).not.toContain(key.key);

    expect((await call('DELETE', `/api-keys/${key.id}`)).statusCode).toBe(204);
    await expect.poll(async () => (await resolveAt({}, key.key)).statusCode).toBe(401);
    expect((await call('DELETE', `/api-keys/${key.id}`)).statusCode).toBe(404);

    const audit = await call('GET', '/audit-log?limit=200');
    expect(audit.body).not.toContain(key.key);
    const entries = audit.json().items.filter((e: { entityId: string }) => e.entityId === key.id);
    expect(entries.map((e: { action: string }) => e.action)).toEqual(['api_key.revoke', 'api_key.create']);
    expect(entries[1].after).toEqual({ id: key.id, name: 'Касса 3', prefix: key.prefix });
    expect(entries[0].before).toMatchObject({ prefix: key.prefix, revokedAt: null });
  });
});
