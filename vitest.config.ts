import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Two cores: the multi-process and crash tests are CPU-bound, so keep the worker count small.
    maxWorkers: 2,
  },
})
