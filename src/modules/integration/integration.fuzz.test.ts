import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/helpers/app.js';
import {
  createTestCustomer,
  createTestMerchant,
  type TestMerchant,
} from '../../../test/helpers/factories.js';

// Random and mangled requests against every integration route. Whatever arrives, the API answers
// below 500 with the error envelope, names the field of a validation failure, and writes nothing.

const BASE = '/api/v1/integration';
const MAX_AMOUNT_MINOR = 100_000_000_000;

let t: TestApp;
let merchant: TestMerchant;
let phone: string;
let customerId: string;
let code: string;
let purchaseId: string;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Path = ReadonlyArray<string | number>;

type RouteName = 'resolve' | 'quote' | 'commit' | 'refund' | 'get';

interface PathId {
  value: string;
  isValidId: boolean;
  isRaw?: boolean;
}

/** One request of the fuzz run, with what the oracle needs to know about it. */
interface FuzzRequest {
  route: RouteName;
  /** Raw payload (a JSON text, valid or not); undefined sends no body. */
  payload?: string;
  contentType?: string;
  idempotencyKey?: string;
  /** Path id for refunds and GET: false `isValidId` for non-uuids, `isRaw` when sent unencoded. */
  id?: PathId;
  /** Fields the generator broke; a validation error must name one of them (or something under it). */
  brokenFields?: string[];
}

interface RowCounts {
  purchases: number;
  refunds: number;
  ledger_entries: number;
  point_lots: number;
  outbox_events: number;
  idempotency_keys: number;
  customer_codes_consumed: number;
  customers: number;
}

async function countRows(): Promise<RowCounts> {
  const { rows } = await sql<RowCounts>`
    select
      (select count(*) from purchases)::int as purchases,
      (select count(*) from refunds)::int as refunds,
      (select count(*) from ledger_entries)::int as ledger_entries,
      (select count(*) from point_lots)::int as point_lots,
      (select count(*) from outbox_events)::int as outbox_events,
      (select count(*) from idempotency_keys)::int as idempotency_keys,
      (select count(*) from customer_codes where consumed_at is not null)::int as customer_codes_consumed,
      (select count(*) from customers)::int as customers
  `.execute(t.db);
  const counts = rows[0];
  if (!counts) throw new Error('count query returned no row');
  return counts;
}

function urlOf(request: FuzzRequest): string {
  const id = request.id?.isRaw ? request.id.value : encodeURIComponent(request.id?.value ?? purchaseId);
  switch (request.route) {
    case 'resolve':
      return `${BASE}/customers/resolve`;
    case 'quote':
      return `${BASE}/purchases/quote`;
    case 'commit':
      return `${BASE}/purchases`;
    case 'refund':
      return `${BASE}/purchases/${id}/refunds`;
    case 'get':
      return `${BASE}/purchases/${id}`;
  }
}

async function send(request: FuzzRequest): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { 'x-api-key': merchant.apiKey };
  if (request.payload !== undefined) headers['content-type'] = request.contentType ?? 'application/json';
  if (request.idempotencyKey !== undefined) headers['idempotency-key'] = request.idempotencyKey;
  return t.app.inject({
    method: request.route === 'get' ? 'GET' : 'POST',
    url: urlOf(request),
    headers,
    payload: request.payload,
  });
}

const SNAKE_CASE = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;

