import {defineConfig} from 'vitest/config'

// `npm run build && npx vitest run --config bench/backup.config.ts` (root; lab machines).
// BENCH_PG_SCALE=70 (default, ≈ 1.05 GB) sets pgbench's scale.
export default defineConfig({
  test: {include: ['bench/backup.ts', 'bench/status.ts'], testTimeout: 3_600_000, hookTimeout: 3_600_000, fileParallelism: false},
})
