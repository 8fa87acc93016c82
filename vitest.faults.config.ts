import { defineConfig } from 'vitest/config';

// `npm run test:faults`: scenarios that kill processes, restart databases and flood routes. They run
// one file at a time (each starts its own servers), after the main suite.
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    globalSetup: ['test/faults/global-setup.ts'],
    testTimeout: 300_000,
    hookTimeout: 240_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