/** Whether a validation issue on `field` is about the `broken` one (the same, inside, or around it). */
function relates(issueField: string, brokenField: string): boolean {
  // code, phone and customerId are one choice ("give exactly one of ..."), and so are the context
  // ids ("mutations need one of ..."): removing one is reported on the choice's first field.
  const ref = (s: string) =>
    s
      .replace(/(^|\.)(code|phone|customerId)$/, '$1<customer ref>')
      .replace(/^(outletId|deviceId|managerId)$/, '<context>');
  const field = ref(issueField);
  const broken = ref(brokenField);
  const top = (s: string) => s.split(/[.[]/)[0];
  return (
    field === broken ||
    field.startsWith(`${broken}.`) ||
    field.startsWith(`${broken}[`) ||
    broken.startsWith(`${field}.`) ||
    broken.startsWith(`${field}[`) ||
    // A cross-field rule (item amounts vs total) reports on a sibling of the broken field.
    top(field) === top(broken)
  );
}

/** The contract every answer to a bad request keeps. */
function checkAnswer(request: FuzzRequest, res: LightMyRequestResponse): void {
  const shown = res.body.slice(0, 300);
  const context = `${request.route} ${urlOf(request).slice(0, 120)} payload=${String(request.payload).slice(0, 200)} -> ${res.statusCode} ${shown}`;
  expect(res.statusCode, context).toBeLessThan(500);
  if (res.statusCode < 400) return;
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    expect.fail(`${context}: the error body is not JSON`);
  }
  const envelope = body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null;
  const error = envelope?.error;
  const isEnvelope =
    typeof envelope === 'object' &&
    envelope !== null &&
    Object.keys(envelope).length === 1 &&
    typeof error === 'object' &&
    error !== null &&
    typeof error.code === 'string' &&
    SNAKE_CASE.test(error.code) &&
    typeof error.message === 'string' &&
    error.message.length > 0 &&
    Object.keys(error).every((k) => ['code', 'message', 'details'].includes(k));
  expect(isEnvelope, `${context}: not {error:{code: snake_case, message}}`).toBe(true);
  if (res.statusCode !== 400 || error?.code !== 'validation_error' || typeof error.message !== 'string')
    return;

  // "field: what is wrong", where the field is a path into the request.
  const separator = error.message.indexOf(': ');
  expect(separator, `${context}: the message names no field`).toBeGreaterThan(0);
  const named = error.message.slice(0, separator);
  const issues = (error.details as { issues?: Array<{ field: string; message: string }> } | undefined)
    ?.issues;
  if (issues) {
    expect(issues.length, context).toBeGreaterThan(0);
    expect(named, context).toBe(issues[0]?.field);
    for (const issue of issues) expect(issue.field.length, context).toBeGreaterThan(0);
  }
  if (request.brokenFields) {
    const allowed = [...request.brokenFields];
    if (request.id && !request.id.isValidId) allowed.push('params.id');
    if (!isValidIdempotencyKey(request.idempotencyKey)) allowed.push('headers.idempotency-key');
    const fields = issues?.map((i) => i.field) ?? [named];
    for (const field of fields) {
      expect(
        allowed.some((b) => relates(field, b)),
        `${context}: issue on "${field}" but the request broke ${JSON.stringify(allowed)}`,
      ).toBe(true);
    }
  }
}

function isValidIdempotencyKey(key: string | undefined): boolean {
  return key !== undefined && /^[\x21-\x7e]{1,255}$/.test(key);
}

let baseline: RowCounts;
let acceptedWrites = 0;

/** Sends the request, checks the answer, and checks that nothing was written unless it succeeded. */
async function exercise(request: FuzzRequest): Promise<void> {
  const res = await send(request);
  checkAnswer(request, res);
  const isWrite = request.route === 'commit' || request.route === 'refund';
  if (isWrite && res.statusCode >= 200 && res.statusCode < 300) {
    // A mutation that happened to be valid: it may write, so it moves the baseline.
    acceptedWrites += 1;
    baseline = await countRows();
    return;
  }
  const after = await countRows();
  expect(
    after,
    `rows written by ${request.route} -> ${res.statusCode}: ${request.payload?.slice(0, 300)}`,
  ).toEqual(baseline);
}

// --- generators -------------------------------------------------------------------------------------

const hugeString = (n: number) => fc.constantFrom('x', 'я', '0', ' ', '\u0000').map((c) => c.repeat(n));

/** Values that are wrong for every field of every body (or right only by rare accident). */
const badValue: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>(
    null,
    true,
    false,
    '',
    ' ',
    'NaN',
    'Infinity',
    '-1',
    '1e3',
    '12.5',
    '0x10',
    [],
    {},
    [1, 2, 3],
    { $gt: '' },
    -1,
    -0.5,
    0.5,
    1.5,
    -MAX_AMOUNT_MINOR,
    MAX_AMOUNT_MINOR + 1,
    Number.MAX_SAFE_INTEGER,
    Number.MAX_SAFE_INTEGER + 2,
    2 ** 63,
    1e300,
    -1e300,
    Number.MIN_VALUE,
    "'; drop table purchases; --",
    '00000000-0000-0000-0000-00000000000g',
    '+7 abc',
  ),
  fc.integer({ max: -1 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
  fc.string({ maxLength: 40 }).map((s) => `${s}\u0000`),
  // Any unicode, lone surrogates included (valid for free-text fields, so it may reach the database).
  fc.string({ minLength: 1, maxLength: 40, unit: 'binary' }),
  hugeString(300),
  hugeString(20_000),
  fc.jsonValue({ maxDepth: 3 }).map((v) => [v, v] as Json),
  fc.nat({ max: 200 }).map((depth) => {
    let v: Json = 1;
    for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { a: v };
    return v;
  }),
);

const identifier = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_]{0,20}$/);

