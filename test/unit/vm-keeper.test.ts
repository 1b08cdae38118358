// native/vm-keeper.c, what keeps a factory's warm VM alive and no longer than
// its holder, run here over `sleep` instead of QEMU; and the QEMU warmer's
// rules (whom a pool's VM fits), without booting one.
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import type { Duplex } from "node:stream";
import { keeperPath, qemuWarmer, TCG_REFILL_DELAY_MS } from "../../src/hypervisor/qemu/warm";
import { vmShape } from "../../src/hypervisor/qemu/shape";
import type { QemuHypervisor } from "../../src/hypervisor/qemu";
import { nullLogger } from "../../src/util/logger";
import { processStartTime } from "../../src/util/proc";
import { alive } from "../helpers/procs";

const KEEPER = keeperPath();

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A keeper over `sleep 60`, and the pid of the sleep it forked. */
async function keep(flags: string[] = []): Promise<{ k: ChildProcess; line: Duplex; kept: number }> {
  const k = spawn(KEEPER, [...flags, "sleep", "60"], { stdio: ["ignore", "ignore", "pipe", "pipe"], detached: true });
  let kept = 0;
  await until("the keeper's child", () => {
    try {
      kept = Number(fs.readFileSync(`/proc/${k.pid}/task/${k.pid}/children`, "utf8").trim().split(" ")[0]) || 0;
    } catch {
      /* not yet */
    }
    return kept > 0;
  });
  return { k, line: k.stdio[3] as Duplex, kept };
}

function answer(line: Duplex): Promise<string> {
  return new Promise((resolve) => line.once("data", (d: Buffer) => resolve(d.toString())));
}

const exited = (k: ChildProcess) => new Promise<number | null>((r) => (k.exitCode !== null ? r(k.exitCode) : k.once("exit", (c) => r(c))));

