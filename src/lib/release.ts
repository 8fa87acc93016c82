import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Config } from '../config.js';

/** Which release a process runs: what /health reports (and deploy checks read). */
export interface Release {
  version: string | null;
  commit: string | null;
}

// From src/lib or dist/lib, two levels below the root: the checkout, or /app in the image.
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function readPackageVersion(): string | null {
  try {
    const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : null;
  } catch {
    return null;
  }
}

function readGitCommit(): string | null {
  try {
    const out = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 2_000,
    });
    return out.trim() || null;
  } catch {
    // No git (the image has none) or not a checkout.
    return null;
  }
}

let fromSource: Release | null = null;

/**
 * The release: APP_VERSION and GIT_COMMIT as the image was built with them; run from source,
 * package.json's version and the checkout's commit (read once per process).
 */
export function resolveRelease(config: Pick<Config, 'APP_VERSION' | 'GIT_COMMIT'>): Release {
  if (config.APP_VERSION && config.GIT_COMMIT)
    return { version: config.APP_VERSION, commit: config.GIT_COMMIT };
  fromSource ??= { version: readPackageVersion(), commit: readGitCommit() };
  return {
    version: config.APP_VERSION ?? fromSource.version,
    commit: config.GIT_COMMIT ?? fromSource.commit,
  };
}
