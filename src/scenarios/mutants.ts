// Named mutants for scenario runs: shimlab given a known bug, through the
// interfaces faults use (ttrpc interceptors, the EventSink, configuration).
// A scenario that still passes with its mutant could not catch that bug.
import type { EventFaultRule } from "../faults/event-faults";
import { MUTANT_INTERCEPTORS } from "../faults/mutants";
import type { WorldOptions } from "./world";

export interface Mutant {
  bug: string;
  what: string;
  interceptor?: string;
  eventFaults?: EventFaultRule[];
  config?: { dial_timeout_ms?: number };
}

export const MUTANTS: Record<string, Mutant> = {
  "lose-exit": { bug: "containerd/containerd#3177", what: "the shim loses every /tasks/exit", eventFaults: [{ action: "drop", topic: "/tasks/exit" }] },
  "duplicate-exit": { bug: "duplicate exit events", what: "every /tasks/exit goes out twice", eventFaults: [{ action: "duplicate", topic: "/tasks/exit" }] },
  "late-exec-exit": { bug: "containerd/containerd#9719", what: "the first /tasks/exit is held back 1.5 s, so an exec's exit follows its init's", eventFaults: [{ action: "delay", topic: "/tasks/exit", ms: 1500, count: 1 }] },
  "wait-before-stopped": { bug: MUTANT_INTERCEPTORS["wait-before-stopped"].bug, what: "State says RUNNING for 2 s after Wait returned", interceptor: "wait-before-stopped" },
  "ignore-shutdown": { bug: MUTANT_INTERCEPTORS["ignore-shutdown"].bug, what: "Shutdown answers but the shim never exits", interceptor: "ignore-shutdown" },
  "wait-exit-zero": { bug: MUTANT_INTERCEPTORS["wait-exit-zero"].bug, what: "Wait answers exit status 0 whatever happened", interceptor: "wait-exit-zero" },
  "delete-never-answers": { bug: MUTANT_INTERCEPTORS["delete-never-answers"].bug, what: "the container's Delete never answers", interceptor: "delete-never-answers" },
  "no-dial-deadline": { bug: "kata-containers/kata-containers#12671", what: "the agent dial has no useful deadline (10 min)", config: { dial_timeout_ms: 600_000 } },
};

/** The world options that give shimlab these mutants. */
export function mutantOptions(names: string[]): Pick<WorldOptions, "mutants" | "eventFaults" | "config"> {
  const o: Required<Pick<WorldOptions, "mutants" | "eventFaults" | "config">> = { mutants: [], eventFaults: [], config: {} };
  for (const n of names) {
    const m = MUTANTS[n];
    if (!m) throw new Error(`unknown mutant ${JSON.stringify(n)} (known: ${Object.keys(MUTANTS).join(", ")})`);
    if (m.interceptor) o.mutants.push(m.interceptor);
    if (m.eventFaults) o.eventFaults.push(...m.eventFaults);
    if (m.config) Object.assign(o.config, m.config);
  }
  return o;
}