type Mutation =
  | { kind: 'set'; pick: number; value: Json }
  | { kind: 'delete'; pick: number }
  | { kind: 'extra'; pick: number; key: string; value: Json };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('set' as const), pick: fc.nat(), value: badValue }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('extra' as const),
      pick: fc.nat(),
      key: identifier,
      value: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
    }),
  },
);

function isObject(value: Json | undefined): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every path inside a JSON value (objects and arrays), the root excluded. */
function pathsOf(value: Json, prefix: Path = []): Path[] {
  const out: Path[] = [];
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      out.push([...prefix, i], ...pathsOf(v, [...prefix, i]));
    });
  } else if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) out.push([...prefix, k], ...pathsOf(v, [...prefix, k]));
  }
  return out;
}

/** Object paths (where an unknown key can be added), the root included. */
function objectPathsOf(value: Json, prefix: Path = []): Path[] {
  const out: Path[] = isObject(value) ? [prefix] : [];
  const children: Array<[string | number, Json]> = Array.isArray(value)
    ? value.map((v, i): [number, Json] => [i, v])
    : isObject(value)
      ? Object.entries(value)
      : [];
  for (const [key, child] of children) out.push(...objectPathsOf(child, [...prefix, key]));
  return out;
}

function fieldOf(path: Path): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

function parentOf(root: Json, path: Path): Json | undefined {
  let node: Json | undefined = root;
  for (const key of path.slice(0, -1)) {
    if (Array.isArray(node) && typeof key === 'number') node = node[key];
    else if (isObject(node) && typeof key === 'string') node = node[key];
    else return undefined;
  }
  return node;
}

/** Applies the mutations to a copy of body; returns the new body and the fields it broke. */
function mutate(body: Json, mutations: Mutation[]): { body: Json; broken: string[] } {
  const copy = structuredClone(body);
  const broken: string[] = [];
  for (const m of mutations) {
    if (m.kind === 'extra') {
      const targets = objectPathsOf(copy);
      const target = targets[m.pick % targets.length] ?? [];
      const node = target.length === 0 ? copy : parentOf(copy, [...target, '']);
      if (!isObject(node) || m.key in node) continue;
      node[m.key] = m.value;
      broken.push(fieldOf([...target, m.key]));
      continue;
    }
    const paths = pathsOf(copy);
    const path = paths[m.pick % paths.length];
    if (!path) continue;
    const parent = parentOf(copy, path);
    const key = path[path.length - 1];
    if (Array.isArray(parent) && typeof key === 'number') {
      if (m.kind === 'set') parent[key] = m.value;
      else parent.splice(key, 1);
    } else if (isObject(parent) && typeof key === 'string') {
      if (m.kind === 'set') parent[key] = m.value;
      else delete parent[key];
    } else {
      continue;
    }
    // Deleting an array element shifts its siblings, so the array itself is what broke.
    broken.push(fieldOf(m.kind === 'delete' && typeof key === 'number' ? path.slice(0, -1) : path));
  }
  return { body: copy, broken };
}

function customerRef(kind: 'phone' | 'code' | 'customerId'): { [key: string]: Json } {
  if (kind === 'phone') return { phone };
  if (kind === 'code') return { code };
  return { customerId };
}

function validBody(route: RouteName, refKind: 'phone' | 'code' | 'customerId'): Json {
  const receipt: Json = {
    total: 10_000,
    items: [
      { sku: 'COF-1', name: 'Latte', category: 'coffee', quantity: 2, amount: 6_000 },
      { name: 'Cake', amount: 4_000, excluded: false },
    ],
  };
  switch (route) {
    case 'resolve':
      return { ...customerRef(refKind), outletId: merchant.outletId };
    case 'quote':
      return { customer: customerRef(refKind), receipt, redeemPoints: 10, outletId: merchant.outletId };
    case 'commit':
      return {
        customer: customerRef(refKind),
        receipt,
        redeemPoints: 10,
        orderId: 'fuzz-order',
        outletId: merchant.outletId,
        deviceId: merchant.deviceId,
      };
    case 'refund':
      return { amount: 100, managerId: merchant.managerId };
    case 'get':
      return null;
  }
}

