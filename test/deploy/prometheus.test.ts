import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// The Prometheus alert rules (deploy/prometheus/alerts.yml) checked and unit-tested by promtool
// itself (Debian package `prometheus`; .ci/run installs it).

const DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url));
const hasPromtool = spawnSync('promtool', ['--version']).status === 0;
const SKIP_REASON = 'promtool not found: apt-get install prometheus';
if (!hasPromtool) console.warn(`deploy/prometheus: skipped (${SKIP_REASON})`);

function promtool(...args: string[]) {
  const run = spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

describe.skipIf(!hasPromtool)(`alert rules${hasPromtool ? '' : ` (skipped: ${SKIP_REASON})`}`, () => {
  it('pass promtool check rules', () => {
    const run = promtool('check', 'rules', 'alerts.yml');
    expect(run.output).toMatch(/SUCCESS: 8 rules found/);
    expect(run.status, run.output).toBe(0);
  });

  it('fire and stay quiet as their unit tests expect (promtool test rules)', () => {
    const run = promtool('test', 'rules', 'alerts.test.yml');
    expect(run.status, run.output).toBe(0);
    expect(run.output).toMatch(/SUCCESS/);
  });
});
