import { setTimeout as sleep } from 'node:timers/promises';
import { messageOf, type Outcome, type PhaseRecorder } from './stats.js';

/** One operation of a phase; `seq` is unique within the phase. */
export type Operation = (seq: number) => Promise<Outcome>;

async function timed(op: Operation, seq: number): Promise<{ ms: number; outcome: Outcome }> {
  const start = performance.now();
  let outcome: Outcome;
  try {
    outcome = await op(seq);
  } catch (error) {
    outcome = { status: 0, message: messageOf(error) };
  }
  return { ms: performance.now() - start, outcome };
}

/**
 * Closed loop: `concurrency` clients, each sending its next operation as soon as the previous one is
 * answered, until the deadline. Returns the wall time from start until the last answer.
 */
export async function runClosedLoop(
  options: { concurrency: number; durationMs: number; shouldStop: () => boolean },
  op: Operation,
  recorder: PhaseRecorder,
): Promise<{ elapsedMs: number }> {
  const start = performance.now();
  const deadline = start + options.durationMs;
  let seq = 0;
  const client = async () => {
    while (performance.now() < deadline && !options.shouldStop()) {
      const { ms, outcome } = await timed(op, seq++);
      recorder.record(ms, outcome);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, client));
  return { elapsedMs: performance.now() - start };
}

/**
 * Open loop at a fixed rate: operation i is due at start + i / rate, whatever happened to the ones
 * before it. Latency counts from the due time, so queueing behind a slow answer is measured (no
 * coordinated omission). At most `maxInFlight` operations run at once; beyond that a due operation
 * is skipped and counted. Returns the wall time from start until the last answer.
 */
export async function runOpenLoop(
  options: { rate: number; durationMs: number; maxInFlight: number; shouldStop: () => boolean },
  op: Operation,
  recorder: PhaseRecorder,
): Promise<{ elapsedMs: number; sent: number; skipped: number }> {
  const total = Math.max(1, Math.round((options.rate * options.durationMs) / 1000));
  const intervalMs = 1000 / options.rate;
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  let skipped = 0;
  let next = 0;
  const start = performance.now();
  const fire = (seq: number, dueAt: number) => {
    const task = (async () => {
      let outcome: Outcome;
      try {
        outcome = await op(seq);
      } catch (error) {
        outcome = { status: 0, message: messageOf(error) };
      }
      recorder.record(performance.now() - dueAt, outcome);
    })();
    inFlight.add(task);
    void task.finally(() => inFlight.delete(task));
  };
  while (next < total && !options.shouldStop()) {
    const due = Math.min(total, Math.floor((performance.now() - start) / intervalMs) + 1);
    while (next < due) {
      if (inFlight.size >= options.maxInFlight) skipped += 1;
      else {
        fire(next, start + next * intervalMs);
        sent += 1;
      }
      next += 1;
    }
    await sleep(1);
  }
  await Promise.all(inFlight);
  return { elapsedMs: performance.now() - start, sent, skipped };
}
