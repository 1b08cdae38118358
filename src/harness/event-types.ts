// The task event types containerd defines, by their bare type URL.
import * as ev from "../gen/containerd.events";
import type { MessageCodec } from "../proto/message";

export const TASK_EVENT_TYPES: Record<string, MessageCodec<any, any>> = Object.fromEntries(
  [ev.TaskCreate, ev.TaskStart, ev.TaskDelete, ev.TaskExit, ev.TaskOOM, ev.TaskExecAdded, ev.TaskExecStarted, ev.TaskPaused, ev.TaskResumed, ev.TaskCheckpointed].map((c) => [c.typeName, c]),
);

export const TOPIC_OF_TYPE: Record<string, string> = {
  "containerd.events.TaskCreate": "/tasks/create",
  "containerd.events.TaskStart": "/tasks/start",
  "containerd.events.TaskDelete": "/tasks/delete",
  "containerd.events.TaskExit": "/tasks/exit",
  "containerd.events.TaskOOM": "/tasks/oom",
  "containerd.events.TaskExecAdded": "/tasks/exec-added",
  "containerd.events.TaskExecStarted": "/tasks/exec-started",
  "containerd.events.TaskPaused": "/tasks/paused",
  "containerd.events.TaskResumed": "/tasks/resumed",
  "containerd.events.TaskCheckpointed": "/tasks/checkpointed",
};
