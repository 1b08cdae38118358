// shimlab demo [--dir DIR] [-o page.html]
import { runDemo } from "../lifecycle-demo";
import { str, withArgs } from "../args";

export function demoCommand(argv: string[]): Promise<number> {
  return withArgs(["demo"], argv, async (p) => {
    const r = await runDemo({ dir: str(p, "dir"), html: str(p, "html") });
    const expected = { "demo-job": 3, "demo-web/e1": 5, "demo-web": 137 } as Record<string, number>;
    const wrong = Object.entries(expected).filter(([k, v]) => r.exitCodes[k] !== v);
    if (wrong.length) {
      process.stderr.write(`shimlab demo: unexpected exit codes: ${wrong.map(([k]) => `${k}=${r.exitCodes[k]}`).join(", ")}\n`);
      return 1;
    }
    return 0;
  });
}
