import { randomBytes } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import { Webhook } from 'standardwebhooks';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startWebhookReceiver, type WebhookReceiver } from '../../../test/fakes/webhook-receiver.js';
import { createTestDatabase, type TestDatabase } from '../../../test/helpers/db.js';
import { createTestMerchant } from '../../../test/helpers/factories.js';
import { AppError } from '../../http/errors.js';
import { SecretBox } from '../../lib/crypto.js';
import {
  assertPublicUrl,
  checkUrlTarget,
  createGuardedAgent,
  createGuardedLookup,
  refusalReason,
  SsrfBlockedError,
} from './ssrf.js';
import { closeWebhookAgents, deliverWebhook, parseRetryAfter } from './webhooks.delivery.js';
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  disableWebhookEndpoint,
  findEndpointsForEvent,
  getWebhookEndpointForDelivery,
  listWebhookEndpoints,
  rotateWebhookSecret,
  updateWebhookEndpoint,
} from './webhooks.service.js';
import { signWebhook } from './webhooks.signing.js';

let t: TestDatabase;
// Seals the secrets at rest, as the app's own box does.
const box = new SecretBox(randomBytes(32).toString('hex'));
const receivers: WebhookReceiver[] = [];

beforeAll(async () => {
  t = await createTestDatabase();
});
afterEach(async () => {
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});
afterAll(async () => {
  await closeWebhookAgents();
  await t.drop();
});

async function receiver(secrets: string[]): Promise<WebhookReceiver> {
  const r = await startWebhookReceiver(secrets);
  receivers.push(r);
  return r;
}

async function caught(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof AppError)) throw new Error(`expected an AppError, got ${String(error)}`);
  return error;
}

const SECRET = /^whsec_[A-Za-z0-9+/]{32}$/;

function deliver(url: string, secrets: string[], extra: { timeoutMs?: number; allowPrivate?: boolean } = {}) {
  return deliverWebhook({
    endpoint: { url, secrets },
    messageId: 'evt_42',
    type: 'purchase.committed',
    payload: { purchaseId: 'p1', orderId: 'A-1', earnedPoints: 50 },
    occurredAt: new Date('2025-01-02T03:04:05.000Z'),
    allowPrivateNetworks: extra.allowPrivate ?? true,
    timeoutMs: extra.timeoutMs,
  });
}

