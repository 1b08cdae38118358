// The agent's V8 startup snapshot, made by the guest's own node inside a TCG
// VM: a snapshot loads only where V8 sees the CPU features and flags it was
// made with, and TCG's CPU is not the host's.
import fs from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { qemuArgs } from "../hypervisor/qemu/cmdline";
import { SNAPSHOT_BUILD_PARAM } from "../hypervisor/qemu/guest-init";

const SNAPSHOT_VM_TIMEOUT_MS = 180_000;

/** The guest shares a directory over 9p, writes the snapshot there and powers off. Null when it fails. */
export async function snapshotInVm(qemu: string, kernel: string, initrd: string, usrDir: string | null, tmp: string): Promise<Buffer | null> {
  const dir = fs.mkdtempSync(path.join(tmp, ".snapvm-"));
  const share = path.join(dir, "share");
  fs.mkdirSync(share);
  const args = qemuArgs({
    machine: "q35",
    accel: "tcg",
    memoryMb: 512,
    vcpus: 1,
    kernel,
    initrd,
    kernelParams: [SNAPSHOT_BUILD_PARAM],
    agentSocket: path.join(dir, "a.sock"),
    qmpSocket: path.join(dir, "q.sock"),
    consoleSocket: path.join(dir, "c.sock"),
    sharedDir: share,
    usrDir: usrDir ?? undefined,
  });
  const p = spawn(qemu, args, { stdio: "ignore", cwd: dir });
  const timer = setTimeout(() => p.kill("SIGKILL"), SNAPSHOT_VM_TIMEOUT_MS);
  try {
    await new Promise<void>((resolve) => {
      p.once("exit", () => resolve());
      p.once("error", () => resolve());
    });
    const blob = path.join(share, "agent.blob");
    return fs.existsSync(blob) && fs.statSync(blob).size > 0 ? fs.readFileSync(blob) : null;
  } finally {
    clearTimeout(timer);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
