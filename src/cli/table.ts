// Every shimlab command, subcommand and option, declared once: ./args parses argv from this table
// and generates each command's --help and the overview from it, and main.ts dispatches exactly
// these commands. It stays cheap to load: it imports only small modules (the contract's rule list,
// the mutants' names, the cache's path), never a command's own.
import { citation, contractDir, contractHtmlDir } from "../contract/cite";
import { MUTANTS } from "../scenarios/mutants";
import { peersCacheDir } from "../harness/peers/cache";

/** The sniff trace's file name (sniff/daemon's TRACE_FILE; a unit test holds them equal): that module is a proxy, too big to load for a help text. */
const SNIFF_TRACE_FILE = "trace.jsonl";

export interface OptionSpec {
  /** The long name, `--name`; also the key of the parsed value. */
  name: string;
  /** One letter, `-x`. */
  short?: string;
  type: "string" | "boolean";
  /** May be given more than once; the values come as an array. */
  multiple?: boolean;
  /** What the value is, in the help (`--out FILE`). */
  metavar?: string;
  /** The only values accepted; anything else is a usage error. */
  choices?: string[];
  help: string;
  default?: string;
}

export interface PositionalSpec {
  name: string;
  optional?: boolean;
  variadic?: boolean;
  help?: string;
}

export interface CommandSpec {
  name: string;
  /** One line, in the overview and at the top of the help. */
  summary: string;
  /** What the overview shows after the name (`--shim PATH`). */
  synopsis?: string;
  /** Paragraphs after the summary. */
  description?: () => string;
  positionals?: PositionalSpec[];
  /** Words after `--` the command takes (a container's command), named so in the usage. */
  rest?: string;
  options?: OptionSpec[];
  /** The options are accepted before or after the subcommand's name (`cri --address S exec ...`). */
  globalOptions?: boolean;
  subcommands?: CommandSpec[];
  /** Usage lines (after `shimlab <path> `) where the generated one would say less than the truth. */
  usages?: string[];
  /** Free text printed at the end of the help. */
  notes?: () => string;
}

const FACTORY_OPTIONS: OptionSpec[] = [
  { name: "config", type: "string", metavar: "FILE", help: "shimlab's TOML: [factory] socket and pool_size, [agent] runtime (default SHIMLAB_CONFIG, else the defaults)" },
  { name: "dir", type: "string", metavar: "DIR", help: "the factory's directory: its pool, pid file and log (default /run/shimlab-factory)" },
  { name: "socket", type: "string", metavar: "PATH", help: "its socket (default the config's [factory] socket, or <dir>/factory.sock with --dir alone)" },
  { name: "size", type: "string", metavar: "N", help: "warm agents to keep (default the config's [factory] pool_size, else 2)" },
  { name: "daemons", type: "string", metavar: "N", help: "parked shim daemons to keep, for `start` to take (default the config's [factory] daemon_pool_size, else --size)" },
];
const TIMEOUT: OptionSpec = { name: "timeout", type: "string", metavar: "SEC", help: "seconds the call may take" };
const CTR: PositionalSpec = { name: "CTR", help: "a container id" };
const POD: PositionalSpec = { name: "POD", help: "a pod (sandbox) id" };
const STDIN: OptionSpec = { name: "stdin", short: "i", type: "boolean", help: "keep stdin open (send this terminal's stdin)" };
const TTY: OptionSpec = { name: "tty", short: "t", type: "boolean", help: "on a terminal" };

const INSTALL_COMMON: OptionSpec[] = [
  { name: "prefix", type: "string", metavar: "DIR", default: "/usr/local", help: "where the launcher goes" },
  { name: "containerd-config", type: "string", metavar: "FILE", help: "containerd's config (default /etc/containerd/config.toml)" },
  { name: "root", type: "string", metavar: "DIR", help: "the host's / mounted at DIR (a DaemonSet); config paths stay the host's" },
  { name: "restart", type: "boolean", help: "systemctl restart containerd afterwards (through nsenter with --root)" },
];

