// shimlab demo [--dir DIR] [-o page.html]
import { runDemo } from "../demo";

export async function demoCommand(argv: string[]): Promise<number> {
  let dir: string | undefined;
  let html: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--dir") dir = argv[++i];
    else if (a === "-o" || a === "--html") html = argv[++i];
    else if (a === "-h" || a === "--help") {
      process.stdout.write("usage: shimlab demo [--dir DIR] [-o lifecycle.html]\n\nRuns a pod (sandbox + two containers), an exec, a kill and the teardown through\nshimlab's shim binary with a containerd stand-in, printing each step. Every process\ntraces every hop into DIR/trace.jsonl, and the page (sequence diagram, event\nordering, state machines, files) goes to DIR/lifecycle.html or -o.\n");
      return 0;
    } else {
      process.stderr.write(`shimlab demo: unknown argument ${a}\n`);
      return 2;
    }
  }
  const r = await runDemo({ dir, html });
  const expected = { "demo-job": 3, "demo-web/e1": 5, "demo-web": 137 } as Record<string, number>;
  const wrong = Object.entries(expected).filter(([k, v]) => r.exitCodes[k] !== v);
  if (wrong.length) {
    process.stderr.write(`shimlab demo: unexpected exit codes: ${wrong.map(([k]) => `${k}=${r.exitCodes[k]}`).join(", ")}\n`);
    return 1;
  }
  return 0;
}
