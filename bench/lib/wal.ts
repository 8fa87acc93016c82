import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import type { Database } from '../../src/db/database.js';

// WAL written during a phase, from pg_stat_wal (PostgreSQL 14+) and the insert position. Both are
// server-wide: on a server shared with other databases their writes are counted too, so per-commit
// figures are exact only on a server of its own (the embedded one, DATABASE_URL unset).
// Backends publish their WAL counters at most once a second and within a second of going idle, so
// a snapshot waits that long after the load stopped; the byte count (insert position) is exact.

const STATS_FLUSH_MS = 1_200;

/** WAL counters at one moment. */
export interface WalSnapshot {
  records: number;
  fpi: number;
  bytes: number;
  lsnBytes: number;
}

/** WAL written between two snapshots, in total and per successful operation of the phase. */
export interface WalUse {
  records: number;
  fullPageImages: number;
  bytes: number;
  recordsPerOp: number | null;
  bytesPerOp: number | null;
  fullPageImagesPerOp: number | null;
}

/** Reads the server's WAL counters, after the backends have had time to publish theirs. */
export async function walSnapshot(db: Database): Promise<WalSnapshot | null> {
  await sleep(STATS_FLUSH_MS);
  try {
    const { rows } = await sql<{ records: string; fpi: string; bytes: string; lsn: string }>`
      select wal_records::text as records, wal_fpi::text as fpi, wal_bytes::text as bytes,
             (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::text as lsn
      from pg_stat_wal
    `.execute(db);
    const row = rows[0];
    if (!row) return null;
    return {
      records: Number(row.records),
      fpi: Number(row.fpi),
      bytes: Number(row.bytes),
      lsnBytes: Number(row.lsn),
    };
  } catch {
    // pg_stat_wal needs PostgreSQL 14+
    return null;
  }
}

/** WAL between two snapshots; per-op figures divide by `ops` (null without ops or counters). */
export function walBetween(a: WalSnapshot | null, b: WalSnapshot | null, ops: number): WalUse | null {
  if (!a || !b) return null;
  const records = b.records - a.records;
  const bytes = b.lsnBytes - a.lsnBytes;
  const fullPageImages = b.fpi - a.fpi;
  const per = (value: number) => (ops > 0 ? Math.round((value / ops) * 10) / 10 : null);
  return {
    records,
    fullPageImages,
    bytes,
    recordsPerOp: per(records),
    bytesPerOp: per(bytes),
    fullPageImagesPerOp: per(fullPageImages),
  };
}
