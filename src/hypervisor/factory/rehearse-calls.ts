// The agent API calls of a pod's path, sent to a warm guest's agent before it is pooled, each one
// refused before it changes anything: a CreateSandbox with a storage driver no agent has, an
// UpdateInterface and an UpdateRoutes naming no device, a CreateContainer and the calls after it
// with no sandbox yet. The agent decodes each request as it will decode the pod's, and its codec's
// readers, like any of its functions, are compiled on their first call: under TCG a pod's first
// CreateContainer reached its handler ~25 ms later than its second. Nothing the calls carry is
// kept; a call that is not refused means an agent whose state is no longer known, and the VM is
// not pooled. (The guest's own rehearsal, mock-agent/rehearse.ts, runs the runtime and the kernel's
// paths; these are the agent's.)
import type { AgentApi } from "../../agent/client";
import { specToGrpc } from "../../agent/spec";
import { ErrdefsError } from "../../errdefs";
import { REHEARSAL_ID, rehearsalSpec } from "../../oci/rehearsal-spec";
import { GUEST_SHARED_DIR, guestSharedPath, SHARE_9P_OPTIONS, SHARE_TAG } from "../../util/guest-share";

/** No agent mounts storages with this driver: CreateSandbox refuses it before it mounts or names anything. */
export const NO_SUCH_DRIVER = `${REHEARSAL_ID}-no-such-driver`;

/** What each call was refused with (the kind); throws if a call was not refused, or not by the agent. */
export async function rehearseCalls(agent: AgentApi): Promise<Record<string, string>> {
  // where the shim would share them (vm.ts, guest-mounts.ts)
  const files = { hosts: guestSharedPath(`${REHEARSAL_ID}.m1`), hostname: guestSharedPath(`${REHEARSAL_ID}.m2`), resolvConf: guestSharedPath(`${REHEARSAL_ID}.m3`) };
  const rootPath = guestSharedPath(REHEARSAL_ID);
  const spec = (kind: "sandbox" | "container") => specToGrpc(rehearsalSpec(kind, rootPath, files), { guest: true, rootPath });
  const nic = { name: "", hwAddr: "02:00:00:00:00:01", mtu: 1500, IPAddresses: [{ family: 0, address: "192.0.2.2", mask: "24" }] };
  const calls: [string, () => Promise<unknown>][] = [
    [
      "CreateSandbox",
      () =>
        agent.CreateSandbox({
          hostname: REHEARSAL_ID,
          sandboxId: REHEARSAL_ID,
          storages: [{ driver: NO_SUCH_DRIVER, source: SHARE_TAG, fstype: "9p", options: [...SHARE_9P_OPTIONS], mountPoint: GUEST_SHARED_DIR }],
          sandboxPidns: false,
        }),
    ],
    ["UpdateInterface", () => agent.UpdateInterface({ interface: nic })],
    [
      "UpdateRoutes",
      () =>
        agent.UpdateRoutes({
          routes: {
            Routes: [
              { dest: "192.0.2.0/24", device: "", source: "192.0.2.2", scope: 253, family: 0 },
              { dest: "", gateway: "192.0.2.1", device: "", family: 0 },
            ],
          },
        }),
    ],
    ["CreateContainer", () => agent.CreateContainer({ containerId: REHEARSAL_ID, execId: REHEARSAL_ID, OCI: spec("container"), sandboxPidns: false })],
    ["CreateContainer (sandbox)", () => agent.CreateContainer({ containerId: REHEARSAL_ID, execId: REHEARSAL_ID, OCI: spec("sandbox"), sandboxPidns: false })],
    ["StartContainer", () => agent.StartContainer({ containerId: REHEARSAL_ID })],
    ["ExecProcess", () => agent.ExecProcess({ containerId: REHEARSAL_ID, execId: `${REHEARSAL_ID}-exec`, process: spec("container").Process })],
    ["WaitProcess", () => agent.WaitProcess({ containerId: REHEARSAL_ID, execId: REHEARSAL_ID })],
    ["RemoveContainer", () => agent.RemoveContainer({ containerId: REHEARSAL_ID, timeout: 0 })],
  ];
  // What the agent answers without changing anything: its answers' encoders (an Interface, a Route) are a pod's too.
  await agent.ListInterfaces({});
  await agent.ListRoutes({});
  const refused: Record<string, string> = {};
  for (const [name, call] of calls) {
    let answered = false;
    try {
      await call();
      answered = true;
    } catch (e) {
      // the agent's refusal, as its errdefs kind; a transport's failure is no answer
      if (!(e instanceof ErrdefsError) || e.kind === "Unavailable" || e.kind === "DeadlineExceeded") throw e;
      refused[name] = e.kind;
    }
    if (answered) throw new Error(`the agent did not refuse ${name}: its state is no longer known`);
  }
  return refused;
}