const postRoute = fc.constantFrom<RouteName>('resolve', 'quote', 'commit', 'refund');

const idempotencyKey: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 4, arbitrary: fc.uuid() },
  fc.constant(undefined),
  fc.constantFrom('', ' ', '\t', 'ключ', 'a b', 'x'.repeat(256), 'x'.repeat(10_000)),
  fc.string({ minLength: 0, maxLength: 300, unit: 'binary-ascii' }).filter((s) => !/[\r\n\0]/.test(s)),
);

const garbageId: fc.Arbitrary<PathId> = fc
  .oneof(
    fc.string({ maxLength: 80 }),
    fc.string({ maxLength: 300, unit: 'binary' }),
    fc.constantFrom(
      '',
      '..',
      '%',
      '%00',
      'null',
      'undefined',
      "1' or '1'='1",
      '00000000-0000-0000-0000-000000000000x',
      '{00000000-0000-0000-0000-000000000000}',
      '00000000000000000000000000000000',
      '1',
      '-1',
    ),
  )
  // Longer ids are refused by the router before validation: routerRejectedIds covers them.
  .filter((s) => encodeURIComponent(s).length <= 100)
  .filter((s) => !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s))
  .map((value) => ({ value, isValidId: false }));

/** Ids the router itself rejects (bad percent-encoding, longer than a path parameter may be). */
const routerRejectedIds: PathId[] = [
  ...['%', '%zz', '%E0%A4%A', '%C0%AF', '%ff%fe'].map((value) => ({ value, isValidId: false, isRaw: true })),
  { value: 'x'.repeat(101), isValidId: false },
  { value: 'x'.repeat(5_000), isValidId: false },
  { value: 'я'.repeat(40), isValidId: false },
];

/** Ids sent as they are: encoded nulls and path tricks. */
const rawId: fc.Arbitrary<PathId> = fc
  .constantFrom('%00', '..%2F..%2F', '%2e%2e', `${'%41'.repeat(30)}`, 'a%20b')
  .map((value) => ({ value, isValidId: false, isRaw: true }));

const validId: fc.Arbitrary<PathId> = fc.oneof(
  fc.constant(null).map(() => ({ value: purchaseId, isValidId: true })),
  fc.uuid().map((value) => ({ value, isValidId: true })),
);

const anyId: fc.Arbitrary<PathId> = fc.oneof(
  { weight: 5, arbitrary: validId },
  { weight: 3, arbitrary: garbageId },
  { weight: 1, arbitrary: rawId },
);

/** A valid body of a random route with one to three mutations. */
const mutatedRequest: fc.Arbitrary<FuzzRequest> = fc
  .record({
    route: postRoute,
    refKind: fc.constantFrom('phone' as const, 'code' as const, 'customerId' as const),
    mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }),
    idempotencyKey,
    id: anyId,
  })
  .map(({ route, refKind, mutations, idempotencyKey, id }) => {
    const { body, broken } = mutate(validBody(route, refKind), mutations);
    return {
      route,
      payload: JSON.stringify(body),
      idempotencyKey,
      id: route === 'refund' ? id : undefined,
      brokenFields: broken,
    };
  })
  // Mutations that broke nothing (none applied) would be valid requests.
  .filter((r) => (r.brokenFields?.length ?? 0) > 0);

/** Arbitrary JSON values and object soups of every shape, to every POST route. */
const arbitraryJsonRequest: fc.Arbitrary<FuzzRequest> = fc
  .record({
    route: postRoute,
    value: fc.oneof(
      fc.jsonValue({ maxDepth: 6 }),
      fc.object({ maxDepth: 4, withNullPrototype: true }),
      fc.dictionary(
        fc.constantFrom('customer', 'receipt', 'code', 'phone', 'amount', 'orderId'),
        fc.anything(),
      ),
    ),
    idempotencyKey,
    id: anyId,
  })
  .map(({ route, value, idempotencyKey, id }) => ({
    route,
    payload: JSON.stringify(value) ?? 'null',
    idempotencyKey,
    id: route === 'refund' ? id : undefined,
  }));