export const COMMANDS: CommandSpec[] = [
  {
    name: "demo",
    summary: "a pod's shim v2 lifecycle on the mock agent, told step by step",
    description: () =>
      "Runs a pod (sandbox + two containers), an exec, a kill and the teardown through\nshimlab's shim binary with a containerd stand-in, printing each step. Every process\ntraces every hop into DIR/trace.jsonl, and the page (sequence diagram, event\nordering, state machines, files) goes to DIR/lifecycle.html or -o. With\nSHIMLAB_EVENT_FAULTS, SHIMLAB_MUTANTS or SHIMLAB_AGENT_LINK_FAULTS set, the\nfailpoint shim (containerd-shim-shimlab-fp-v2) runs instead, which injects them.",
    options: [
      { name: "dir", type: "string", metavar: "DIR", help: "the run's directory (kept afterwards)" },
      { name: "html", short: "o", type: "string", metavar: "FILE", help: "where the page goes (default DIR/lifecycle.html)" },
    ],
  },
  {
    name: "sniff",
    synopsis: "--shim PATH",
    summary: "watch any shim's ttrpc traffic with containerd live, decoded (a recording proxy)",
    description: () => {
      const TRACE_FILE = SNIFF_TRACE_FILE;
      return `Puts a transparent recording proxy between containerd and any shim v2 binary
(runc's, shimlab's, yours): every call, reply, error and event, decoded, with
its ttrpc stream id and latency; a frame it cannot decode is shown raw and
still passed on unchanged. It writes a wrapper shim; run your containers with

  ctr run --runtime <DIR>/containerd-shim-sniff-v2 ...      (no config change)

or put DIR on containerd's PATH and use runtime io.containerd.sniff.v2.
The trace (DIR/${TRACE_FILE}) renders with: shimlab trace render DIR/${TRACE_FILE} -o page.html`;
    },
    options: [
      { name: "shim", type: "string", metavar: "PATH", help: "the real shim binary (required)" },
      { name: "dir", type: "string", metavar: "DIR", help: "the session directory (default /run/shimlab-sniff/<random>; socket paths must stay short)" },
      { name: "no-follow", type: "boolean", help: "set up, print the runtime path and exit (the proxies still record)" },
      { name: "agent", type: "boolean", help: "record the shim-to-agent leg too (a shimlab shim, which the names containerd-shim-shimlab-v2 and -fp-v2 already say): its own wire tap on the agent transport writes into the same trace" },
    ],
  },
  {
    name: "trace",
    synopsis: "render|doc",
    summary: "draw a lifecycle trace (SHIMLAB_TRACE) as a page or Mermaid; write docs/lifecycle.md",
    subcommands: [
      {
        name: "render",
        summary: "one self-contained page (or a Mermaid sequenceDiagram) of a trace written with SHIMLAB_TRACE=<file> (or <dir>/ for a file per process)",
        positionals: [{ name: "TRACE", help: "a trace.jsonl, or a directory of them" }],
        options: [
          { name: "out", short: "o", type: "string", metavar: "OUT", help: "the file to write (required)" },
          { name: "format", short: "f", type: "string", choices: ["html", "mermaid"], help: "default: mermaid for .mmd, .mermaid and .md, else html" },
        ],
      },
      {
        name: "doc",
        summary: "runs the demo with tracing and writes the Markdown walkthrough from it",
        options: [{ name: "out", short: "o", type: "string", metavar: "FILE", default: "docs/lifecycle.md", help: "the Markdown file" }],
      },
    ],
  },
  {
    name: "cri",
    summary: "a small crictl (CRI v1 over gRPC); `cri up` starts a CRI containerd for shimlab",
    description: () => "Talks CRI v1 (runtime.v1) to containerd's CRI plugin, as the kubelet does.",
    globalOptions: true,
    options: [
      { name: "address", type: "string", metavar: "SOCK", help: "containerd's socket (default $CONTAINER_RUNTIME_ENDPOINT, else /run/containerd/containerd.sock)" },
      TIMEOUT,
    ],
    subcommands: [
      {
        name: "up",
        summary:
          "start a private containerd (1.6 unless --containerd or SHIMLAB_CONTAINERD says; \"shimlab peers fetch\" gets 1.7 and 2.1) with CRI, handlers shimlab and runc (--qemu: and shimlab-qemu, pods in VMs), local pause and busybox images and, where Debian's CNI plugins are installed, a pod network (a bridge); print its address; run until interrupted, then remove its pods and stop it",
        options: [
          { name: "dir", type: "string", metavar: "DIR", help: "containerd's directory" },
          { name: "qemu", type: "boolean", help: "also handler shimlab-qemu" },
          { name: "containerd", type: "string", metavar: "1.6|1.7|2.1|PATH", help: "which containerd" },
          { name: "sandboxer", type: "string", choices: ["shim", "podsandbox"], help: "(containerd 2.x) shimlab's pods through CRI's pause container (podsandbox, the default) or the shim's Sandbox API (shim)" },
        ],
      },
      { name: "version", summary: "runtime name and versions" },
      { name: "info", summary: "runtime conditions (RuntimeReady, NetworkReady)" },
      { name: "images", summary: "images CRI knows" },
      {
        name: "runp",
        summary: "run a pod (handler: shimlab) on the host's network, or on one of its own from CNI; print its id",
        options: [
          { name: "handler", type: "string", metavar: "H", default: "shimlab", help: "the runtime handler" },
          { name: "name", type: "string", metavar: "N", help: "the pod's name (default pod-<pid>-<n>)" },
          { name: "namespace", type: "string", metavar: "NS", default: "default", help: "the pod's namespace" },
          { name: "pod-network", type: "boolean", help: "a network of its own, from CNI" },
        ],
      },
      { name: "pods", summary: "list pods" },
      { name: "inspectp", summary: "a pod's status, as JSON", positionals: [POD] },
      {
        name: "create",
        summary: "create a container in the pod (-i: keep its stdin open for attach, -t: on a terminal); print its id",
        positionals: [POD, { name: "NAME" }, { name: "IMAGE" }],
        rest: "CMD...",
        options: [{ name: "pid-pod", type: "boolean", help: "share the pod's pid namespace" }, STDIN, TTY],
      },
      {
        name: "run",
        summary: "create and start a container; print its id",
        positionals: [POD, { name: "NAME" }, { name: "IMAGE" }],
        rest: "CMD...",
        options: [{ name: "pid-pod", type: "boolean", help: "share the pod's pid namespace" }, STDIN, TTY],
      },
      { name: "start", summary: "start a created container", positionals: [CTR] },
      {
        name: "ps",
        summary: "list running (or all) containers",
        options: [
          { name: "pod", type: "string", metavar: "POD", help: "only this pod's" },
          { name: "all", short: "a", type: "boolean", help: "all, not only running ones" },
        ],
      },
      { name: "inspect", summary: "a container's status, as JSON", positionals: [CTR] },
      {
        name: "exec",
        summary:
          "run CMD in the container (ExecSync): its output, then its exit code. With -i or -t, through CRI streaming (Exec and containerd's streaming server, as kubectl exec): -i sends this stdin, -t runs on a terminal. v4 has no half-close: a command that waits for stdin's end does not get it (Ctrl-C ends the stream)",
        positionals: [CTR],
        rest: "CMD...",
        options: [TIMEOUT, STDIN, TTY],
      },
      { name: "attach", summary: "attach to a running container's stdio (its -i/-t must match)", positionals: [CTR], options: [STDIN, TTY] },
      {
        name: "port-forward",
        summary:
          'forward 127.0.0.1:LOCAL here to localhost:REMOTE in the pod\'s network namespace, as kubectl port-forward: CRI PortForward and containerd\'s streaming server (portforward over WebSocket), one stream per connection; LOCAL 0 or ":REMOTE" picks a free port. Prints "Forwarding from 127.0.0.1:LOCAL -> REMOTE" for each; runs until interrupted',
        positionals: [POD, { name: "[LOCAL:]REMOTE", variadic: true }],
      },
      { name: "stop", summary: "stop a container (SIGTERM, SIGKILL after SEC; default 10)", positionals: [CTR], options: [{ ...TIMEOUT, help: "seconds before SIGKILL (default 10)" }] },
      { name: "rm", summary: "remove a container", positionals: [CTR] },
      { name: "stopp", summary: "stop a pod and its containers", positionals: [POD] },
      { name: "rmp", summary: "remove a pod and its containers", positionals: [POD] },
    ],
  },
  {
    name: "conformance",
    synopsis: "--shim PATH",
    summary: "run the conformance checks against any shim v2 binary (--compare A B)",
    usages: ["--shim PATH [--profile runc|shimlab] [--junit FILE] [--json FILE] [--only REGEX]", "--compare SHIM_A SHIM_B [--profile-a NAME] [--profile-b NAME] [--json FILE] [--only REGEX]", "--list [--only REGEX]"],
    description: () => {
      // The help names where the contract is on this machine: an installed copy has no checkout around it,
      // so "docs/contract/" alone would leave its reader guessing relative to what.
      return `Plays containerd against any shim v2 binary (no containerd runs) and checks the
binary contract, the Task API and the event rules. Each check cites its rule by
id and entry in shimlab's shim v2 contract, e.g.
  rule: ${citation("kill.unknown-container")}
The path is relative to shimlab's directory; here the contract is
  ${contractDir()}/README.md
and its HTML form (built by npm run build)
  ${contractHtmlDir()}/README.html`;
    },
    options: [
      { name: "shim", type: "string", metavar: "PATH", help: "the shim binary to check" },
      { name: "compare", type: "string", metavar: "SHIM_A SHIM_B", help: "check two shims and print where they differ (SHIM_B follows SHIM_A)" },
      { name: "profile", type: "string", metavar: "runc|shimlab", help: "where the shim differs from runc's on purpose (default: guessed from the name)" },
      { name: "profile-a", type: "string", metavar: "NAME", help: "--compare: SHIM_A's profile" },
      { name: "profile-b", type: "string", metavar: "NAME", help: "--compare: SHIM_B's profile" },
      { name: "junit", type: "string", metavar: "FILE", help: "write a JUnit XML report" },
      { name: "json", type: "string", metavar: "FILE", help: "write a JSON report" },
      { name: "only", type: "string", metavar: "REGEX", help: "only the checks whose group/name matches" },
      { name: "list", type: "boolean", help: "print every check with its rules" },
    ],
    positionals: [{ name: "SHIM_B", optional: true, help: "with --compare, the second shim" }],
    notes: () =>
      "Profiles state where a shim differs from runc's on purpose (pids, Checkpoint, error codes); the\ndefault is guessed from the binary's name. Needs root, runc and busybox-static. Exit status 0 only\nwhen no check failed and no process outlived the clean-up (with --compare: for both shims).",
  },
  {
    name: "scenario",
    synopsis: "run|validate|list",
    summary: "YAML fault scenarios: run them, with verdicts and JSON/JUnit reports",
    subcommands: [
      {
        name: "run",
        summary: "run scenarios against shimlab with the mock agent (root, runc, busybox-static)",
        positionals: [{ name: "FILE|DIR", optional: true, variadic: true, help: "scenario files or directories (default: shimlab's scenarios/)" }],
        options: [
          { name: "json", type: "string", metavar: "FILE", help: "write a JSON report (results, histories, events)" },
          { name: "junit", type: "string", metavar: "FILE", help: "write a JUnit XML report" },
          { name: "mutant", type: "string", multiple: true, metavar: "NAME", help: "run with shimlab given a known bug, one of the mutants below" },
          { name: "history", type: "boolean", help: "print each scenario's operation history" },
          { name: "quiet", short: "q", type: "boolean", help: "only the verdicts" },
        ],
      },
      { name: "validate", summary: "check scenario files against the schema", positionals: [{ name: "FILE|DIR", optional: true, variadic: true }] },
      { name: "list", summary: "name each scenario and the bug it reproduces", positionals: [{ name: "FILE|DIR", optional: true, variadic: true }] },
    ],
    notes: () => {
      return `mutants: ${Object.keys(MUTANTS).join(", ")}

A failing verdict names each broken rule as id (docs/contract/<page>.md#id), a path
relative to shimlab's directory: here ${contractDir()}.`;
    },
  },
  {
    name: "factory",
    synopsis: "run | start | stop | status",
    summary: "warm sandboxes: a pool of booted agents that new sandboxes take instead of booting their own ([factory] enable in the shim's config)",
    description: () =>
      "As Kata's VM factory keeps booted VMs, the factory keeps booted host agents. A shim whose\nconfiguration says [factory] enable = true takes one over the factory's socket as its sandbox\nstarts, and boots its own when the factory is gone or its pool empty. An agent serves one\nsandbox; once handed out it lives as long as its shim, whatever becomes of the factory.",
    subcommands: [
      { name: "run", summary: "serve in the foreground until SIGTERM (a systemd unit's ExecStart: deploy/shimlab-factory.service)", options: FACTORY_OPTIONS },
      { name: "start", summary: "run it in the background; returns once its pool is full", options: [...FACTORY_OPTIONS, { name: "no-wait", type: "boolean", help: "return as soon as it answers, before the pool is full" }] },
      { name: "stop", summary: "stop it and its pooled agents (agents it handed out are their shims' and live on)", options: FACTORY_OPTIONS },
      { name: "status", summary: "its pool and counts (exit 1 when none answers)", options: [...FACTORY_OPTIONS, { name: "json", type: "boolean", help: "as JSON" }] },
    ],
  },
  {
    name: "image",
    synopsis: "build [--kernel] | status",
    summary: "build the QEMU guest image sandboxes boot (they never build it); --kernel first builds shimlab's guest kernel",
    subcommands: [
      {
        name: "build",
        summary: "build (or find cached) the QEMU guest image, write the manifest sandboxes read, and print where it is",
        options: [
          {
            name: "kernel",
            type: "boolean",
            help: "build shimlab's guest kernel first (from /usr/src/linux-source-*.tar.xz: apt-get install linux-source-6.1 bc bison flex libelf-dev; a few minutes, once), then the image for it",
          },
          { name: "debian-kernel", type: "boolean", help: "the image for Debian's kernel (linux-image-amd64) even when shimlab's is built" },
          { name: "cache-dir", type: "string", metavar: "DIR", help: "the cache (default SHIMLAB_CACHE_DIR, else /var/cache/shimlab)" },
          { name: "no-runc", type: "boolean", help: 'no runc in the guest (for [qemu] guest_runtime = "host")' },
          { name: "layout", type: "string", choices: ["share", "initramfs"], help: "/usr on a read-only 9p share (default) or inside the initramfs" },
          { name: "compression", type: "string", choices: ["lz4", "gzip", "none"], help: "the initramfs's (default lz4 where installed, else gzip)" },
          { name: "json", type: "boolean", help: "print the image as JSON" },
        ],
      },
      {
        name: "status",
        summary: "whether the image each [qemu] guest_kernel/guest_usr would boot is built and fresh, as a sandbox checks it (exit 1 when the default's is not)",
        options: [
          { name: "cache-dir", type: "string", metavar: "DIR", help: "the cache (default SHIMLAB_CACHE_DIR, else /var/cache/shimlab)" },
          { name: "json", type: "boolean", help: "print the status as JSON" },
        ],
      },
    ],
  },
  {
    name: "install",
    summary: "put the shim on this node and in containerd's config",
    description: () =>
      "Installs containerd-shim-shimlab-v2 (a launcher running this checkout's build)\nin <prefix>/bin, shimlab's config in <prefix>/share/shimlab, and a runtime in\ncontainerd's config (version 2 for containerd 1.6/1.7, version 3 for 2.x), with\na backup of the config. Running it again changes nothing; uninstall undoes it.",
    options: [
      ...INSTALL_COMMON,
      { name: "runtime-name", type: "string", metavar: "NAME", help: "CRI runtime handler name (default shimlab)" },
      { name: "shim-config", type: "string", metavar: "FILE", help: "shimlab's TOML config to use instead of the default one" },
      { name: "config-version", type: "string", metavar: "2|3", help: "version for a new containerd config (default: from containerd --version)" },
      { name: "pod-annotation", type: "string", multiple: true, metavar: "GLOB", help: "pass pod annotations matching GLOB to the shim" },
      {
        name: "sandboxer",
        type: "string",
        choices: ["shim", "podsandbox"],
        help: "containerd 2.x: pods made by the shim's Sandbox API (no pause container; the runtime then names a launcher of its own carrying the config, containerd-shim-shimlab-sandboxer-v2) or by CRI's pause container (2.x's default when absent)",
      },
      { name: "copy", type: "boolean", help: "copy Node and the build to <prefix>/lib/shimlab (the node needs no checkout)" },
    ],
  },
  {
    name: "uninstall",
    summary: "take the shim out of containerd's config and this node (what install did)",
    options: INSTALL_COMMON,
  },
  {
    name: "peers",
    synopsis: "list|fetch",
    summary: "the real peers the suite runs against (containerd 1.6/1.7/2.1, runc, Go programs)",
    subcommands: [
      { name: "list", summary: "name each peer and what it is" },
      { name: "fetch", summary: "fetch and build the named peers (all when none is named)", positionals: [{ name: "NAME", optional: true, variadic: true }] },
    ],
    notes: () => {
      return `Fetches and builds into ${peersCacheDir()} (SHIMLAB_CACHE_DIR/peers); nothing is installed.`;
    },
  },
];
