import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { createTestCustomer } from '../helpers/factories.js';
import { type DocumentedOperation, documentedOperations, fillPath } from '../helpers/openapi.js';
import { recordFaultRow } from './report.js';

// Scenario 8: hostile input at scale. Every public operation of the OpenAPI document (POS, customer,
// portal sign-in, Telegram webhooks, ops; the ones a stranger on the internet reaches) gets at least
// 10,000 generated requests (FAULTS_SOAK=1: 50,000): wrong types, huge numbers, deep nesting, long
// strings, unicode edge cases, missing and extra fields, bad headers and bad auth. Every request is
// broken in at least one way, so none may write: row counts of every table are compared before and
// after. No answer may be a 5xx, and every 4xx carries the error envelope.

const SOAK = process.env.FAULTS_SOAK === '1';
const PER_ROUTE = Number(process.env.FAULTS_HOSTILE_PER_ROUTE ?? (SOAK ? 50_000 : 10_000));
const IN_FLIGHT = 16;
const ADMIN_TOKEN = `adm_${'x'.repeat(40)}`;

const PUBLIC_PREFIXES = ['/api/v1/integration/', '/api/v1/client/', '/api/v1/portal/auth/', '/telegram/'];

function isPublic(op: DocumentedOperation): boolean {
  return (
    (op.security !== undefined && op.security.length === 0) ||
    PUBLIC_PREFIXES.some((p) => op.path.startsWith(p))
  );
}

const UNICODE = [
  '\u0000',
  '\ud800',
  '\udfff',
  '\u202e',
  '\u200b',
  '\ufeff',
  '𝕏😀',
  'e\u0301',
  '\u{10ffff}',
  'Ω≈ç√',
  '"\\\'<script>',
  '%00%ff',
  '../../etc/passwd',
];
const HUGE_NUMBERS = [
  1e308,
  -1e308,
  2 ** 53 + 1,
  -(2 ** 63),
  1e19,
  0.1,
  -1,
  -0,
  1e-320,
  Number.MAX_SAFE_INTEGER,
];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  enum?: Json[];
  format?: string;
}

/** A plausible value for a schema (the base the mutations break). */
function sample(schema: Schema | undefined, rand: () => number, depth = 0): Json {
  if (!schema || depth > 4) return null;
  const variants = schema.anyOf ?? schema.oneOf;
  if (variants?.length) return sample(variants[Math.floor(rand() * variants.length)], rand, depth + 1);
  if (schema.enum?.length) return schema.enum[0] ?? null;
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  if (type === 'object' || schema.properties) {
    const out: Record<string, Json> = {};
    for (const [key, child] of Object.entries(schema.properties ?? {}))
      out[key] = sample(child, rand, depth + 1);
    return out;
  }
  if (type === 'array') return [sample(schema.items, rand, depth + 1)];
  if (type === 'integer' || type === 'number') return 100;
  if (type === 'boolean') return true;
  if (schema.format === 'uuid') return '00000000-0000-4000-8000-000000000000';
  return 'text';
}

function deepNest(depth: number): Json {
  let value: Json = 1;
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value };
  return value;
}

interface HostileRequest {
  method: DocumentedOperation['method'];
  url: string;
  headers: Record<string, string>;
  payload?: string;
  kind: string;
}