describe('managing endpoints', () => {
  it('creates an endpoint whose secret Standard Webhooks accepts, and never lists the secret', async () => {
    const m = await createTestMerchant(t.db);
    const created = await createWebhookEndpoint(t.db, {
      box,
      merchantId: m.merchantId,
      url: 'https://hooks.example.com/loyalty',
      eventTypes: ['purchase.committed'],
      description: 'POS sync',
    });
    expect(created.secret).toMatch(SECRET);
    expect(() => new Webhook(created.secret)).not.toThrow();

    const list = await listWebhookEndpoints(t.db, { merchantId: m.merchantId });
    expect(list).toEqual([
      expect.objectContaining({
        id: created.id,
        url: 'https://hooks.example.com/loyalty',
        eventTypes: ['purchase.committed'],
        description: 'POS sync',
        enabled: true,
        disabledReason: null,
        secretPrefix: created.secret.slice(0, 10),
        previousSecretExpiresAt: null,
      }),
    ]);
    expect(JSON.stringify(list)).not.toContain(created.secret);
  });

  it('refuses bad URLs with a 400 naming the field, and unknown merchants with 404', async () => {
    const m = await createTestMerchant(t.db);
    const bad = [
      'ftp://hooks.example.com/x',
      'not a url',
      '/relative/path',
      `https://hooks.example.com/${'a'.repeat(2048)}`,
      'http://127.0.0.1:8080/hook',
      'http://localhost/hook',
      'http://[::ffff:10.0.0.1]/hook',
      'http://169.254.169.254/latest/meta-data',
    ];
    for (const url of bad) {
      const error = await caught(
        createWebhookEndpoint(t.db, {
          box,
          merchantId: m.merchantId,
          url,
        }),
      );
      expect(error.code, url).toBe('validation_error');
      expect(error.status).toBe(400);
      expect(error.details).toEqual({ issues: [expect.objectContaining({ field: 'url' })] });
    }
    // Development and tests point endpoints at loopback receivers.
    await expect(
      createWebhookEndpoint(t.db, {
        box,
        merchantId: m.merchantId,
        url: 'http://127.0.0.1:8080/hook',
        allowPrivateNetworks: true,
      }),
    ).resolves.toMatchObject({ secret: expect.stringMatching(SECRET) });

    const unknown = await caught(
      createWebhookEndpoint(t.db, {
        box,
        merchantId: '00000000-0000-4000-8000-000000000000',
        url: 'https://hooks.example.com',
      }),
    );
    expect(unknown.code).toBe('merchant_not_found');
    const badType = await caught(
      createWebhookEndpoint(t.db, {
        box,
        merchantId: m.merchantId,
        url: 'https://a.example',
        eventTypes: [''],
      }),
    );
    expect(badType.details).toEqual({ issues: [expect.objectContaining({ field: 'eventTypes' })] });
  });

  it('routes events to enabled, subscribed endpoints; re-enabling clears the reason', async () => {
    const m = await createTestMerchant(t.db);
    const all = await createWebhookEndpoint(t.db, {
      box,
      merchantId: m.merchantId,
      url: 'https://all.example',
    });
    const some = await createWebhookEndpoint(t.db, {
      box,
      merchantId: m.merchantId,
      url: 'https://some.example',
      eventTypes: ['purchase.refunded'],
    });
    const idsFor = async (type: string) =>
      (await findEndpointsForEvent(t.db, { merchantId: m.merchantId, type })).map((e) => e.id);

    expect(await idsFor('purchase.committed')).toEqual([all.id]);
    expect(await idsFor('purchase.refunded')).toEqual([all.id, some.id]);

    expect(await disableWebhookEndpoint(t.db, { endpointId: all.id, reason: 'HTTP 410 Gone' })).toBe(true);
    // Already disabled: the dispatcher must not notify the merchant a second time.
    expect(await disableWebhookEndpoint(t.db, { endpointId: all.id, reason: 'again' })).toBe(false);
    expect(await idsFor('purchase.committed')).toEqual([]);
    const [disabled] = await listWebhookEndpoints(t.db, { merchantId: m.merchantId });
    expect(disabled).toMatchObject({ id: all.id, enabled: false, disabledReason: 'HTTP 410 Gone' });

    const reenabled = await updateWebhookEndpoint(t.db, {
      merchantId: m.merchantId,
      endpointId: all.id,
      enabled: true,
      eventTypes: ['purchase.committed', 'purchase.committed'],
      url: 'https://all.example/v2',
    });
    expect(reenabled).toMatchObject({
      enabled: true,
      disabledReason: null,
      eventTypes: ['purchase.committed'],
      url: 'https://all.example/v2',
    });
    expect(await idsFor('purchase.committed')).toEqual([all.id]);
  });

  it("keeps merchants apart: another merchant's endpoint id is not found", async () => {
    const owner = await createTestMerchant(t.db);
    const other = await createTestMerchant(t.db);
    const endpoint = await createWebhookEndpoint(t.db, {
      box,
      merchantId: owner.merchantId,
      url: 'https://owner.example',
    });
    const scoped = { merchantId: other.merchantId, endpointId: endpoint.id };

    expect((await caught(updateWebhookEndpoint(t.db, { ...scoped, enabled: false }))).code).toBe('not_found');
    expect((await caught(rotateWebhookSecret(t.db, { ...scoped, box }))).code).toBe('not_found');
    expect((await caught(deleteWebhookEndpoint(t.db, scoped))).code).toBe('not_found');
    expect(await listWebhookEndpoints(t.db, { merchantId: other.merchantId })).toEqual([]);
    expect(await findEndpointsForEvent(t.db, { merchantId: other.merchantId, type: 'x' })).toEqual([]);
    // A malformed id is simply not found, never a database error.
    const malformed = { merchantId: owner.merchantId, endpointId: 'nope' };
    expect((await caught(deleteWebhookEndpoint(t.db, malformed))).code).toBe('not_found');

    const untouched = await getWebhookEndpointForDelivery(t.db, endpoint.id, box);
    expect(untouched).toMatchObject({ enabled: true, secrets: [endpoint.secret] });
  });

  it('rotates the secret with an overlap, and deletes', async () => {
    const m = await createTestMerchant(t.db);
    const endpoint = await createWebhookEndpoint(t.db, {
      box,
      merchantId: m.merchantId,
      url: 'https://r.example',
    });
    const scoped = { merchantId: m.merchantId, endpointId: endpoint.id };

    const { secret } = await rotateWebhookSecret(t.db, { ...scoped, box });
    expect(secret).toMatch(SECRET);
    expect(secret).not.toBe(endpoint.secret);
    expect(await getWebhookEndpointForDelivery(t.db, endpoint.id, box)).toMatchObject({
      url: 'https://r.example/',
      secrets: [secret, endpoint.secret],
    });
    const [view] = await listWebhookEndpoints(t.db, { merchantId: m.merchantId });
    expect(view?.secretPrefix).toBe(secret.slice(0, 10));
    expect(view?.previousSecretExpiresAt?.getTime()).toBeGreaterThan(Date.now() + 86_000_000);

    // Once the overlap is over the old secret no longer signs.
    await t.db
      .updateTable('webhook_endpoints')
      .set({ previous_secret_expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', endpoint.id)
      .execute();
    expect((await getWebhookEndpointForDelivery(t.db, endpoint.id, box))?.secrets).toEqual([secret]);

    // No overlap: the old secret is retired at once.
    const immediate = await rotateWebhookSecret(t.db, { ...scoped, overlapSeconds: 0, box });
    expect((await getWebhookEndpointForDelivery(t.db, endpoint.id, box))?.secrets).toEqual([
      immediate.secret,
    ]);

    await deleteWebhookEndpoint(t.db, scoped);
    expect(await getWebhookEndpointForDelivery(t.db, endpoint.id, box)).toBeNull();
    expect(await listWebhookEndpoints(t.db, { merchantId: m.merchantId })).toEqual([]);
  });
});

describe('signing', () => {
  it('produces headers that the standardwebhooks package verifies', () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const body = '{"type":"purchase.committed"}';
    const headers = signWebhook({ secrets: [secret], messageId: 'evt_1', timestamp: new Date(), body });
    expect(headers['webhook-id']).toBe('evt_1');
    expect(new Webhook(secret).verify(body, { ...headers })).toEqual({ type: 'purchase.committed' });
    expect(() => new Webhook(secret).verify(`${body} `, { ...headers })).toThrow();
  });

  it('during a rotation, receivers knowing only the old or only the new secret both verify', async () => {
    const m = await createTestMerchant(t.db);
    const endpoint = await createWebhookEndpoint(t.db, {
      box,
      merchantId: m.merchantId,
      url: 'http://127.0.0.1/',
      allowPrivateNetworks: true,
    });
    const { secret } = await rotateWebhookSecret(t.db, {
      merchantId: m.merchantId,
      endpointId: endpoint.id,
      box,
    });
    const target = await getWebhookEndpointForDelivery(t.db, endpoint.id, box);
    const secrets = target?.secrets ?? [];

    const oldOnly = await receiver([endpoint.secret]);
    const newOnly = await receiver([secret]);
    const stranger = await receiver(['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw']);
    for (const r of [oldOnly, newOnly, stranger]) expect((await deliver(r.url, secrets)).result).toBe('ok');

    expect(oldOnly.deliveries[0]?.isVerified).toBe(true);
    expect(newOnly.deliveries[0]?.isVerified).toBe(true);
    expect(stranger.deliveries[0]?.isVerified).toBe(false);
  });
});

describe('delivering to a loopback receiver', () => {
  const secret = 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD';

  it('posts the signed JSON event and reports 2xx as ok', async () => {
    const r = await receiver([secret]);
    const result = await deliver(r.url, [secret]);
    expect(result).toMatchObject({ result: 'ok', statusCode: 200, responseExcerpt: '{"ok":true}' });
    expect(result.durationMs).toBeGreaterThanOrEqual(0);

    const [got] = r.deliveries;
    expect(got).toMatchObject({ method: 'POST', isVerified: true });
    expect(got?.headers).toMatchObject({
      'content-type': 'application/json',
      'user-agent': 'loyalty-platform-webhooks/1',
      'webhook-id': 'evt_42',
    });
    expect(got?.body).toEqual({
      type: 'purchase.committed',
      timestamp: '2025-01-02T03:04:05.000Z',
      data: { purchaseId: 'p1', orderId: 'A-1', earnedPoints: 50 },
    });
  });

  it('keeps the message id across a failed try and its retry', async () => {
    const r = await receiver([secret]);
    r.failNext(1, 500);
    const first = await deliver(r.url, [secret]);
    expect(first).toMatchObject({ result: 'http_error', statusCode: 500 });
    expect(first.isPermanent).toBeFalsy();
    expect(first.responseExcerpt).toContain('failing on purpose');
    expect((await deliver(r.url, [secret])).result).toBe('ok');
    expect(r.deliveries.map((d) => [d.status, d.headers['webhook-id'], d.isVerified])).toEqual([
      [500, 'evt_42', true],
      [200, 'evt_42', true],
    ]);
  });

  it('reports 410 as permanent and 429 with its Retry-After', async () => {
    const r = await receiver([secret]);
    r.setMode('status:410');
    expect(await deliver(r.url, [secret])).toMatchObject({
      result: 'http_error',
      statusCode: 410,
      isPermanent: true,
    });
    r.setMode('status:429:retry-after=3');
    expect(await deliver(r.url, [secret])).toMatchObject({
      result: 'rate_limited',
      statusCode: 429,
      retryAfterSeconds: 3,
    });
    const now = new Date('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:02:00 GMT', now)).toBe(120);
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
  });

  it('does not follow redirects', async () => {
    const r = await receiver([secret]);
    r.setMode('redirect');
    const result = await deliver(r.url, [secret]);
    expect(result).toMatchObject({ result: 'http_error', statusCode: 307 });
    expect(result.error).toMatch(/redirect.*not followed/);
    expect(r.deliveries.map((d) => d.path)).toEqual(['/webhook']);
  });

  it('times out on a slow receiver', async () => {
    const r = await receiver([secret]);
    r.setMode('slow:3000');
    const result = await deliver(r.url, [secret], { timeoutMs: 300 });
    expect(result).toMatchObject({ result: 'timeout' });
    expect(result.statusCode).toBeUndefined();
  });

  it('reports a receiver that is down or gone as a retryable error', async () => {
    const r = await receiver([secret]);
    r.setMode('down');
    const down = await deliver(r.url, [secret]);
    expect(down.result).toBe('error');
    expect(down.isPermanent).toBeFalsy();
    expect(r.deliveries).toEqual([]);

    const gone = await startWebhookReceiver([secret]);
    await gone.close();
    const refused = await deliver(gone.url, [secret]);
    expect(refused).toMatchObject({ result: 'error' });
    expect(refused.error).toContain('ECONNREFUSED');
  });
});

