import {defineConfig} from 'vitest/config'

// Three tiers (see README "Tests"): unit (pure, fast), integration (Proxmox simulator,
// sshd on loopback, real binaries such as terraform fmt / shellcheck / cloud-init),
// lab (systemd-nspawn machines; needs root, skips with a reason otherwise).
export default defineConfig({
  test: {
    // In CI a missing tool stops the run with one line (scripts/test-tools.js).
    globalSetup: ['test/support/ci-tools.ts'],
    projects: [
      {test: {name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 20_000}},
      {test: {name: 'integration', include: ['test/integration/**/*.test.ts'], testTimeout: 120_000, hookTimeout: 120_000}},
      {
        test: {
          name: 'lab',
          include: ['test/lab/**/*.test.ts'],
          setupFiles: ['test/support/lab/diagnose.ts'],
          testTimeout: 900_000,
          hookTimeout: 900_000,
          fileParallelism: false,
        },
      },
    ],
  },
})