/** Breaks one or more things of a request to `op` (auth always valid unless the auth is what breaks). */
function hostileRequest(
  op: DocumentedOperation,
  auth: Record<string, string>,
  seed: number,
  jsonValues: Json[],
): HostileRequest {
  let state = seed * 2654435761 + 1;
  const rand = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)] as T;
  const body = sample(op.requestBodySchema as Schema, rand);
  const fields = body && typeof body === 'object' && !Array.isArray(body) ? Object.keys(body) : [];
  const garbage = (): Json =>
    pick<Json>([
      pick(HUGE_NUMBERS),
      pick(UNICODE),
      'x'.repeat(pick([256, 10_000, 100_000])),
      deepNest(pick([50, 500])),
      jsonValues[Math.floor(rand() * jsonValues.length)] ?? null,
      [],
      {},
      null,
      true,
    ]);
  // Lone surrogates cannot be put in a URL at all (encodeURIComponent refuses them).
  const urlSafe = UNICODE.filter((u) => !/[\ud800-\udfff]/u.test(u));
  const pathValue = () =>
    pick(['not-a-uuid', '00000000-0000-4000-8000-000000000000', pick(urlSafe), 'x'.repeat(500)]);
  let url = fillPath(op.path, () => pathValue());
  let headers: Record<string, string> = { ...auth, 'content-type': 'application/json' };
  let payload: string | undefined = op.hasBody ? JSON.stringify(body) : undefined;
  // A request that keeps valid auth and a valid body must break something the route reads.
  const kinds = [
    'type',
    'huge',
    'nest',
    'long',
    'unicode',
    'missing',
    'extra',
    'json',
    'header',
    'auth',
    'query',
  ];
  let kind = pick(kinds);
  const hasFields = fields.length > 0;
  // A route without body or path parameters reads nothing but its auth: only bad auth breaks it.
  if (!op.hasBody && op.pathParams.length === 0) kind = 'auth';
  if (!op.hasBody && op.pathParams.length > 0 && !['auth', 'header'].includes(kind)) kind = 'path';
  if (op.hasBody && !hasFields && ['type', 'missing', 'extra'].includes(kind)) kind = 'json';
  const objectBody = () => ({ ...(body as Record<string, Json>) });
  switch (kind) {
    case 'type':
    case 'huge':
    case 'long':
    case 'unicode':
    case 'nest': {
      const changed = objectBody();
      const field = pick(fields);
      changed[field] =
        kind === 'huge'
          ? pick(HUGE_NUMBERS)
          : kind === 'long'
            ? 'x'.repeat(pick([129, 10_000, 1_000_000]))
            : kind === 'unicode'
              ? pick(UNICODE).repeat(pick([1, 3, 200]))
              : kind === 'nest'
                ? '__NEST__'
                : garbage();
      payload = JSON.stringify(changed);
      if (kind === 'nest') {
        // Written as text: deeper than JSON.stringify's own recursion can go.
        const depth = pick([100, 2_000, 20_000]);
        payload = payload.replace('"__NEST__"', `${'{"a":['.repeat(depth)}1${']}'.repeat(depth)}`);
      }
      break;
    }
    case 'missing': {
      const changed = objectBody();
      for (const field of fields) if (rand() < 0.7) delete changed[field];
      if (Object.keys(changed).length === fields.length) changed[pick(fields)] = garbage();
      payload = JSON.stringify(changed);
      break;
    }
    case 'extra': {
      const changed = objectBody();
      changed[pick(['__proto__', 'constructor', 'merchantId', 'balance', pick(UNICODE)])] = garbage();
      changed[pick(fields)] = garbage();
      payload = JSON.stringify(changed);
      break;
    }
    case 'json':
      payload = pick([
        '{',
        '{"a":',
        '[',
        'null',
        '"x"',
        '1e999',
        '\u0000',
        '{"a":1}}',
        JSON.stringify(garbage()),
      ]);
      break;
    case 'header':
      headers = {
        ...headers,
        'content-type': pick([
          'text/plain',
          'application/xml',
          'multipart/form-data',
          'application/json; charset=koi8-r',
        ]),
      };
      headers[pick(['idempotency-key', 'x-request-id', 'accept-language'])] = pick([
        '',
        'x'.repeat(5_000),
        '%ff%fe',
      ]);
      payload ??= '{"x":1}';
      break;
    case 'auth': {
      const { authorization: _a, 'x-api-key': _k, 'x-metrics-token': _m, ...rest } = headers;
      headers = rest;
      const choice = pick(['none', 'bearer', 'key', 'basic', 'long']);
      if (choice === 'bearer')
        headers.authorization = `Bearer ${pick(['', 'lk_live_x', 'eyJhbGciOiJub25lIn0.e30.', pick(UNICODE)])}`;
      if (choice === 'key') headers['x-api-key'] = pick(['lk_live_0000', 'x'.repeat(2_000), '']);
      if (choice === 'basic') headers.authorization = 'Basic YWRtaW46YWRtaW4=';
      if (choice === 'long') headers.authorization = `Bearer ${'a'.repeat(16_000)}`;
      break;
    }
    case 'query':
      url += `?${pick(['limit=-1', 'limit=1e999', 'cursor=%00', 'a[b][c][d]=1', `x=${'y'.repeat(4_000)}`])}`;
      payload = JSON.stringify(garbage());
      break;
    default:
      url = fillPath(op.path, () => pathValue());
  }
  if (kind === 'path')
    url = fillPath(op.path, () => pick(['not-a-uuid', pick(urlSafe), 'x'.repeat(500), '%']));
  return { method: op.method, url, headers, payload: op.method === 'GET' ? undefined : payload, kind };
}

