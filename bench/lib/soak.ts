import { readFileSync } from 'node:fs';

// Memory of the processes under a constant load: the resident set size (VmRSS, /proc) of the API
// and the worker sampled every second during the soak phase (BENCH_SOAK_SECONDS), printed as the
// first sample, the last and the highest. A figure that keeps climbing from start to end is a leak;
// one that levels off is a warm heap.

/** RSS of a process in MiB, or null (gone, or not Linux). */
function rssMiB(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** RSS of one process over the phase, MiB. */
export interface RssFigures {
  name: string;
  samples: number;
  startMiB: number | null;
  endMiB: number | null;
  maxMiB: number | null;
}

/** Samples the RSS of named processes every `intervalMs` until stopped. */
export class RssSampler {
  private readonly series = new Map<string, number[]>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly processes: Array<{ name: string; pid: number | undefined }>,
    private readonly intervalMs = 1_000,
  ) {}

  start(): void {
    for (const p of this.processes) this.series.set(p.name, []);
    const sample = () => {
      for (const p of this.processes) {
        const value = p.pid === undefined ? null : rssMiB(p.pid);
        if (value !== null) this.series.get(p.name)?.push(value);
      }
    };
    sample();
    this.timer = setInterval(sample, this.intervalMs);
  }

  stop(): RssFigures[] {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    return this.processes.map(({ name }) => {
      const values = this.series.get(name) ?? [];
      const round = (v: number | undefined) => (v === undefined ? null : Math.round(v * 10) / 10);
      return {
        name,
        samples: values.length,
        startMiB: round(values[0]),
        endMiB: round(values[values.length - 1]),
        maxMiB: values.length > 0 ? round(Math.max(...values)) : null,
      };
    });
  }
}
