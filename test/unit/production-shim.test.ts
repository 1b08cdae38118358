// The production shim carries no test machinery: nothing it can load, by
// import or by a lazy require, comes from src/faults or the failpoint shim
// (src/fp-shim), which wraps the same interfaces from a binary of its own.
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import path from "node:path";

const SRC = path.resolve(__dirname, "../../src");
const FAULT_DIRS = ["faults", "fp-shim"].map((d) => path.join(SRC, d) + path.sep);
const isFaults = (f: string) => FAULT_DIRS.some((d) => f.startsWith(d));

/** Relative specifiers of every import, export-from, require() and import() in a source file, types included. */
function specifiers(file: string): string[] {
  const text = fs.readFileSync(file, "utf8");
  const out: string[] = [];
  for (const re of [/\bfrom\s*"(\.[^"]*)"/g, /\brequire\(\s*"(\.[^"]*)"\s*\)/g, /\bimport\(\s*"(\.[^"]*)"\s*\)/g, /^import\s*"(\.[^"]*)"/gm]) {
    for (const m of text.matchAll(re)) out.push(m[1]);
  }
  return out;
}

function resolve(from: string, spec: string): string {
  const base = path.resolve(path.dirname(from), spec);
  for (const f of [base + ".ts", path.join(base, "index.ts"), base]) if (fs.existsSync(f) && fs.statSync(f).isFile()) return f;
  throw new Error(`${path.relative(SRC, from)}: cannot resolve ${spec}`);
}

/** Every module reachable from entry, each with the chain that reaches it. */
function reachable(entry: string): Map<string, string[]> {
  const seen = new Map<string, string[]>([[entry, [entry]]]);
  const todo = [entry];
  while (todo.length) {
    const f = todo.pop()!;
    for (const s of specifiers(f)) {
      const g = resolve(f, s);
      if (g.endsWith(".ts") && !seen.has(g)) {
        seen.set(g, [...seen.get(f)!, g]);
        todo.push(g);
      }
    }
  }
  return seen;
}

const rel = (f: string) => path.relative(SRC, f);

describe("the production shim carries no fault injection", () => {
  it("nothing reachable from src/shim/main.ts is in src/faults or src/fp-shim", () => {
    const graph = reachable(path.join(SRC, "shim", "main.ts"));
    // The walk follows lazy requires into the daemon, the pod, the agent client and both hypervisors.
    for (const f of ["shim/daemon.ts", "shim/start.ts", "shim/delete.ts", "pod/sandbox.ts", "agent/client.ts", "hypervisor/host-agent.ts", "hypervisor/qemu/index.ts", "trace/shim.ts"]) {
      expect(graph.has(path.join(SRC, f)), f).toBe(true);
    }
    const bad = [...graph.entries()].filter(([f]) => isFaults(f)).map(([, chain]) => chain.map(rel).join(" → "));
    expect(bad).toEqual([]);
  });

  it("no module of the shim, the pod, the agent client or the hypervisors imports them, reachable or not", () => {
    const bad: string[] = [];
    for (const d of ["shim", "pod", "agent", "hypervisor"]) {
      for (const f of fs.readdirSync(path.join(SRC, d), { recursive: true }).map(String)) {
        if (!f.endsWith(".ts")) continue;
        const file = path.join(SRC, d, f);
        for (const s of specifiers(file)) if (isFaults(resolve(file, s))) bad.push(`${rel(file)} → ${s}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it("the same walk from the failpoint shim's entry finds the fault modules it wraps the shim with", () => {
    const graph = reachable(path.join(SRC, "fp-shim", "main.ts"));
    for (const f of ["faults/failpoint.ts", "faults/event-faults.ts", "faults/mutants.ts", "faults/agent-link.ts", "faults/proxy.ts", "shim/daemon.ts"]) {
      expect(graph.has(path.join(SRC, f)), f).toBe(true);
    }
  });

  // What scripts/bundle.mjs made of the production shim (after `npm run build`): none of the faults' names.
  const bundles = ["shim.js", "shim-cli.js"].map((b) => path.resolve(__dirname, "../../dist/bundle", b));
  it.skipIf(!bundles.every((b) => fs.existsSync(b)))("the production bundles hold no failpoint annotation, fault variable or fault proxy", () => {
    for (const b of bundles) {
      const text = fs.readFileSync(b, "utf8");
      for (const s of ["io.containerd.runtime.v2.shim.failpoint.", "SHIMLAB_EVENT_FAULTS", "SHIMLAB_MUTANTS", "SHIMLAB_AGENT_LINK_FAULTS", "FaultProxy", "FaultyEventSink"]) {
        expect(text.includes(s), `${path.basename(b)} holds ${s}`).toBe(false);
      }
    }
  });
});
