import {defineConfig} from 'vitest/config'

// `npm run build && npx vitest run --config bench/deploy.config.ts` (root; lab machines).
export default defineConfig({
  test: {include: ['bench/deploy.ts'], testTimeout: 1_800_000, hookTimeout: 1_800_000, fileParallelism: false},
})
