import { readFileSync } from 'node:fs';

// CPU use during a phase, from /proc (Linux; null elsewhere): the whole machine, this process (the
// load generator and, in the ceiling phase, the pg client), the API child and the Postgres backends
// serving the scratch database (when the server runs on this machine). What is left of the machine's
// busy time is everything else: Postgres's own background processes and any other work on the box.

const CLOCK_TICKS_PER_SECOND = 100;

/** CPU counters at one moment. */
export interface CpuSnapshot {
  wallMs: number;
  selfUs: number;
  childTicks: number | null;
  /** Ticks of each Postgres backend of the scratch database, by pid. */
  backendTicks: Map<number, number>;
  machineBusy: number | null;
  machineTotal: number | null;
}

/** CPU use between two snapshots; per-process figures are % of one core, the machine's % of all. */
export interface CpuUse {
  machinePct: number | null;
  benchPct: number;
  apiPct: number | null;
  /** The scratch database's Postgres backends, in % of one core. */
  postgresPct: number | null;
  /** Busy time of everything else on the machine, in % of one core. */
  otherPct: number | null;
}

function processTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After "pid (comm) ": state is field 0, utime field 11, stime field 12.
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

function machineTicks(): { busy: number; total: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const values = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const total = values.reduce((a, b) => a + b, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

export function cpuSnapshot(childPid: number | undefined, backendPids: number[]): CpuSnapshot {
  const usage = process.cpuUsage();
  const machine = machineTicks();
  const backendTicks = new Map<number, number>();
  for (const pid of backendPids) {
    const ticks = processTicks(pid);
    if (ticks !== null) backendTicks.set(pid, ticks);
  }
  return {
    wallMs: performance.now(),
    selfUs: usage.user + usage.system,
    childTicks: childPid === undefined ? null : processTicks(childPid),
    backendTicks,
    machineBusy: machine?.busy ?? null,
    machineTotal: machine?.total ?? null,
  };
}

export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot, cores: number): CpuUse {
  const wallMs = Math.max(1, b.wallMs - a.wallMs);
  const benchPct = ((b.selfUs - a.selfUs) / 1000 / wallMs) * 100;
  const apiPct =
    a.childTicks === null || b.childTicks === null
      ? null
      : (((b.childTicks - a.childTicks) * 1000) / CLOCK_TICKS_PER_SECOND / wallMs) * 100;
  let machinePct: number | null = null;
  if (
    a.machineBusy !== null &&
    b.machineBusy !== null &&
    a.machineTotal !== null &&
    b.machineTotal !== null
  ) {
    const total = b.machineTotal - a.machineTotal;
    machinePct = total > 0 ? ((b.machineBusy - a.machineBusy) / total) * 100 : null;
  }
  // Backends that appeared during the phase count from zero (a pool grew); none seen: unknown.
  let postgresTicks: number | null = null;
  for (const [pid, ticks] of b.backendTicks)
    postgresTicks = (postgresTicks ?? 0) + ticks - (a.backendTicks.get(pid) ?? 0);
  const postgresPct =
    postgresTicks === null ? null : ((postgresTicks * 1000) / CLOCK_TICKS_PER_SECOND / wallMs) * 100;
  const otherPct =
    machinePct === null
      ? null
      : Math.max(0, machinePct * cores - benchPct - (apiPct ?? 0) - (postgresPct ?? 0));
  return { machinePct, benchPct, apiPct, postgresPct, otherPct };
}
