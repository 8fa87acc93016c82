import type { FastifyInstance } from 'fastify';

/** The value of an unlabelled sample in Prometheus text; undefined when /metrics does not carry it. */
export function metricValue(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/** Scrapes the app's /metrics (in process) and returns the values of the named unlabelled samples. */
export async function scrapeMetrics(
  app: FastifyInstance,
  names: string[],
  metricsToken?: string,
): Promise<Record<string, number | undefined>> {
  const res = await app.inject({
    method: 'GET',
    url: '/metrics',
    headers: metricsToken ? { 'x-metrics-token': metricsToken } : {},
  });
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}: ${res.body}`);
  return Object.fromEntries(names.map((name) => [name, metricValue(res.body, name)]));
}
