// Mutants: deliberately broken shim behaviours, each one a real bug from a
// shim's history, installed as ttrpc interceptors on the Task service (never
// as branches in the domain code). They exist so that scenarios can prove
// they fail when the shim has the bug. The daemon installs them when
// SHIMLAB_MUTANTS holds a comma-separated list of names.
import type { Interceptor } from "../ttrpc/server";

export const MUTANTS_ENV = "SHIMLAB_MUTANTS";

/** How long after an exit the wait-before-stopped mutant still reports the process running. */
const STALE_MS = 2_000;

interface StateLike {
  status?: number;
  exitStatus?: number;
  exitedAt?: { seconds?: number; nanos?: number };
}

interface WaitLike {
  exitStatus?: number;
}

export const MUTANT_INTERCEPTORS: Record<string, { bug: string; interceptor: Interceptor }> = {
  // kata-containers/runtime#1600: the exit went to Wait before the status was updated.
  "wait-before-stopped": {
    bug: "kata-containers/runtime#1600",
    interceptor: async (call, next) => {
      const res = (await next()) as StateLike;
      if (call.method !== "State" || res.status !== 3 || !res.exitedAt?.seconds) return res;
      const exitedMs = res.exitedAt.seconds * 1000 + Math.floor((res.exitedAt.nanos ?? 0) / 1e6);
      if (Date.now() - exitedMs < STALE_MS) return { ...res, status: 2, exitStatus: 0 };
      return res;
    },
  },
  // containerd#7496: a shim that never exits once containerd gave up on it.
  "ignore-shutdown": {
    bug: "containerd/containerd#7496",
    interceptor: async (call, next) => (call.method === "Shutdown" ? {} : next()),
  },
  // A lost exit code: Wait answers 0 whatever the process exited with.
  "wait-exit-zero": {
    bug: "lost exit code",
    interceptor: async (call, next) => {
      const res = (await next()) as WaitLike;
      return call.method === "Wait" ? { ...res, exitStatus: 0 } : res;
    },
  },
  // containerd#13848's other half: a Delete that never answers at all.
  "delete-never-answers": {
    bug: "containerd/containerd#13848",
    interceptor: async (call, next) => (call.method === "Delete" && !(call.request as { execId?: string }).execId ? new Promise(() => {}) : next()),
  },
};

/** The interceptors named in a SHIMLAB_MUTANTS value; unknown names are an error. */
export function parseMutants(value: string): { name: string; interceptor: Interceptor }[] {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((name) => {
      const m = MUTANT_INTERCEPTORS[name];
      if (!m) throw new Error(`${MUTANTS_ENV}: unknown mutant ${JSON.stringify(name)} (known: ${Object.keys(MUTANT_INTERCEPTORS).join(", ")})`);
      return { name, interceptor: m.interceptor };
    });
}