describe('SSRF guard', () => {
  it('refuses private targets without sending anything', async () => {
    const r = await receiver(['whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD']);
    const port = new URL(r.url).port;
    const targets = [
      `http://127.0.0.1:${port}/webhook`,
      `http://localhost:${port}/webhook`,
      `http://[::1]:${port}/webhook`,
      `http://[::ffff:127.0.0.1]:${port}/webhook`,
      'http://10.0.0.1/webhook',
      'http://169.254.169.254/latest/meta-data',
    ];
    for (const url of targets) {
      // Checked first without any I/O, so a broken guard fails here rather than sending a packet.
      expect(checkUrlTarget(new URL(url), { allowPrivate: false }), url).not.toBeNull();
      const result = await deliver(url, ['whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'], { allowPrivate: false });
      expect(result, url).toMatchObject({ result: 'error', isPermanent: true });
      expect(result.error).toMatch(/SSRF guard/);
    }
    expect(r.deliveries).toEqual([]);
    // The same receiver is reachable once private networks are allowed.
    expect((await deliver(r.url, ['whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD'])).result).toBe('ok');
  });

  it('the agent refuses literal private IPs itself, before connecting', async () => {
    const r = await receiver([]);
    const agent = createGuardedAgent({ allowPrivate: false });
    try {
      const error = await request(r.url, { method: 'POST', body: '{}', dispatcher: agent }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(SsrfBlockedError);
      expect(r.deliveries).toEqual([]);
    } finally {
      await agent.close();
    }
  });

  it('refuses a name resolving to a private address, and pins the checked one', async () => {
    const r = await receiver([]);
    const port = new URL(r.url).port;
    let lookups = 0;
    // The name does not exist; the stub plays a DNS that answers with loopback.
    const resolve = async () => {
      lookups += 1;
      return [{ address: '127.0.0.1', family: 4 }];
    };
    const blocked = createGuardedAgent({ allowPrivate: false, resolve });
    const allowed = createGuardedAgent({ allowPrivate: true, resolve });
    try {
      const url = `http://hooks.attacker.invalid:${port}/webhook`;
      const error = await request(url, { method: 'POST', body: '{}', dispatcher: blocked }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(SsrfBlockedError);
      expect(String(error)).toContain('resolves to 127.0.0.1');
      expect(r.deliveries).toEqual([]);

      // Allowed, the connection goes exactly to the address the guard checked: one lookup, no second.
      lookups = 0;
      const ok = await request(url, { method: 'POST', body: '{}', dispatcher: allowed });
      await ok.body.dump();
      expect(ok.statusCode).toBe(200);
      expect(lookups).toBe(1);
      expect(r.deliveries).toHaveLength(1);
    } finally {
      await Promise.all([blocked.close(), allowed.close()]);
    }
  });

  it('checks every address a name resolves to', async () => {
    const lookupWith = (addresses: string[], all: boolean) =>
      new Promise<{ error: Error | null; result: unknown }>((resolve) => {
        const lookup = createGuardedLookup({
          allowPrivate: false,
          resolve: async () =>
            addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
        });
        lookup('hooks.example.com', { all }, (error, address) => resolve({ error, result: address }));
      });

    expect(await lookupWith(['93.184.216.34'], false)).toEqual({ error: null, result: '93.184.216.34' });
    const both = await lookupWith(['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'], true);
    expect((both.result as LookupAddress[]).map((a) => a.address)).toHaveLength(2);
    for (const mixed of [
      ['93.184.216.34', '10.0.0.5'],
      ['2606:2800:220:1:248:1893:25c8:1946', 'fd00::1'],
      ['93.184.216.34', '::ffff:169.254.169.254'],
    ]) {
      expect((await lookupWith(mixed, true)).error, mixed.join()).toBeInstanceOf(SsrfBlockedError);
    }
  });

  it('classifies addresses', () => {
    const refused: Record<string, string> = {
      '127.0.0.1': 'loopback',
      '10.1.2.3': 'private',
      '172.16.0.1': 'private',
      '192.168.1.1': 'private',
      '169.254.169.254': 'linkLocal',
      '100.64.0.1': 'carrierGradeNat',
      '0.0.0.0': 'unspecified',
      '224.0.0.1': 'multicast',
      '255.255.255.255': 'broadcast',
      '240.0.0.1': 'reserved',
      '192.0.2.10': 'reserved',
      '::1': 'loopback',
      '::': 'unspecified',
      'fe80::1': 'linkLocal',
      'fd12:3456::1': 'uniqueLocal',
      'ff02::1': 'multicast',
      '::ffff:127.0.0.1': 'loopback',
      '::ffff:10.0.0.1': 'private',
      '64:ff9b::7f00:1': 'rfc6052',
      '2001:db8::1': 'reserved',
    };
    for (const [address, range] of Object.entries(refused)) {
      expect(refusalReason(address, { allowPrivate: false }), address).toBe(range);
    }
    for (const address of ['8.8.8.8', '93.184.216.34', '2606:4700:4700::1111', '::ffff:8.8.8.8']) {
      expect(refusalReason(address, { allowPrivate: false }), address).toBeNull();
    }
    // Allowing private networks never allows addresses no webhook can live at.
    expect(refusalReason('127.0.0.1', { allowPrivate: true })).toBeNull();
    expect(refusalReason('10.0.0.1', { allowPrivate: true })).toBeNull();
    expect(refusalReason('0.0.0.0', { allowPrivate: true })).toBe('unspecified');
    expect(refusalReason('224.0.0.1', { allowPrivate: true })).toBe('multicast');
  });

  it('checks URLs at creation without DNS: literal addresses and localhost only', () => {
    expect(() => assertPublicUrl('http://localhost:3000/hook', { allowPrivate: false })).toThrow(AppError);
    expect(() => assertPublicUrl('http://[::ffff:127.0.0.1]/', { allowPrivate: false })).toThrow(AppError);
    expect(() => assertPublicUrl('http://2130706433/', { allowPrivate: false })).toThrow(AppError);
    expect(() => assertPublicUrl('https://hooks.example.com/x', { allowPrivate: false })).not.toThrow();
    expect(() => assertPublicUrl('http://localhost:3000/hook', { allowPrivate: true })).not.toThrow();
  });
});
