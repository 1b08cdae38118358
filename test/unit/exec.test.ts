// The agent's helper programs (src/mock-agent/runtime/exec.ts) run through child_process when the
// agent has no reaper: a program that exits without reading its input must come back as its exit
// status, never as an EPIPE nobody listens for (which ended the process: seen once in CI, with
// mount(8) refusing a storage at once).
import { describe, it, expect } from "vitest";
import { run } from "../../src/mock-agent/runtime/exec";

describe("a helper program run without a reaper", () => {
  it("that closes its stdin and exits comes back as its exit status, with its input unread", async () => {
    const r = await run(null, "/bin/sh", ["-c", "exec 0<&-; echo gone >&2; exit 3"], { input: "x".repeat(1 << 20) });
    expect(r.code).toBe(3);
    expect(r.stderr.trim()).toBe("gone");
    // and the process is still here to run the next one
    expect((await run(null, "/bin/sh", ["-c", "cat"], { input: "again" })).stdout).toBe("again");
  });
});
