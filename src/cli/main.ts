// shimlab: the command line. Each subcommand loads only its own module.
import { VERSION } from "../shim/main";

const USAGE = `shimlab ${VERSION} — test, teach and break containerd shims

usage: shimlab <command> [options]

  demo                         a pod's shim v2 lifecycle on the mock agent, told step by step
  sniff --shim PATH            watch any shim's ttrpc traffic with containerd live, decoded (a recording proxy)
  trace render|doc             draw a lifecycle trace (SHIMLAB_TRACE) as a page or Mermaid; write docs/lifecycle.md
  cri                          a small crictl (CRI v1 over gRPC); \`cri up\` starts a CRI containerd for shimlab
  conformance --shim PATH      run the conformance checks against any shim v2 binary (--compare A B)
  scenario run|validate|list   YAML fault scenarios: run them, with verdicts and JSON/JUnit reports
  image build [--kernel]       build (or find cached) the QEMU guest image; --kernel first builds shimlab's guest kernel
  version                      print the version
  install | uninstall          put the shim on this node and in containerd's config, or take it out
  peers list|fetch             the real peers the suite runs against (containerd 1.6/1.7/2.1, runc, Go programs)

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
    case "sniff": {
      const { sniffCommand } = await import("./commands/sniff");
      return sniffCommand(rest);
    }
    case "trace": {
      const { traceCommand } = await import("./commands/trace");
      return traceCommand(rest);
    }
    case "cri": {
      const { criCommand } = await import("./commands/cri");
      return criCommand(rest);
    }
    case "conformance": {
      const { conformanceCommand } = await import("./commands/conformance");
      return conformanceCommand(rest);
    }
    case "install":
    case "uninstall": {
      const { installCommand } = await import("./commands/install");
      return installCommand(rest, cmd);
    }
    case "scenario": {
      const { scenarioCommand } = await import("./commands/scenario");
      return scenarioCommand(rest);
    }
    case "image": {
      const { run: imageCommand } = await import("./commands/image");
      return imageCommand(rest);
    }
    case "peers": {
      const { peersCommand } = await import("./commands/peers");
      return peersCommand(rest);
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
