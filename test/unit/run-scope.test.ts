// Leak checks see only their own run: a process another copy of the suite
// started (another SHIMLAB_RUN_ID) is neither reported nor killed, and one this
// run leaked still is, however it was re-parented.
import { describe, it, expect, afterAll, afterEach } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { expectNoLeaks, expectNoProcessesMentioning, listProcesses, runProcesses, shimlabProcesses, settle, type ProcInfo } from "../../src/harness/leaks";
import { RUN_ID_VAR, runId } from "../../src/harness/run-id";

// Unique to this test file's run, so the orphans below are told apart from anything else on the host.
const marker = fs.mkdtempSync(path.join(os.tmpdir(), "run-scope-"));
const OTHER_RUN = "another-copy-of-the-suite";
const idle = `setTimeout(() => {}, 600000)`;

/**
 * Starts `node -e idle args…` through a shell that exits at once, so that it
 * is nobody's child of ours any more (a shim daemon after `start`).
 */
function orphan(args: string[], env: NodeJS.ProcessEnv, wrap = (cmd: string) => cmd): void {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = [process.execPath, "-e", idle, ...args].map(q).join(" ");
  const r = spawnSync("/bin/sh", ["-c", `${wrap(cmd)} >/dev/null 2>&1 &`], { env, stdio: "ignore" });
  expect(r.status).toBe(0);
}

/** The node process itself, not the shell above the one in a container. */
const mentioning = (tag: string) => (p: ProcInfo) => p.cmdline.startsWith(process.execPath + " ") && p.cmdline.includes(`${marker}/${tag}`);
const alive = (tag: string) => listProcesses().filter(mentioning(tag));

async function started(...tags: string[]): Promise<void> {
  expect(await settle(() => tags.filter((t) => alive(t).length === 0), 5_000), "orphans up").toEqual([]);
}

afterAll(() => fs.rmSync(marker, { recursive: true, force: true }));

afterEach(() => {
  for (const p of listProcesses().filter((x) => x.cmdline.includes(marker))) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
});

describe("run scope", () => {
  const ours = { ...process.env };
  const theirs = { ...process.env, [RUN_ID_VAR]: OTHER_RUN };

  it("counts processes carrying this run's id, and their children whatever their environment; not another run's", async () => {
    orphan([`${marker}/ours`], ours);
    orphan([`${marker}/theirs`], theirs);
    // A container's process: its own environment, below a process of the run.
    orphan([`${marker}/container`], ours, (cmd) => `/bin/sh -c ${JSON.stringify(`env -i ${cmd}; :`)}`);
    await started("ours", "theirs", "container");
    for (const t of ["ours", "theirs", "container"]) expect(alive(t)[0].ppid, `${t} is no child of ours`).not.toBe(process.pid);

    const inRun = runProcesses();
    expect(inRun.some(mentioning("ours"))).toBe(true);
    expect(inRun.some(mentioning("container"))).toBe(true);
    expect(inRun.some(mentioning("theirs"))).toBe(false);
    expect(runProcesses({ id: OTHER_RUN }).filter((p) => p.cmdline.includes(marker)).map((p) => p.cmdline)).toEqual([alive("theirs")[0].cmdline]);
  });

  it("counts an orphan with an empty environment only when it names a directory of the run's own", async () => {
    // A logging binary: the shim gives it no environment, and it outlives the shim.
    orphan([`${marker}/logger`], {}, (cmd) => `env -i ${cmd}`);
    await started("logger");
    expect(runProcesses().some(mentioning("logger"))).toBe(false);
    expect(runProcesses({ dirs: [marker] }).some(mentioning("logger"))).toBe(true);
    expect(runProcesses({ dirs: [marker + "-not"] }).some(mentioning("logger"))).toBe(false);
  });

  it("reports and kills a leak of this run, and leaves another run's process alone", async () => {
    orphan([`${marker}/ours`], ours);
    orphan([`${marker}/theirs`], theirs);
    await started("ours", "theirs");

    await expect(expectNoProcessesMentioning([marker])).rejects.toThrow(`${marker}/ours`);
    expect(await settle(() => alive("ours"), 2_000)).toEqual([]);
    expect(alive("theirs")).toHaveLength(1);
    // Another run's process alone is no leak of this one.
    await expectNoProcessesMentioning([marker]);
    expect(alive("theirs")).toHaveLength(1);
  });

  it("finds this run's shim daemons, not another run's, for expectNoLeaks", async () => {
    // Command lines shaped like a shim daemon's: the script's path is how shimlab's kind is known.
    orphan([`${marker}/dist/bundle/shim-main.js`, `${marker}/ours`], ours);
    orphan([`${marker}/dist/bundle/shim-main.js`, `${marker}/theirs`], theirs);
    await started("ours", "theirs");

    expect(shimlabProcesses([marker]).map((p) => p.pid)).toEqual(alive("ours").map((p) => p.pid));
    await expect(expectNoLeaks([marker])).rejects.toThrow(/processes left: \d+ .*\/ours/);
    expect(await settle(() => alive("ours"), 2_000)).toEqual([]);
    await expectNoLeaks([marker]);
    expect(alive("theirs")).toHaveLength(1);
  });
});

describe("runId", () => {
  it("keeps an inherited id, so a CLI run from a test is part of the test's run", () => {
    expect(runId({ [RUN_ID_VAR]: "inherited" })).toBe("inherited");
  });

  it("makes one and puts it in the environment that children inherit", () => {
    const env: NodeJS.ProcessEnv = {};
    const id = runId(env);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(env[RUN_ID_VAR]).toBe(id);
    expect(runId(env)).toBe(id);
  });

  it("is set in this process before anything could start a process", () => {
    expect(process.env[RUN_ID_VAR]).toBe(runId());
  });
});
