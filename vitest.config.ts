// One vitest config for the monorepo. Packages resolve to their src/ through the
// "@keyhold/source" export condition, so a test run needs no build.
import { defineConfig } from "vitest/config";

export default defineConfig({
  resolve: { conditions: ["@keyhold/source"] },
  ssr: { resolve: { conditions: ["@keyhold/source"] } },
  test: {
    // Integration tests spawn nats-server and node processes; two cores, so keep it modest.
    // Integration files spawn nats-server clusters and node processes and measure lease
    // timing; running them one at a time keeps a 2-core machine from skewing those timings.
    fileParallelism: false,
    setupFiles: ["./test/setup/properties.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["packages/*/test/**/*.test.ts"],
          exclude: ["**/*.integration.test.ts", "**/node_modules/**"],
        },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: [
            "packages/*/test/**/*.integration.test.ts",
            "test/**/*.test.ts",
            "examples/*/test/**/*.test.ts",
          ],
        },
      },
    ],
  },
});
