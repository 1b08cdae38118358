// shimlab: the command line. The commands, their options and their help are the table in ./table;
// each command's module is loaded only when it runs (the table itself is data, cheap to load).
import { VERSION } from "../shim/main";
import { COMMANDS } from "./table";
import { findCommand, helpText, overview } from "./args";

type Command = (argv: string[]) => Promise<number>;

/** One loader per command of the table (a unit test holds the two to the same names). */
export const LOADERS: Record<string, () => Promise<Command>> = {
  demo: async () => (await import("./commands/demo")).demoCommand,
  sniff: async () => (await import("./commands/sniff")).sniffCommand,
  trace: async () => (await import("./commands/trace")).traceCommand,
  cri: async () => (await import("./commands/cri")).criCommand,
  conformance: async () => (await import("./commands/conformance")).conformanceCommand,
  scenario: async () => (await import("./commands/scenario")).scenarioCommand,
  image: async () => (await import("./commands/image")).run,
  factory: async () => (await import("./commands/factory")).factoryCommand,
  install: async () => {
    const { installCommand } = await import("./commands/install");
    return (argv) => installCommand(argv, "install");
  },
  uninstall: async () => {
    const { installCommand } = await import("./commands/install");
    return (argv) => installCommand(argv, "uninstall");
  },
  peers: async () => (await import("./commands/peers")).peersCommand,
};

export async function run(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === "-h" || cmd === "--help") {
    process.stdout.write(overview(VERSION));
    return cmd === undefined ? 2 : 0;
  }
  if (cmd === "help") {
    // `shimlab help cri exec`: the help of that (sub)command.
    if (!rest.length) {
      process.stdout.write(overview(VERSION));
      return 0;
    }
    try {
      findCommand(rest);
    } catch {
      process.stderr.write(`shimlab help: no command ${JSON.stringify(rest.join(" "))}\n\n${overview(VERSION)}`);
      return 2;
    }
    process.stdout.write(helpText(rest));
    return 0;
  }
  if (cmd === "version" || cmd === "--version") {
    process.stdout.write(`shimlab ${VERSION}\n`);
    return 0;
  }
  const load = COMMANDS.some((c) => c.name === cmd) ? LOADERS[cmd] : undefined;
  if (!load) {
    process.stderr.write(`shimlab: unknown command ${JSON.stringify(cmd)}\n\n${overview(VERSION)}`);
    return 2;
  }
  return (await load())(rest);
}

export function main(argv: string[]): void {
  delete process.env.NODE_EXTRA_CA_CERTS;
  // A reader that went away (`shimlab scenario run … | head`) must not kill a command before its
  // teardown: what it started (shims, containerds, VMs) would be left running. Its output is lost.
  for (const s of [process.stdout, process.stderr])
    s.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code !== "EPIPE") throw e;
    });
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
