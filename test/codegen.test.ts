import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, inject, it } from 'vitest';

// src/db/types.ts is generated from the migrations; CI runs `db:codegen --verify` so a migration
// without regenerated types fails the build. Each run migrates a scratch database (slow: ~10 s).

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CODEGEN = path.join(ROOT, 'src/db/codegen.ts');

function runCodegenVerify(cwd: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['tsx', CODEGEN, '--verify'], {
      cwd,
      env: { ...process.env, DATABASE_URL: inject('databaseServerUrl'), NODE_ENV: 'test' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe.concurrent('db:codegen --verify', { timeout: 120_000 }, () => {
  it('passes: the checked-in types match the migrations', async () => {
    const { code, output } = await runCodegenVerify(ROOT);
    expect(code, output).toBe(0);
    expect(output).toMatch(/up-to-date/i);
  });

  it('fails with a non-zero exit code when the types have drifted', async () => {
    // A copy of the project's codegen settings pointing at a types file missing one column. The
    // node_modules link lets npx find kysely-codegen from this directory, as from the project.
    const dir = mkdtempSync(path.join(tmpdir(), 'loyalty-codegen-'));
    try {
      symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
      const types = readFileSync(path.join(ROOT, 'src/db/types.ts'), 'utf8');
      const drifted = types.replace(/^ {2}consumed_at: .*\n/m, '');
      expect(drifted).not.toBe(types);
      writeFileSync(path.join(dir, 'types.ts'), drifted);
      const settings = JSON.parse(readFileSync(path.join(ROOT, '.kysely-codegenrc.json'), 'utf8')) as object;
      writeFileSync(
        path.join(dir, '.kysely-codegenrc.json'),
        JSON.stringify({ ...settings, outFile: path.join(dir, 'types.ts') }),
      );
      const { code, output } = await runCodegenVerify(dir);
      expect(output).toMatch(/not up-to-date/i);
      expect(code, output).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