async function countAllRows(t: TestApp): Promise<Record<string, number>> {
  const { rows: tables } = await sql<{ name: string }>`
    select tablename as name from pg_tables where schemaname = 'public' order by tablename
  `.execute(t.db);
  const counts: Record<string, number> = {};
  for (const { name } of tables) {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(name)}`.execute(
      t.db,
    );
    counts[name] = rows[0]?.n ?? -1;
  }
  return counts;
}

describe('fault: hostile input on every public route', () => {
  let t: TestApp;
  let auth: Record<string, Record<string, string>>;

  beforeAll(async () => {
    t = await createTestApp({ env: { ADMIN_API_TOKEN: ADMIN_TOKEN }, database: { poolMax: 6 } });
    const { merchant, token } = await createTestCustomer(t.db);
    auth = {
      integration: { 'x-api-key': merchant.apiKey },
      client: { authorization: `Bearer ${token}` },
      other: {},
    };
  });

  afterAll(async () => {
    await t?.close();
  });

  it('answers no 5xx, every 4xx in the error shape, and writes nothing', async () => {
    const operations = documentedOperations(t.app).filter(isPublic);
    expect(operations.length).toBeGreaterThan(5);
    const jsonValues = fc.sample(fc.jsonValue({ maxDepth: 4 }), { numRuns: 500, seed: 14 }) as Json[];
    const before = await countAllRows(t);
    const started = Date.now();
    let total = 0;
    const serverErrors: string[] = [];
    const badShapes: string[] = [];
    const byStatus = new Map<number, number>();
    // Requests run IN_FLIGHT at a time (one process, in-process injection): the route's own work,
    // not the client, is what the count measures.
    const jobs = operations.flatMap((op) =>
      Array.from({ length: PER_ROUTE }, (_, i) => ({ op, seed: i + 1 })),
    );
    let next = 0;
    const send = async () => {
      for (let job = jobs[next++]; job !== undefined; job = jobs[next++]) {
        const { op, seed } = job;
        const routeAuth = op.path.startsWith('/api/v1/integration/')
          ? auth.integration
          : op.path.startsWith('/api/v1/client/')
            ? auth.client
            : auth.other;
        const request = hostileRequest(op, routeAuth ?? {}, seed, jsonValues);
        const res = await t.app.inject({
          method: request.method,
          url: request.url,
          headers: request.headers,
          payload: request.payload,
        });
        total += 1;
        byStatus.set(res.statusCode, (byStatus.get(res.statusCode) ?? 0) + 1);
        if (res.statusCode >= 500) {
          serverErrors.push(
            `${op.method} ${op.path} [${request.kind}] ${res.statusCode} ${res.body.slice(0, 200)}`,
          );
        } else if (res.statusCode >= 400) {
          let isShaped = false;
          try {
            const parsed = JSON.parse(res.body) as { error?: { code?: unknown; message?: unknown } };
            isShaped = typeof parsed.error?.code === 'string' && typeof parsed.error.message === 'string';
          } catch {
            isShaped = false;
          }
          if (!isShaped)
            badShapes.push(
              `${op.method} ${op.path} [${request.kind}] ${res.statusCode} ${res.body.slice(0, 200)}`,
            );
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, send));
    const after = await countAllRows(t);
    // http_minute_stats: the per-minute request figures of the alert monitor count every request, by design.
    const metricsTables = new Set(['http_minute_stats']);
    const changed = Object.keys(before).filter(
      (name) => !metricsTables.has(name) && before[name] !== after[name],
    );
    recordFaultRow({
      scenario: '8 hostile-input',
      operations: total,
      answered: total - serverErrors.length,
      lost: 0,
      duplicated: 0,
      violations: serverErrors.length + badShapes.length + changed.length,
      recoveryMs: null,
      notes:
        `${operations.length} public operations x ${PER_ROUTE} requests in ${Math.round((Date.now() - started) / 1000)} s; ` +
        `statuses ${[...byStatus.entries()]
          .sort((a, b) => a[0] - b[0])
          .map(([s, n]) => `${s}:${n}`)
          .join(' ')}; ` +
        `tables changed: ${changed.join(', ') || 'none'}`,
    });
    expect(serverErrors.slice(0, 20)).toEqual([]);
    expect(badShapes.slice(0, 20)).toEqual([]);
    expect(Object.fromEntries(changed.map((name) => [name, [before[name], after[name]]]))).toEqual({});
  });
});
