import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

// Unit tests run on TypeScript sources; integration tests drive the built
// binaries in dist/ (npm test builds first) against real containerd and runc.
export default defineConfig({
  // The worked example in examples/ imports shimlab as its users do.
  resolve: {
    alias: [
      { find: /^shimlab\/vitest$/, replacement: fileURLToPath(new URL("./src/vitest.ts", import.meta.url)) },
      { find: /^shimlab$/, replacement: fileURLToPath(new URL("./src/index.ts", import.meta.url)) },
      // shimlab's tests run on sources, the ttrpc package's included.
      { find: /^@shimlab\/ttrpc$/, replacement: fileURLToPath(new URL("./packages/ttrpc/src/index.ts", import.meta.url)) },
    ],
  },
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts", "packages/*/test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Leak checks see only this run's processes: a second copy of the suite on the machine has its own id.
    globalSetup: ["test/helpers/run-id.setup.ts"],
    // Integration files each start their own containerd; two cores do not
    // gain from running them side by side, and timings get noisy.
    fileParallelism: false,
    reporters: ["default"],
  },
});
