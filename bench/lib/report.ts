import type { CpuUse } from './cpu.js';
import type { Percentiles, PhaseRecorder } from './stats.js';
import type { WaitShare } from './waits.js';
import type { WalUse } from './wal.js';

/** The figures of one measured phase. */
export interface PhaseResult {
  key:
    | 'commit'
    | 'resolve'
    | 'resolveWrk'
    | 'latency'
    | 'ceiling'
    | 'minimal'
    | 'commitWrk'
    | 'outbox'
    | 'soak';
  name: string;
  mode: string;
  elapsedSeconds: number;
  completed: number;
  ok: number;
  /** Successful (2xx) operations per second of wall time. */
  opsPerSec: number;
  latencyMs: Percentiles;
  non2xx: number;
  errors: number;
  /** Count per non-2xx outcome, e.g. `409 idempotency_key_in_use`. */
  failures: Record<string, number>;
  errorSamples: string[];
  cpu: CpuUse;
  /** What the scratch database's busy backends waited on, share of samples. */
  postgresWaits: WaitShare[];
  /** WAL the server wrote during the phase (null: not measured, or PostgreSQL before 14). */
  wal?: WalUse | null;
}

/** One of the targets the benchmark checks. */
export interface TargetResult {
  name: string;
  value: string;
  /** null: informational, no threshold. */
  pass: boolean | null;
}

export function phaseResult(
  base: {
    key: PhaseResult['key'];
    name: string;
    mode: string;
    elapsedMs: number;
    cpu: CpuUse;
    postgresWaits: WaitShare[];
    wal?: WalUse | null;
  },
  recorder: PhaseRecorder,
): PhaseResult {
  const elapsedSeconds = base.elapsedMs / 1000;
  return {
    key: base.key,
    name: base.name,
    mode: base.mode,
    elapsedSeconds: round(elapsedSeconds, 3),
    completed: recorder.completed,
    ok: recorder.ok,
    opsPerSec: round(recorder.ok / Math.max(elapsedSeconds, 0.001), 1),
    latencyMs: roundAll(recorder.percentiles()),
    non2xx: recorder.non2xx,
    errors: recorder.errors,
    failures: Object.fromEntries(recorder.failures),
    errorSamples: recorder.errorSamples,
    cpu: base.cpu,
    postgresWaits: base.postgresWaits,
    ...(base.wal === undefined ? {} : { wal: base.wal }),
  };
}

export function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function roundAll(p: Percentiles): Percentiles {
  return {
    p50: round(p.p50, 2),
    p95: round(p.p95, 2),
    p99: round(p.p99, 2),
    max: round(p.max, 2),
    mean: round(p.mean, 2),
  };
}

function table(header: string[], rows: string[][], leftColumns = 1): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < leftColumns ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const fixed = (value: number, digits: number) => value.toFixed(digits);
const pct = (value: number | null) => (value === null ? 'n/a' : `${fixed(value, 0)}%`);

/** The phase table: throughput, latency percentiles and failures. */
export function phaseTable(phases: PhaseResult[]): string {
  return table(
    ['phase', 'mode', 'ok ops', 'ops/s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'non-2xx', 'errors'],
    phases.map((p) => [
      p.name,
      p.mode,
      String(p.ok),
      fixed(p.opsPerSec, 1),
      fixed(p.latencyMs.p50, 2),
      fixed(p.latencyMs.p95, 2),
      fixed(p.latencyMs.p99, 2),
      fixed(p.latencyMs.max, 1),
      String(p.non2xx),
      String(p.errors),
    ]),
    2,
  );
}

/** Where the CPU went in each phase. */
export function cpuTable(phases: PhaseResult[]): string {
  return table(
    ['phase', 'mode', 'machine', 'bench', 'api', 'postgres', 'other'],
    phases.map((p) => [
      p.name,
      p.mode,
      pct(p.cpu.machinePct),
      pct(p.cpu.benchPct),
      pct(p.cpu.apiPct),
      pct(p.cpu.postgresPct),
      pct(p.cpu.otherPct),
    ]),
    2,
  );
}

/** The top waits of the busy Postgres backends in each phase. */
export function waitTable(phases: PhaseResult[], top = 4): string {
  return table(
    ['phase', 'mode', 'top waits of busy backends (share of samples)'],
    phases.map((p) => [
      p.name,
      p.mode,
      p.postgresWaits
        .slice(0, top)
        .map((w) => `${w.wait} ${w.pct.toFixed(0)}%`)
        .join(', ') || 'n/a',
    ]),
    3,
  );
}

/** The targets with PASS or MISS next to each (`info` for a figure without a threshold). */
export function targetTable(targets: TargetResult[]): string {
  return table(
    ['target', 'measured', ''],
    targets.map((t) => [t.name, t.value, t.pass === null ? 'info' : t.pass ? 'PASS' : 'MISS']),
    1,
  );
}

/** PostgreSQL CPU (the scratch database's backends) per successful operation, in ms; null unknown. */
export function postgresCpuMsPerOp(p: PhaseResult): number | null {
  if (p.cpu.postgresPct === null || p.ok === 0) return null;
  return (p.cpu.postgresPct / 100) * ((p.elapsedSeconds * 1000) / p.ok);
}

/** WAL records, bytes and full-page images per successful operation, and PostgreSQL CPU per operation. */
export function walTable(phases: PhaseResult[]): string {
  const num = (value: number | null | undefined, digits: number) =>
    value === null || value === undefined ? 'n/a' : fixed(value, digits);
  return table(
    ['phase', 'mode', 'WAL records/op', 'WAL bytes/op', 'full pages/op', 'postgres CPU ms/op'],
    phases
      .filter((p) => p.wal !== undefined)
      .map((p) => [
        p.name,
        p.mode,
        num(p.wal?.recordsPerOp, 1),
        num(p.wal?.bytesPerOp, 0),
        num(p.wal?.fullPageImagesPerOp, 2),
        num(postgresCpuMsPerOp(p), 3),
      ]),
    2,
  );
}
