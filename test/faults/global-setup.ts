import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import baseSetup from '../global-setup.js';
import { clearFaultRows, formatFaultTable, readFaultRows } from './report.js';

// The fault suite's setup: the main suite's (a migrated template database), plus one report file
// every scenario appends its row to, printed as a table when the run ends.

export default async function setup(project: TestProject) {
  const file = path.join(tmpdir(), `loyalty-faults-${process.pid}-${Date.now()}.jsonl`);
  process.env.FAULTS_REPORT_FILE = file;
  clearFaultRows(file);
  const teardownBase = await baseSetup(project);
  return async () => {
    const rows = readFaultRows(file);
    if (rows.length > 0) {
      console.log(`\nFault suite (npm run test:faults):\n\n${formatFaultTable(rows)}\n`);
    }
    clearFaultRows(file);
    await teardownBase?.();
  };
}
