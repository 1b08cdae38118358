// shimlab: the command line. Each subcommand loads only its own module.
import { VERSION } from "../shim/main";

const USAGE = `shimlab ${VERSION} — test, teach and break containerd shims

usage: shimlab <command> [options]

  demo                         a pod's shim v2 lifecycle on the mock agent, told step by step
  scenario run|validate|list   YAML fault scenarios: run them, with verdicts and JSON/JUnit reports
  version                      print the version

Run \`shimlab <command> --help\` for a command's options.
`;

export async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case "-h":
    case "--help":
    case "help":
      process.stdout.write(USAGE);
      return cmd === undefined ? 2 : 0;
    case "version":
    case "--version":
      process.stdout.write(`shimlab ${VERSION}\n`);
      return 0;
    case "demo": {
      const { demoCommand } = await import("./commands/demo");
      return demoCommand(rest);
    }
    case "scenario": {
      const { scenarioCommand } = await import("./commands/scenario");
      return scenarioCommand(rest);
    }
    default:
      process.stderr.write(`shimlab: unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`);
      return 2;
  }
}

export function main(argv: string[]): void {
  delete process.env.NODE_EXTRA_CA_CERTS;
  run(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (e: Error) => {
      process.stderr.write(`shimlab: ${e.message}\n`);
      process.exitCode = 1;
    },
  );
}
