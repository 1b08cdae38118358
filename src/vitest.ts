// shimlab/vitest for CommonJS and for shimlab's own tests (vitest transforms
// them, so this import of vitest is its own instance); ESM users get
// dist/vitest.mjs, which binds the same fixtures to the vitest they import.
import { afterAll, afterEach, beforeAll } from "vitest";
import { makeFixtures } from "./testing/fixtures";

export { busyboxRootfs, type ContainerdFixture, type ShimFixture, type UseContainerdOptions, type UseShimOptions } from "./testing/fixtures";
export const { useContainerd, useShim } = makeFixtures({ beforeAll, afterAll, afterEach });
