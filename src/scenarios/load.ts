// Reading scenario files: YAML with positions, the format (format.ts), then
// the checks a schema cannot express (names that must exist, what each fault
// kind and driver allows), each error as "file:line:col: path: what was expected".
import fs from "node:fs";
import path from "node:path";
import { LineCounter, parseDocument, isMap, isSeq, isPair, isScalar, type Document, type Node } from "yaml";
import { errorMap, pathText, problemsOf } from "./format-errors";
import { scenarioFormat, STEP_NEEDS_DO, type StepFile } from "./format";
import { checkFault, kindOf } from "../faults/kinds";
import type { Scenario, Step } from "./types";
import { CTR_OPS } from "./ctr-driver";

/** Steps of containerd 2.x's Sandbox API (sandbox_api: true). */
export const SANDBOX_OPS = new Set(["create-sandbox", "start-sandbox", "stop-sandbox", "wait-sandbox", "sandbox-status", "ping-sandbox", "shutdown-sandbox"]);
/** The pod's id in a sandbox_api scenario. */
export const SANDBOX_API_POD = "pod";

export class ScenarioError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(`${problems.length} problem${problems.length > 1 ? "s" : ""} in ${file}:\n  ${problems.join("\n  ")}`);
  }
}

/** Where a path points in the document: the node, or its nearest parent that exists. */
function locate(doc: Document, lc: LineCounter, p: (string | number)[], atKey: boolean): string {
  let node: Node | null = doc.contents as Node | null;
  let best: { range?: [number, number, number] | null } | null = node;
  for (let i = 0; i < p.length && node; i++) {
    const seg = p[i];
    let next: Node | null = null;
    if (isMap(node)) {
      const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(seg));
      if (pair) {
        if (atKey && i === p.length - 1) next = pair.key as Node;
        else next = (pair.value as Node | null) ?? (pair.key as Node);
      }
    } else if (isSeq(node) && typeof seg === "number") next = (node.items[seg] as Node | undefined) ?? null;
    node = next;
    if (node && (node as { range?: unknown }).range) best = node;
  }
  const off = best?.range?.[0];
  if (off === undefined) return "";
  const { line, col } = lc.linePos(off);
  return `${line}:${col}`;
}

