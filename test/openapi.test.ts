import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from './helpers/app.js';
import { documentedOperations } from './helpers/openapi.js';

const run = promisify(execFile);

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => t?.close());

describe('the OpenAPI document', () => {
  it('names its servers and the security of every operation; sign-in routes are public', () => {
    const doc = t.app.swagger() as { servers?: Array<{ url: string }> };
    expect(doc.servers?.length).toBeGreaterThan(0);
    const operations = documentedOperations(t.app);
    for (const op of operations) expect(op.security, `${op.method} ${op.path}`).toBeDefined();
    const publicOps = operations
      .filter((op) => op.security?.length === 0)
      .map((op) => `${op.method} ${op.path}`);
    expect(publicOps.sort()).toEqual(
      [
        'POST /api/v1/admin/auth/login',
        'POST /api/v1/admin/auth/logout',
        'POST /api/v1/admin/auth/refresh',
        'POST /api/v1/client/auth/telegram',
        'POST /api/v1/portal/auth/login',
        'POST /api/v1/portal/auth/logout',
        'POST /api/v1/portal/auth/refresh',
      ].sort(),
    );
  });

  it("passes Redocly's recommended ruleset without errors", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'openapi-'));
    try {
      const file = path.join(dir, 'openapi.json');
      await writeFile(file, JSON.stringify(t.app.swagger()));
      const redocly = path.resolve('node_modules/.bin/redocly');
      const result = await run(redocly, ['lint', file, '--extends=recommended', '--format=json'], {
        maxBuffer: 64 * 1024 * 1024,
      }).catch((error: { stdout?: string; stderr?: string }) => error);
      const report = JSON.parse(result.stdout ?? '{}') as {
        totals?: { errors: number };
        problems?: Array<{ ruleId: string; severity: string; message: string }>;
      };
      const errors = (report.problems ?? []).filter((p) => p.severity === 'error');
      expect(errors.map((p) => `${p.ruleId}: ${p.message}`)).toEqual([]);
      expect(report.totals?.errors).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