/** Bodies that are not JSON at all, or almost JSON. */
const malformedJsonRequest: fc.Arbitrary<FuzzRequest> = fc
  .record({
    route: postRoute,
    text: fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ maxLength: 200, unit: 'binary' }),
      fc.constantFrom(
        '{',
        '}',
        '{"phone":}',
        "{'phone':'+79990000000'}",
        '{"amount": NaN}',
        '{"amount": Infinity}',
        '{"amount": 0x10}',
        '[1,]',
        '{"a":1,}',
        '\u0000',
        '\uFEFF{}',
        '{"__proto__":{"isAdmin":true}}',
        '{"constructor":{"prototype":{"isAdmin":true}}}',
        '{"customer":{"__proto__":{"phone":"+79990000000"}}}',
        `${'['.repeat(20_000)}${']'.repeat(20_000)}`,
        `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`,
        `${'['.repeat(20_000)}`,
        '"\\ud800"',
        'true',
        '0',
        '""',
      ),
      // Valid bodies cut short.
      fc
        .tuple(fc.constantFrom<RouteName>('resolve', 'quote', 'commit', 'refund'), fc.nat())
        .map(([route, n]) => {
          const text = JSON.stringify(validBody(route, 'phone'));
          return text.slice(0, n % text.length);
        }),
    ),
    idempotencyKey,
    id: validId,
  })
  .map(({ route, text, idempotencyKey, id }) => ({
    route,
    payload: text,
    idempotencyKey,
    id: route === 'refund' ? id : undefined,
  }));

/** Refunds and reads of garbage, unknown and real purchase ids. */
const idRequest: fc.Arbitrary<FuzzRequest> = fc
  .record({ isGet: fc.boolean(), id: anyId, idempotencyKey, withBody: fc.boolean() })
  .map(({ isGet, id, idempotencyKey, withBody }) =>
    isGet
      ? { route: 'get' as const, id }
      : {
          route: 'refund' as const,
          id,
          idempotencyKey,
          // A valid refund of the real purchase would succeed; break it unless the id is garbage.
          payload: JSON.stringify(
            withBody && !id.isValidId ? { amount: 1, managerId: merchant.managerId } : { amount: 0 },
          ),
          brokenFields: withBody && !id.isValidId ? [] : ['amount', 'outletId'],
        },
  );

beforeAll(async () => {
  t = await createTestApp();
  merchant = await createTestMerchant(t.db);
  const customer = await createTestCustomer(t.db, { merchant, points: 10_000 });
  phone = customer.phone;
  customerId = customer.customerId;
  const issued = await t.app.inject({
    method: 'POST',
    url: '/api/v1/client/code',
    headers: { authorization: `Bearer ${customer.token}` },
  });
  expect(issued.statusCode).toBe(200);
  code = issued.json<{ code: string }>().code;
  const committed = await t.app.inject({
    method: 'POST',
    url: `${BASE}/purchases`,
    headers: { 'x-api-key': merchant.apiKey, 'idempotency-key': 'fuzz-setup' },
    payload: {
      customer: { phone },
      receipt: { total: 1_000_000 },
      orderId: 'fuzz-setup',
      outletId: merchant.outletId,
    },
  });
  expect(committed.statusCode).toBe(201);
  purchaseId = committed.json<{ purchase: { id: string } }>().purchase.id;
  baseline = await countRows();
});

afterAll(async () => {
  await t?.close();
});

