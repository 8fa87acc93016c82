import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebhookReceiver, type WebhookReceiver } from '../../../test/fakes/webhook-receiver.js';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import { type RunningDispatcher, startTestDispatcher } from '../../../test/helpers/outbox.js';
import { createMerchantTeam, type MerchantTeam, portalRequest } from '../../../test/helpers/portal.js';

// A merchant's webhooks in the portal, delivered by a real dispatcher to a loopback receiver that
// verifies Standard Webhooks signatures: test event, delivery log with attempts, replay of dead ones.

let t: TestApp;
let team: MerchantTeam;
let receiver: WebhookReceiver;
let worker: RunningDispatcher;

beforeAll(async () => {
  t = await createTestApp({
    env: {
      WEBHOOK_ALLOW_PRIVATE_NETWORKS: '1',
      OUTBOX_RETRY_SCHEDULE: '0.1',
      OUTBOX_POLL_INTERVAL_MS: '100',
    },
  });
  team = await createMerchantTeam(t.app, t.db);
  receiver = await startWebhookReceiver();
  worker = await startTestDispatcher({ db: t.db, url: t.url, config: t.config });
});
afterAll(async () => {
  await worker.stop();
  await receiver.close();
  await t.close();
});

function call(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown) {
  return portalRequest(t.app, team.admin, { method, url, payload });
}

async function deliveries(endpointId: string) {
  const res = await portalRequest(t.app, team.owner, {
    method: 'GET',
    url: `/webhooks/${endpointId}/deliveries`,
  });
  expect(res.statusCode).toBe(200);
  return res.json().items as Array<{
    eventId: number;
    status: string;
    attempts: number;
    attemptLog: Array<{ attempt: number; statusCode: number | null; result: string }>;
  }>;
}

describe('portal webhooks', () => {
  it('adds an endpoint, sends a signed test event and shows the delivery with its attempt', async () => {
    const created = await call('POST', '/webhooks', {
      url: receiver.url,
      eventTypes: ['purchase.committed'],
      description: 'CRM',
    });
    expect(created.statusCode).toBe(201);
    const { id, secret } = created.json();
    expect(secret).toMatch(/^whsec_/);
    receiver.setSecrets([secret]);

    const list = await call('GET', '/webhooks');
    expect(list.json().items).toEqual([
      expect.objectContaining({
        id,
        url: receiver.url,
        eventTypes: ['purchase.committed'],
        secretPrefix: secret.slice(0, 10),
      }),
    ]);
    expect(list.body).not.toContain(secret);

    const test = await call('POST', `/webhooks/${id}/test`);
    expect(test.statusCode).toBe(202);
    const [delivery] = await receiver.waitForDeliveries(1);
    expect(delivery?.isVerified).toBe(true);
    expect(delivery?.body).toMatchObject({ type: 'webhook.test' });

    await expect.poll(async () => (await deliveries(id))[0]?.status).toBe('delivered');
    const [logged] = await deliveries(id);
    expect(logged).toMatchObject({ eventId: test.json().eventId, type: 'webhook.test', attempts: 1 });
    expect(logged?.attemptLog).toEqual([
      expect.objectContaining({ attempt: 1, statusCode: 200, result: 'ok' }),
    ]);
  });

  it('shows failed attempts of a dead delivery and replays it once the receiver is back', async () => {
    const { id, secret } = (await call('POST', '/webhooks', { url: `${receiver.url}/replay` })).json();
    receiver.setSecrets([secret]);
    receiver.setMode('status:500');
    const test = await call('POST', `/webhooks/${id}/test`);
    await expect.poll(async () => (await deliveries(id))[0]?.status, { timeout: 10_000 }).toBe('dead');
    const [dead] = await deliveries(id);
    expect(dead?.attemptLog.map((a) => [a.attempt, a.statusCode, a.result])).toEqual([
      [1, 500, 'http_error'],
      [2, 500, 'http_error'],
    ]);

    receiver.setMode('ok');
    const since = new Date(Date.now() - 60_000).toISOString();
    const replay = await call('POST', `/webhooks/${id}/replay`, { since });
    expect(replay.json()).toEqual({ replayed: 1 });
    await expect.poll(async () => (await deliveries(id))[0]?.status, { timeout: 10_000 }).toBe('delivered');
    expect((await deliveries(id))[0]?.eventId).toBe(test.json().eventId);
    // Nothing dead is left to replay.
    expect((await call('POST', `/webhooks/${id}/replay`, { since })).json()).toEqual({ replayed: 0 });
  });

  it('rotates the secret (shown once, audited by prefix only), edits and deletes', async () => {
    const { id, secret } = (await call('POST', '/webhooks', { url: receiver.url })).json();
    const rotated = await call('POST', `/webhooks/${id}/rotate-secret`, { overlapSeconds: 60 });
    expect(rotated.statusCode).toBe(200);
    const newSecret = rotated.json().secret;
    expect(newSecret).not.toBe(secret);

    const badUrl = await call('PATCH', `/webhooks/${id}`, { url: 'ftp://example.com' });
    expect(badUrl.statusCode).toBe(400);
    expect(badUrl.json().error.message).toMatch(/^url/);
    const off = await call('PATCH', `/webhooks/${id}`, { enabled: false });
    expect(off.json()).toMatchObject({ enabled: false, disabledReason: 'disabled by the merchant' });
    expect((await call('DELETE', `/webhooks/${id}`)).statusCode).toBe(204);
    expect((await call('GET', `/webhooks/${id}/deliveries`)).statusCode).toBe(404);

    const audit = await portalRequest(t.app, team.owner, { method: 'GET', url: '/audit-log?limit=200' });
    expect(audit.body).not.toContain(secret);
    expect(audit.body).not.toContain(newSecret);
    const actions = audit
      .json()
      .items.filter((e: { entityId: string }) => e.entityId === id)
      .map((e: { action: string }) => e.action);
    expect(actions).toEqual(['webhook.delete', 'webhook.update', 'webhook.rotate_secret', 'webhook.create']);
    const rotation = audit
      .json()
      .items.find(
        (e: { action: string; entityId: string }) =>
          e.action === 'webhook.rotate_secret' && e.entityId === id,
      );
    expect(rotation).toMatchObject({
      before: { secretPrefix: secret.slice(0, 10) },
      after: { secretPrefix: newSecret.slice(0, 10) },
    });
  });
});
