import { spawnSync } from 'node:child_process';

/**
 * Why this machine's pg_dump cannot back up the server at `serverUrl` (not installed, unreachable, or
 * older than the server, e.g. pg_dump 15 against the embedded PostgreSQL 18); null when it can.
 */
export function pgDumpSkipReason(serverUrl: string): string | null {
  const dump = spawnSync('pg_dump', ['--version'], { encoding: 'utf8' });
  if (dump.status !== 0) return 'pg_dump is not installed';
  const server = spawnSync('psql', ['-X', '-tAc', 'show server_version_num', serverUrl], {
    encoding: 'utf8',
  });
  if (server.status !== 0) return `psql cannot reach the test server: ${server.stderr.trim()}`;
  const dumpMajor = Number(/(\d+)\.\d+/.exec(dump.stdout)?.[1] ?? 0);
  const serverMajor = Math.floor(Number(server.stdout.trim()) / 10000);
  return dumpMajor >= serverMajor ? null : `pg_dump ${dumpMajor} cannot dump PostgreSQL ${serverMajor}`;
}