describe.skipIf(!fs.existsSync(KEEPER))("vm-keeper", () => {
  it("ends what it keeps when its lifeline closes before an adoption", async () => {
    const { k, line, kept } = await keep();
    expect(alive(kept)).toBe(true);
    line.destroy();
    await exited(k);
    await until("the kept process to die", () => !alive(kept));
  });

  it("refuses a holder that is not the process named; an adopted one keeps it alive past the lifeline, and its end ends it", async () => {
    const { k, line, kept } = await keep();
    // a holder of our own, to end at will
    const holder = spawn("sleep", ["60"], { stdio: "ignore" });
    await until("the holder", () => processStartTime(holder.pid!) !== null);
    line.write(`ADOPT ${holder.pid} 1\n`);
    expect(await answer(line)).toBe("REFUSED no such process\n");
    line.write(`ADOPT ${holder.pid} ${processStartTime(holder.pid!)}\n`);
    expect(await answer(line)).toBe("ADOPTED\n");
    // the factory's end no longer matters
    line.destroy();
    await new Promise((r) => setTimeout(r, 200));
    expect(alive(kept)).toBe(true);
    holder.kill("SIGKILL");
    await exited(k);
    await until("the kept process to die with its holder", () => !alive(kept));
  });

  it("with --claim, kills an adopted VM its taker never claims, and keeps a claimed one", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-keeper-"));
    const holder = spawn("sleep", ["60"], { stdio: "ignore" });
    try {
      await until("the holder", () => processStartTime(holder.pid!) !== null);
      const adopt = async (file: string) => {
        const kept = await keep(["--claim", file, "300"]);
        kept.line.write(`ADOPT ${holder.pid} ${processStartTime(holder.pid!)}\n`);
        expect(await answer(kept.line)).toBe("ADOPTED\n");
        kept.line.destroy();
        return kept;
      };
      // taken over by no one: the factory died between the adoption and its answer
      const lost = await adopt(path.join(dir, "never"));
      let err = "";
      lost.k.stderr!.on("data", (d: Buffer) => (err += d.toString()));
      expect(await exited(lost.k)).toBe(0);
      await until("the unclaimed VM to die", () => !alive(lost.kept));
      expect(err).toMatch(/adopted but not claimed in 300 ms/);
      // claimed in time: it lives on, and ends with its holder
      const file = path.join(dir, "claimed");
      const taken = await adopt(file);
      fs.writeFileSync(file, "");
      await new Promise((r) => setTimeout(r, 600));
      expect(alive(taken.kept)).toBe(true);
      holder.kill("SIGKILL");
      await exited(taken.k);
      await until("the claimed VM to die with its holder", () => !alive(taken.kept));
    } finally {
      holder.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("exits with what it keeps, when that ends by itself", async () => {
    const k = spawn(KEEPER, ["sh", "-c", "exit 5"], { stdio: ["ignore", "ignore", "pipe", "pipe"] });
    expect(await exited(k)).toBe(5);
    const bad = spawn(KEEPER, ["/nonexistent/qemu"], { stdio: ["ignore", "ignore", "pipe", "pipe"] });
    let err = "";
    bad.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    expect(await exited(bad)).toBe(127);
    expect(err).toMatch(/exec \/nonexistent\/qemu/);
  });
});

describe("the QEMU warmer's rules", () => {
  const spec = {
    machine: "q35" as const,
    accel: "tcg" as const,
    memoryMb: 512,
    vcpus: 1,
    kernel: path.join(__dirname, "vm-keeper.test.ts"),
    initrd: path.join(__dirname, "vm-keeper.test.ts"),
    kernelParams: ["shimlab.runtime=runc"],
    tscKhz: 2_000_000,
  };
  const hv = { vmSpec: async () => ({ c: { path: "qemu-system-x86_64", guestRuntime: "runc" }, spec }) } as unknown as QemuHypervisor;

  it("a VM's shape leaves out its vsock CID and the host's TSC rate, and keeps everything a guest would notice", () => {
    const shape = vmShape("q", spec);
    expect(vmShape("q", { ...spec, tscKhz: 2_100_000 })).toBe(shape);
    expect(vmShape("q", { ...spec, vsockCid: 9 })).toBe(vmShape("q", { ...spec, vsockCid: 10 }));
    expect(vmShape("q", { ...spec, vsockCid: 9 })).not.toBe(shape);
    for (const other of [{ memoryMb: 640 }, { vcpus: 2 }, { kernelParams: [] }, { initrd: "/x" }, { machine: "microvm" as const }]) expect(vmShape("q", { ...spec, ...other })).not.toBe(shape);
    expect(vmShape("other-qemu", spec)).not.toBe(shape);
  });

  it.skipIf(!fs.existsSync(KEEPER))("hands its VMs to a taker of the same shape only", async () => {
    const w = qemuWarmer(hv, { logger: nullLogger });
    await w.init!();
    const me = { op: "take" as const, agentRuntime: "runc", cgroupParent: "", pid: 1, startTime: "1" };
    expect(w.refuse({ ...me, kind: "qemu", shape: vmShape("qemu-system-x86_64", spec) })).toBeNull();
    expect(w.refuse({ ...me, kind: "qemu", shape: vmShape("qemu-system-x86_64", { ...spec, memoryMb: 640 }) })).toMatch(/^this factory's VMs are .*"memoryMb":512.*, not .*"memoryMb":640/);
    expect(w.refuse({ ...me, kind: "qemu" })).toMatch(/not unspecified$/);
    expect(w.refuse({ ...me, kind: "none" })).toBe("this factory keeps QEMU VMs, not host agents");
    expect(w.describe()).toMatchObject({ kind: "qemu", agentRuntime: "runc" });
    // its files are older than a VM booted now; one booted before they changed is stale
    expect(w.stale(Date.now())).toBeNull();
    expect(w.stale(0)).toMatch(/was rebuilt since it booted/);
    // under TCG the pool refills once the VM handed out has had its pod's start to itself
    expect(w.refillDelayMs!()).toBe(TCG_REFILL_DELAY_MS);
    const kvm = qemuWarmer({ vmSpec: async () => ({ c: { path: "qemu-system-x86_64", guestRuntime: "runc" }, spec: { ...spec, accel: "kvm" } }) } as unknown as QemuHypervisor, { logger: nullLogger });
    await kvm.init!();
    expect(kvm.refillDelayMs!()).toBeUndefined();
  });
});