describe('integration API under random input', () => {
  it('answers mutated valid bodies with a 4xx naming the broken field and writes nothing', async () => {
    await fc.assert(fc.asyncProperty(mutatedRequest, exercise), { numRuns: 1500 });
    // Valid mutations are rare by construction; if most requests succeeded the fuzz tested nothing.
    expect(acceptedWrites).toBeLessThan(50);
  });

  it('answers arbitrary JSON values with a 4xx and writes nothing', async () => {
    await fc.assert(fc.asyncProperty(arbitraryJsonRequest, exercise), { numRuns: 700 });
  });

  it('answers malformed JSON with 400 and writes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(malformedJsonRequest, async (request) => {
        const res = await send(request);
        checkAnswer(request, res);
        expect(res.statusCode, String(request.payload).slice(0, 200)).toBe(400);
        expect(await countRows()).toEqual(baseline);
      }),
      { numRuns: 500 },
    );
  });

  it('answers garbage, unknown and real purchase ids without a 5xx and writes nothing', async () => {
    await fc.assert(fc.asyncProperty(idRequest, exercise), { numRuns: 400 });
  });

  it('answers ids the router refuses (bad percent-encoding, over-long) with the error envelope', async () => {
    const failures: string[] = [];
    for (const id of routerRejectedIds) {
      for (const route of ['get', 'refund'] as const) {
        const request: FuzzRequest = {
          route,
          id,
          idempotencyKey: 'router-check',
          payload:
            route === 'refund' ? JSON.stringify({ amount: 1, managerId: merchant.managerId }) : undefined,
        };
        const res = await send(request);
        try {
          expect(res.statusCode).toBeGreaterThanOrEqual(400);
          checkAnswer(request, res);
        } catch (error) {
          failures.push(`${route} ${id.value.slice(0, 12)}: ${String(error).slice(0, 300)}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(await countRows()).toEqual(baseline);
  });

  it('rejects a NUL character in free-text fields with 400 naming the field, writing nothing', async () => {
    // Postgres cannot store U+0000 in text or jsonb; it must be refused as input, not fail as a 500.
    const body = validBody('commit', 'phone') as { [key: string]: Json };
    const withItem = (patch: { [key: string]: Json }) => ({
      ...body,
      orderId: `nul-${Object.keys(patch).join()}`,
      receipt: { total: 10_000, items: [{ amount: 10_000, ...patch }] },
    });
    const cases: Array<[string, Json]> = [
      ['orderId', { ...body, orderId: 'order\u0000x' }],
      ['receipt.items[0].sku', withItem({ sku: '\u0000' })],
      ['receipt.items[0].name', withItem({ name: 'Latte\u0000' })],
      ['receipt.items[0].category', withItem({ category: 'coffee\u0000' })],
    ];
    for (const [field, payload] of cases) {
      const request: FuzzRequest = {
        route: 'commit',
        payload: JSON.stringify(payload),
        idempotencyKey: `nul-${field}`,
      };
      const res = await send(request);
      expect.soft(res.statusCode, `${field} -> ${res.body}`).toBe(400);
      expect.soft(res.json<{ error: { code: string; message: string } }>().error, field).toMatchObject({
        code: 'validation_error',
        message: expect.stringMatching(new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}: `)),
      });
    }
    expect(await countRows()).toEqual(baseline);
  });

  it('answers a 1 MB body with 413 payload_too_large on every POST route', async () => {
    const big = JSON.stringify({ phone, outletId: merchant.outletId, padding: 'x'.repeat(1_000_000) });
    for (const route of ['resolve', 'quote', 'commit', 'refund'] as const) {
      const request: FuzzRequest = { route, payload: big, idempotencyKey: `big-${route}` };
      const res = await send(request);
      expect(res.statusCode, route).toBe(413);
      expect(res.json(), route).toEqual({
        error: { code: 'payload_too_large', message: expect.any(String) },
      });
    }
    expect(await countRows()).toEqual(baseline);
  });

  it('answers a body that is not application/json with 415 unsupported_media_type', async () => {
    const body = JSON.stringify(validBody('resolve', 'phone'));
    const types = [
      'text/plain',
      'application/xml',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      'text/html; charset=utf-8',
    ];
    for (const route of ['resolve', 'quote', 'commit', 'refund'] as const) {
      for (const contentType of types) {
        const res = await send({ route, payload: body, contentType, idempotencyKey: `ct-${route}` });
        expect.soft(res.statusCode, `${route} ${contentType}`).toBe(415);
        expect.soft(res.json(), `${route} ${contentType}`).toEqual({
          error: { code: 'unsupported_media_type', message: expect.any(String) },
        });
      }
    }
    expect(await countRows()).toEqual(baseline);
  });

  it('rejects a missing, empty or oversized Idempotency-Key on a valid commit, naming the header', async () => {
    for (const key of [undefined, '', 'x'.repeat(256), 'ключ']) {
      const request: FuzzRequest = {
        route: 'commit',
        payload: JSON.stringify({ ...(validBody('commit', 'phone') as object), orderId: 'fuzz-key-check' }),
        idempotencyKey: key,
      };
      const res = await send(request);
      expect(res.statusCode, String(key).slice(0, 20)).toBe(400);
      expect(res.json()).toMatchObject({ error: { code: 'validation_error' } });
      expect(res.json<{ error: { message: string } }>().error.message).toMatch(/^headers\.idempotency-key: /);
    }
    expect(await countRows()).toEqual(baseline);
  });
});
