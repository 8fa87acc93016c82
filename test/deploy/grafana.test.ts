import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parser } from '@prometheus-io/lezer-promql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';

// The Grafana dashboard (deploy/grafana/loyalty.json) against the metrics the app really exports:
// every query is parsed with Prometheus's own PromQL grammar and each metric it selects must be on a
// live /metrics, so a renamed metric breaks this test rather than a panel in production.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dashboard = JSON.parse(readFileSync(`${ROOT}deploy/grafana/loyalty.json`, 'utf8')) as Dashboard;
/** Series Prometheus makes itself for every target, not exported by the app. */
const SYNTHETIC = new Set(['up']);

interface Panel {
  type: string;
  title: string;
  panels?: Panel[];
  targets?: { expr: string }[];
}
interface Dashboard {
  panels: Panel[];
  templating: { list: { name: string; current?: { value?: string } }[] };
}

const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
const queries = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

/** Grafana's variables replaced by values, so the text is plain PromQL. */
function substitute(expr: string): string {
  const values = new Map(dashboard.templating.list.map((v) => [v.name, v.current?.value ?? 'x']));
  return expr
    .replace(/\$__(rate_interval|interval|range)\b/g, '5m')
    .replace(/\$\{?(\w+)\}?/g, (_, name: string) => values.get(name) ?? 'x');
}

/** The metric names a PromQL expression selects; throws on a syntax error. */
function selectedMetrics(expr: string): string[] {
  const text = substitute(expr);
  const names: string[] = [];
  parser.parse(text).iterate({
    enter(node) {
      if (node.type.isError) throw new Error(`PromQL syntax error at ${node.from} in: ${text}`);
      if (node.name === 'Identifier' && node.node.parent?.name === 'VectorSelector') {
        names.push(text.slice(node.from, node.to));
      }
    },
  });
  return names;
}

/** Sample names a /metrics text can carry: each family, with the series a histogram or summary adds. */
function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (!name) continue;
    names.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
  }
  return names;
}

let t: TestApp;
let exported: Set<string>;

beforeAll(async () => {
  t = await createTestApp();
  const res = await t.app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  exported = exportedNames(res.body);
});

afterAll(async () => {
  await t?.close();
});

describe('Grafana dashboard', () => {
  it('has panels, each with at least one query', () => {
    expect(panels.length).toBeGreaterThan(10);
    for (const panel of panels) expect(panel.targets?.length ?? 0, panel.title).toBeGreaterThan(0);
  });

  it('selects only metrics that a live /metrics of the app exports', () => {
    expect(exported.has('http_requests_total')).toBe(true);
    for (const { panel, expr } of queries) {
      const names = selectedMetrics(expr);
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) {
        expect(exported.has(name) || SYNTHETIC.has(name), `${panel}: ${name} is not exported`).toBe(true);
      }
    }
  });

  it('shows every metric the runbook names', () => {
    const used = new Set(queries.flatMap((q) => selectedMetrics(q.expr)));
    const runbooks = [`${ROOT}docs/runbook.md`, `${ROOT}../shared/seed/runbook.ru.md`].filter(existsSync);
    const named = new Set<string>();
    for (const file of runbooks) {
      for (const [, word] of readFileSync(file, 'utf8').matchAll(/`([a-z_:][a-z0-9_:]*)`/g)) {
        if (word && exported.has(word)) named.add(word);
      }
    }
    expect([...named]).toEqual(expect.arrayContaining(['http_requests_total', 'loyalty_outbox_pending']));
    for (const name of named) {
      const family = exported.has(`${name}_bucket`) ? `${name}_bucket` : name;
      expect(used.has(family), `${name} is named in the runbook but has no panel`).toBe(true);
    }
  });

  it('breaks requests down by route, commits out, and outside calls by provider and result', () => {
    const has = (pattern: RegExp) => queries.some((q) => pattern.test(q.expr));
    expect(has(/sum by \(route\) \(rate\(http_requests_total/)).toBe(true);
    expect(
      has(/histogram_quantile\(0\.95, sum by \(le, route\) \(rate\(http_request_duration_seconds_bucket/),
    ).toBe(true);
    expect(has(/http_requests_total\{[^}]*route="\/api\/v1\/integration\/purchases", status="201"\}/)).toBe(
      true,
    );
    expect(has(/sum by \(provider, result\) \(rate\(external_requests_total/)).toBe(true);
  });

  it('rejects a query that names a metric the app does not export (the check can fail)', () => {
    expect(selectedMetrics('sum(rate(loyalty_no_such_metric_total{job="$job"}[$__rate_interval]))')).toEqual([
      'loyalty_no_such_metric_total',
    ]);
    expect(exported.has('loyalty_no_such_metric_total')).toBe(false);
    expect(() => selectedMetrics('sum(rate(http_requests_total[5m])')).toThrow(/syntax error/);
  });
});
