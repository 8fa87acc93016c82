import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// `npm test` must be able to fail in both of its modes. Without DATABASE_URL the global setup starts
// an embedded PostgreSQL, whose package registers an exit hook that ends the process with code 0;
// it must never be loaded into the test runner.

function runFailingSuite(env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['test', '--', '--config', 'test/fixtures/failing-run/vitest.config.ts'], {
      cwd: new URL('..', import.meta.url).pathname,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, output }));
  });
}

describe('npm test', () => {
  it('exits non-zero when a test fails on the embedded PostgreSQL (no DATABASE_URL)', async () => {
    // Without this run's own variables (DATABASE_URL, vitest's worker ids).
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([key]) => key !== 'DATABASE_URL' && !key.startsWith('VITEST')),
    );
    const run = await runFailingSuite({ ...env, NO_COLOR: '1' });
    expect(run.output).toMatch(/1 failed/);
    expect(run.code, run.output).not.toBe(0);
  }, 240_000);
});
