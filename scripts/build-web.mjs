#!/usr/bin/env node
// Builds the web front end (web/ -> web/dist) with Vite's JS API.
//
//   node scripts/build-web.mjs             build now
//   node scripts/build-web.mjs --if-stale  build only when web/dist is missing or older than its sources
//
// Concurrent runs (parallel test files, prestart in two shells) take a lock in the temp directory, so
// one builds and the others wait and then find the build fresh.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WEB = path.join(ROOT, 'web');
const INDEX = path.join(WEB, 'dist', 'index.html');
/** Everything the bundle is made of: a change to any of these makes web/dist stale. */
const SOURCES = [
  path.join(WEB, 'src'),
  path.join(WEB, 'index.html'),
  path.join(WEB, 'vite.config.ts'),
  path.join(ROOT, 'src', 'modules', 'auth', 'permissions.ts'),
];
const LOCK = path.join(
  tmpdir(),
  `loyalty-web-build-${createHash('sha1').update(ROOT).digest('hex').slice(0, 12)}`,
);
const LOCK_STALE_MS = 5 * 60_000;

function newestMtime(file) {
  let stat;
  try {
    stat = statSync(file);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const entry of readdirSync(file)) newest = Math.max(newest, newestMtime(path.join(file, entry)));
  return newest;
}

/** Whether web/dist is missing or older than any of its sources. */
export function isWebStale() {
  let built;
  try {
    built = statSync(INDEX).mtimeMs;
  } catch {
    return true;
  }
  return SOURCES.some((source) => newestMtime(source) > built);
}

async function withLock(fn) {
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      // A lock left behind by a killed build must not block forever.
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > LOCK_STALE_MS) rmdirSync(LOCK);
      } catch {}
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  try {
    return await fn();
  } finally {
    rmdirSync(LOCK);
  }
}

/** Builds web/dist (only when stale if `ifStale`). */
export async function buildWeb({ ifStale = false, quiet = false } = {}) {
  return withLock(async () => {
    if (ifStale && !isWebStale()) {
      if (!quiet) console.log('web: web/dist is up to date');
      return false;
    }
    let build;
    try {
      ({ build } = await import('vite'));
    } catch (error) {
      if (error?.code !== 'ERR_MODULE_NOT_FOUND') throw error;
      // An install without dev dependencies: keep whatever web/dist holds (the server explains a
      // missing build on /portal) rather than refusing to start.
      console.warn('web: vite is not installed (npm ci --omit=dev?); web/dist left as it is');
      return false;
    }
    const started = Date.now();
    await build({
      configFile: path.join(WEB, 'vite.config.ts'),
      logLevel: quiet ? 'warn' : 'info',
    });
    if (!quiet) console.log(`web: built web/dist in ${Date.now() - started} ms`);
    return true;
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  buildWeb({ ifStale: args.includes('--if-stale'), quiet: args.includes('--quiet') }).catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
