import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * One line of the fault suite's table: what a scenario did and what it found, counted from the
 * database and the receivers. `lost`, `duplicated` and `violations` are promised to be zero unless a
 * scenario says otherwise (at-least-once delivery may duplicate, and says so in `notes`).
 */
export interface FaultRow {
  scenario: string;
  operations: number;
  answered: number;
  lost: number;
  duplicated: number;
  violations: number;
  /** Milliseconds from the end of the fault to the first healthy answer; null when not measured. */
  recoveryMs: number | null;
  notes?: string;
}

/** The file the rows of one run go to; set by the suite's global setup, shared by its workers. */
export const reportFile = (): string =>
  process.env.FAULTS_REPORT_FILE ?? path.join(tmpdir(), `loyalty-faults-${process.ppid}.jsonl`);

/** Records a scenario's row for the table the suite prints at its end. */
export function recordFaultRow(row: FaultRow): void {
  appendFileSync(reportFile(), `${JSON.stringify(row)}\n`);
}

export function readFaultRows(file: string): FaultRow[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as FaultRow);
}

export function clearFaultRows(file: string): void {
  rmSync(file, { force: true });
}

/** The table as Markdown, ready for docs/reliability.md. */
export function formatFaultTable(rows: FaultRow[]): string {
  const header =
    '| scenario | operations | answered | lost | duplicated | invariant violations | recovery | notes |';
  const rule = '|---|---:|---:|---:|---:|---:|---:|---|';
  const lines = rows.map(
    (r) =>
      `| ${r.scenario} | ${r.operations} | ${r.answered} | ${r.lost} | ${r.duplicated} | ${r.violations} | ${
        r.recoveryMs === null ? '-' : `${(r.recoveryMs / 1000).toFixed(1)} s`
      } | ${r.notes ?? ''} |`,
  );
  return [header, rule, ...lines].join('\n');
}
