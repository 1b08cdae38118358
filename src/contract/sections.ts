// The pages of docs/contract/ and the rule blocks inside them. A rule names
// its section; the section says which page prints it, so a citation's path
// follows from the rule id alone.
import type { Section } from "./types";

export const PAGES: Record<string, string> = {
  README: "The shim v2 contract",
  binary: "The shim binary: start, the daemon, delete, Shutdown",
  wire: "ttrpc on the wire, and error codes",
  "task-api": "The Task API, RPC by RPC",
  events: "Events and their ordering",
  stdio: "Stdio and TTYs",
  "exit-status": "Exit statuses and times",
  pods: "Pods: one shim for many tasks",
  "sandbox-api": "The Sandbox API (containerd 2.x's shim sandboxer)",
  versions: "containerd 1.6, 1.7 and 2.1",
  traps: "Traps that cost shim authors days",
};

export const SECTIONS: readonly Section[] = [
  { id: "invocation", page: "binary", title: "How containerd runs the binary" },
  { id: "start", page: "binary", title: "start" },
  { id: "daemon", page: "binary", title: "The daemon" },
  { id: "bootstrap", page: "binary", title: "Bootstrap results on containerd 2.x" },
  { id: "delete", page: "binary", title: "delete" },
  { id: "shutdown", page: "binary", title: "Shutdown and the shim's lifetime" },
  { id: "ttrpc", page: "wire", title: "ttrpc" },
  { id: "errors", page: "wire", title: "Error codes" },
  { id: "task", page: "task-api", title: "Every RPC" },
  { id: "create", page: "task-api", title: "Create" },
  { id: "task-start", page: "task-api", title: "Start" },
  { id: "state", page: "task-api", title: "State" },
  { id: "wait", page: "task-api", title: "Wait" },
  { id: "kill", page: "task-api", title: "Kill" },
  { id: "task-delete", page: "task-api", title: "Delete" },
  { id: "exec", page: "task-api", title: "Exec" },
  { id: "pids", page: "task-api", title: "Pids" },
  { id: "pause", page: "task-api", title: "Pause and Resume" },
  { id: "connect", page: "task-api", title: "Connect" },
  { id: "resources", page: "task-api", title: "Stats, Update, Checkpoint" },
  { id: "publish", page: "events", title: "Publishing" },
  { id: "fields", page: "events", title: "What each event carries" },
  { id: "ordering", page: "events", title: "Orderings" },
  { id: "stdio", page: "stdio", title: "Stdio" },
  { id: "tty", page: "stdio", title: "TTYs" },
  { id: "exit", page: "exit-status", title: "Exit statuses" },
  { id: "pods", page: "pods", title: "Pods" },
  { id: "sandbox-lifecycle", page: "sandbox-api", title: "A sandbox's life" },
  { id: "sandbox-errors", page: "sandbox-api", title: "Errors and repeated calls" },
];

export function section(id: string): Section {
  const s = SECTIONS.find((x) => x.id === id);
  if (!s) throw new Error(`no contract section ${JSON.stringify(id)}`);
  return s;
}