export function parseScenario(text: string, file: string): Scenario {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const at = (p: (string | number)[], atKey = false) => {
    const l = locate(doc, lc, p, atKey);
    return l ? `${file}:${l}` : file;
  };
  if (doc.errors.length) {
    throw new ScenarioError(
      file,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0] ?? (e.pos ? lc.linePos(e.pos[0]) : undefined);
        return `${pos ? `${file}:${pos.line}:${pos.col}` : file}: not valid YAML: ${e.message.split("\n")[0]}`;
      }),
    );
  }
  const raw = doc.toJS({ maxAliasCount: 100 }) as unknown;
  const parsed = scenarioFormat.safeParse(raw, { error: errorMap, reportInput: true });
  if (!parsed.success) throw new ScenarioError(file, problemsOf(parsed.error.issues, STEP_NEEDS_DO).map((e) => `${at(e.path, e.atKey)}: ${pathText(e.path)}: ${e.message}`));
  const r = parsed.data;
  const problems: string[] = [];
  const bad = (p: (string | number)[], msg: string) => problems.push(`${at(p)}: ${pathText(p)}: ${msg}`);

  const containers = Object.keys(r.containers);
  if (r.sandbox_api && r.driver === "containerd") bad(["sandbox_api"], "the Sandbox API steps need the emulator driver (the containerd driver runs ctr, which makes no sandbox)");
  if (r.sandbox_api && containers.includes(SANDBOX_API_POD)) bad(["containers", SANDBOX_API_POD], `with sandbox_api the pod is ${JSON.stringify(SANDBOX_API_POD)}: name the containers otherwise`);
  if (!containers.length) bad(["containers"], "expected at least one container (the first is the pod's sandbox)");
  if (r.factory && r.driver === "containerd") bad(["factory"], "the factory of warm sandboxes needs the emulator driver");
  if (r.factory && r.sandbox_api) bad(["factory"], "the factory's warm sandboxes are not for the Sandbox API's steps");
  const faults = r.faults;
  const faultNames = new Set<string>();
  const stepIds = new Set<string>();

  const steps = (list: StepFile[], base: (string | number)[]): Step[] =>
    list.map((s, i) => {
      const p = [...base, i];
      if (s.id) {
        if (stepIds.has(s.id)) bad([...p, "id"], `step id ${JSON.stringify(s.id)} is used twice`);
        stepIds.add(s.id);
      }
      const where = at(p);
      if (s.do === undefined) return { kind: "parallel", id: s.id, abort_on_fail: s.abort_on_fail, where, branches: s.parallel.map((b, j) => steps(b, [...p, "parallel", j])) };
      if (SANDBOX_OPS.has(s.do) && !r.sandbox_api) bad([...p, "do"], `${s.do} is a Sandbox API step: the scenario needs sandbox_api: true`);
      if (r.driver === "containerd" && !CTR_OPS.has(s.do)) bad([...p, "do"], `${s.do} needs the emulator driver; with driver containerd (where start is ctr run -d) the steps are ${[...CTR_OPS].join(", ")}`);
      if ("container" in s && s.container && !containers.includes(s.container)) bad([...p, "container"], `no container ${JSON.stringify(s.container)} (containers: ${containers.join(", ")})`);
      if ("target" in s && s.target.startsWith("init:") && !containers.includes(s.target.slice(5))) bad([...p, "target"], `no container ${JSON.stringify(s.target.slice(5))}`);
      if ("target" in s && (s.target === "factory" || s.target === "warm-agent") && !r.factory) bad([...p, "target"], `${s.target} needs the scenario's factory (factory: { pool_size: N })`);
      if (s.do === "exec" && s.repeat && s.repeat > 1 && !s.exec_id.includes("{i}")) bad([...p, "exec_id"], "a repeated exec needs {i} in its exec_id so that each gets its own");
      return { kind: "op", ...s, where };
    });

  faults.forEach((f, i) => {
    const p = ["faults", i];
    if (faultNames.has(f.name)) bad([...p, "name"], `fault name ${JSON.stringify(f.name)} is used twice`);
    faultNames.add(f.name);
    const kind = kindOf(f);
    checkFault(f, { containers, factory: !!r.factory, bad: (sub, msg) => bad([...p, ...sub], msg) });
    if (r.driver === "containerd" && kind.emulatorOnly) bad([...p, "scope"], `scope ${f.scope} needs the emulator driver (a real containerd's side cannot be faulted here)`);
    if (r.sandbox_api && kind.needsShimLinkProxy) bad([...p, "scope"], `scope ${f.scope} is not carried to a Sandbox API pod's shim yet`);
    if (f.window && !kind.timed) bad([...p, "window"], `scope ${f.scope} is fixed when the shim starts; time it with counts instead`);
  });

  const scenarioSteps = steps(r.steps, ["steps"]);
  const walk = (list: Step[], base: (string | number)[]) =>
    list.forEach((s, i) => {
      if (s.kind === "parallel") return s.branches.forEach((b, j) => walk(b, [...base, i, "parallel", j]));
      if ((s.do === "inject" || s.do === "heal") && s.fault && !faultNames.has(s.fault)) bad([...base, i, "fault"], `no fault named ${JSON.stringify(s.fault)} (faults: ${[...faultNames].join(", ") || "none"})`);
      if ((s.do === "inject" || s.do === "heal") && s.fault) {
        const f = faults.find((x) => x.name === s.fault);
        if (f && !kindOf(f).timed) bad([...base, i, "fault"], `fault ${f.name} (scope ${f.scope}) is fixed when the shim starts; it cannot be injected or healed`);
      }
    });
  walk(scenarioSteps, ["steps"]);
  faults.forEach((f, i) => {
    if (f.window?.after && !stepIds.has(f.window.after)) bad(["faults", i, "window", "after"], `no step with id ${JSON.stringify(f.window.after)}`);
  });
  for (const k of ["events", "no_events"] as const) for (const c of Object.keys(r.expect[k] ?? {})) if (!containers.includes(c)) bad(["expect", k, c], `no container ${JSON.stringify(c)}`);
  if (problems.length) throw new ScenarioError(file, problems);

  return { ...r, file, steps: scenarioSteps };
}

export function loadScenarioFile(file: string): Scenario {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ScenarioError(file, [`${file}: cannot read: ${(e as Error).message}`]);
  }
  return parseScenario(text, file);
}

/** Files and directories to scenario files (*.yaml, *.yml), in name order. */
export function scenarioFiles(paths: string[]): string[] {
  const out: string[] = [];
  for (const p of paths) {
    const st = fs.statSync(p);
    if (st.isDirectory()) {
      for (const f of fs.readdirSync(p).sort()) if (/\.ya?ml$/.test(f)) out.push(path.join(p, f));
    } else out.push(p);
  }
  return out;
}
