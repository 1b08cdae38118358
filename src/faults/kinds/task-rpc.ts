// task-rpc: containerd's failpoint on one Task method, carried as containerd's
// failpoint shim reads it: an annotation on the bundle the shim starts in.
import { z } from "zod";
import { SHIM_FAILPOINT_ANNOTATION } from "../failpoint";
import { failpointTerms } from "./failpoint-terms";
import { faultBase, type LaunchKind } from "./kind";

export const TASK_METHODS = ["State", "Create", "Start", "Delete", "Pids", "Pause", "Resume", "Checkpoint", "Kill", "Exec", "ResizePty", "CloseIO", "Update", "Wait", "Stats", "Connect", "Shutdown"] as const;

const schema = z.strictObject({
  ...faultBase,
  scope: z.literal("task-rpc"),
  method: z.enum(TASK_METHODS).meta({ description: "a Task method" }),
  failpoint: failpointTerms,
});

export const taskRpcFault: LaunchKind<typeof schema> = {
  schema,
  timed: false,
  doc: "containerd's failpoint grammar (`1*off->1*error(msg)`, `delay(ms)`, `panic(msg)`) on a Task method, as containerd's failpoint shim reads it; counts time it",
  carrier: `annotation \`${SHIM_FAILPOINT_ANNOTATION}<Method>\` on the pod's sandbox bundle, read by the fp shim`,
  fpShim: true,
  launch: (f) => ({ annotation: SHIM_FAILPOINT_ANNOTATION + f.method, value: f.failpoint }),
};
