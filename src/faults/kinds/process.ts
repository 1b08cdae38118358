// process: kill or freeze the shim, the agent, the VM, containerd or a
// container's init. containerd "killed" means its events socket and its
// connections go away until healed.
import os from "node:os";
import { z } from "zod";
import { signal, target } from "../../scenarios/format-values";
import { faultBase, type TimedKind } from "./kind";

const schema = z.strictObject({
  ...faultBase,
  scope: z.literal("process"),
  target,
  action: z.enum(["kill", "pause"]),
  signal: signal.optional().meta({ description: "kill: the signal; default SIGKILL" }),
});

/** A signal's name, from a number or a name. */
export function signalName(s: string | number): NodeJS.Signals {
  if (typeof s === "string") return s as NodeJS.Signals;
  const e = Object.entries(os.constants.signals).find(([, v]) => v === s);
  return (e?.[0] ?? "SIGKILL") as NodeJS.Signals;
}

export const processFault: TimedKind<typeof schema> = {
  schema,
  timed: true,
  doc: 'kill or freeze a process; containerd "killed" means its events socket and connections go away until healed',
  carrier: "the harness (signals, or containerd's side going down)",
  check(f, c) {
    if (f.target.startsWith("init:") && !c.containers.includes(f.target.slice(5))) c.bad(["target"], `no container ${JSON.stringify(f.target.slice(5))}`);
  },
  async activate(f, w) {
    const sig = f.action === "pause" ? "SIGSTOP" : signalName(f.signal ?? "SIGKILL");
    const pids = await w.signal(f.target, sig);
    return `${sig} ${f.target}${pids.length ? ` (pid ${pids.join(",")})` : ""}`;
  },
  async heal(f, w) {
    if (f.action === "pause") await w.signal(f.target, "SIGCONT");
    else if (f.target === "containerd") await w.containerdUp();
  },
};
