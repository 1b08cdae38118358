// Runs the checks against one shim binary, one after the other, each with
// its own tasks and shims, and cleans up as containerd would.
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import { ContainerdEmulator } from "../emulator";
import { buildBusyboxRootfs } from "../rootfs";
import { inCgroupUnder, listProcesses, runScope } from "../leaks";
import { removeCgroupDirs } from "../../mock-agent/runtime/runc";
import { CheckContext, sleep } from "./context";
import { ALL_CHECKS } from "./checks";
import { CONTRACT, CheckFailure, CheckSkipped, type Check, type CheckResult, type SuiteReport } from "./types";
import type { Profile } from "./profiles";
import type { Containerd2Options } from "../shim-runner";

export interface SuiteOptions {
  shim: string;
  profile: Profile;
  /** Only checks whose name matches. */
  only?: RegExp;
  /** The busybox rootfs directory (built if missing). */
  rootfs?: string;
  /** Extra environment for the shim (e.g. fault injection). */
  env?: NodeJS.ProcessEnv;
  /** Play containerd 2.x (bootstrap on stdin; gRPC or ttrpc) instead of 1.6. */
  containerd2?: Containerd2Options;
  checkTimeoutMs?: number;
  onResult?: (r: CheckResult, index: number, total: number) => void;
  checks?: Check[];
}

export function selectChecks(o: Pick<SuiteOptions, "only" | "checks">): Check[] {
  return (o.checks ?? ALL_CHECKS).filter((c) => !o.only || o.only.test(c.name));
}

export async function runSuite(o: SuiteOptions): Promise<SuiteReport> {
  const shim = path.resolve(o.shim);
  fs.accessSync(shim, fs.constants.X_OK);
  const rootfs = buildBusyboxRootfs(o.rootfs ?? path.join(os.tmpdir(), `shimlab-busybox-${process.getuid?.() ?? 0}`));
  fs.mkdirSync(path.join(os.tmpdir(), "shimlab-conf"), { recursive: true });
  // Short: fifo and socket paths are made under it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-conf", "c-"));
  const emu = new ContainerdEmulator({ binary: shim, namespace: "conformance", dir, env: o.env, containerd2: o.containerd2 });
  await emu.start();
  const checks = selectChecks(o);
  const results: CheckResult[] = [];
  let leftovers: string[] = [];
  const t0 = performance.now();
  const startedAt = new Date().toISOString();
  try {
    for (const [i, check] of checks.entries()) {
      // Ids unique to the run too: runc's shim keeps state by namespace and id under /run/containerd/runc.
      const ctx = new CheckContext(emu, o.profile, rootfs, `${path.basename(dir).slice(2).toLowerCase()}-k${i}`);
      const c0 = performance.now();
      let status: CheckResult["status"] = "pass";
      let detail = "";
      let timer: NodeJS.Timeout | undefined;
      try {
        const timeout = new Promise<never>((_, rej) => {
          timer = setTimeout(() => rej(new CheckFailure(`no answer within ${o.checkTimeoutMs ?? 30_000} ms`)), o.checkTimeoutMs ?? 30_000);
        });
        detail = (await Promise.race([check.run(ctx), timeout])) ?? "";
      } catch (e) {
        if (e instanceof CheckSkipped) {
          status = "skip";
          detail = e.message;
        } else {
          status = "fail";
          detail = e instanceof CheckFailure ? e.message : `error: ${(e as Error)?.message ?? e}`;
        }
      } finally {
        clearTimeout(timer);
      }
      const notes = await ctx.cleanup();
      await sleep(50);
      ctx.recordEventSequences();
      if (notes.length) {
        // Clean-up problems are the shim's too (a shim that will not exit leaks), so they fail the check.
        if (status === "pass") status = "fail";
        detail = [detail, ...notes].filter(Boolean).join("; ");
      }
      const r: CheckResult = { name: check.name, group: check.group, rule: check.rule, also: check.also ?? [], status, detail, ms: Math.round(performance.now() - c0), observations: ctx.observations };
      results.push(r);
      o.onResult?.(r, i, checks.length);
    }
  } finally {
    leftovers = await reapLeftovers(emu);
    await emu.close();
    removeCgroupDirs(emu.cgroupParent);
    // cgroup v1 hierarchies, or the v2 unified tree
    for (const d of [path.join("/sys/fs/cgroup", emu.cgroupParent), ...fs.readdirSync("/sys/fs/cgroup").map((h) => path.join("/sys/fs/cgroup", h, emu.cgroupParent))]) {
      if (fs.existsSync(d)) leftovers.push(`cgroup ${d}`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const counts = { pass: 0, fail: 0, skip: 0 };
  for (const r of results) counts[r.status]++;
  return { shim, profile: o.profile.name, contract: CONTRACT, startedAt, ms: Math.round(performance.now() - t0), checks: results, counts, leftovers };
}

/**
 * Any process of this run still naming this emulator (a shim daemon, a proxy,
 * an agent, a logging binary) or living in its cgroup parent after every
 * check's clean-up is a leak: killed, and reported.
 */
async function reapLeftovers(emu: ContainerdEmulator): Promise<string[]> {
  const left = () => {
    const all = listProcesses();
    // The emulator's directory is this run's own: whatever names it is ours, whatever its environment.
    const inRun = runScope({ cgroupParents: [emu.cgroupParent], dirs: [emu.dir] }, all);
    return all.filter((p) => p.pid !== process.pid && inRun(p) && (p.cmdline.includes(emu.address) || p.cmdline.includes(emu.dir) || inCgroupUnder(p.pid, emu.cgroupParent)));
  };
  await sleep(100);
  const found = left();
  for (const p of found) {
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
  if (found.length) await sleep(300);
  return found.map((p) => `${p.pid} ${p.cmdline}`);
}
