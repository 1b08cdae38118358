// Stdio through client fifos and ptys, log files and logging binaries (contract §5 "Stdio";
// containerd's pkg/process/io.go for file:// and binary://).
import fs from "node:fs";
import path from "node:path";
import { CONTRACT, type Check } from "./types";
import { STATUS_NAME, sleep } from "./context";

const r = (s: string) => `${CONTRACT} ${s}`;
const W = { timeoutMs: 15_000 };

export const stdioChecks: Check[] = [
  {
    name: "stdout-to-fifo",
    group: "stdio",
    rule: r("§5 Stdio: the shim copies the process's stdout into the client's stdout fifo"),
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "echo one; echo two"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      await h.io!.drained(100);
      ctx.equal("stdout", h.io!.out(), "one\ntwo\n");
    },
  },
  {
    name: "stderr-separate-fifo",
    group: "stdio",
    rule: r("§5 Stdio: stderr goes to its own fifo, apart from stdout"),
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "echo out; echo err >&2"] });
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      await h.io!.drained(100);
      ctx.equal("[stdout, stderr]", [h.io!.out(), h.io!.err()], ["out\n", "err\n"]);
    },
  },
  {
    name: "stdin-closeio-eof",
    group: "stdio",
    rule: r("§5 Stdio: stdin is copied into the process; CloseIO{stdin} lets EOF reach it once the client closes"),
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/cat"], stdin: true });
      h.io!.write("hello stdin\n");
      await sleep(200);
      h.io!.closeStdin();
      await ctx.ok("CloseIO stdin", h.task.CloseIO({ id: h.id, stdin: true }));
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      ctx.equal("cat exit_status", w.exitStatus, 0);
      await h.io!.drained(100);
      ctx.equal("stdout", h.io!.out(), "hello stdin\n");
    },
  },
  {
    name: "null-io-runs",
    group: "stdio",
    rule: r("§5 Stdio: empty stdio paths mean null IO (CRI's sandbox task); the task still runs and exits"),
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "echo nowhere; exit 2"], nullIo: true });
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      ctx.equal("exit_status", w.exitStatus, 2);
      const st = await ctx.ok("State", h.task.State({ id: h.id }));
      ctx.equal("[status, stdin, stdout, stderr]", [STATUS_NAME[st.status], st.stdin, st.stdout, st.stderr], ["STOPPED", "", "", ""]);
    },
  },
  {
    name: "stdout-to-file",
    group: "stdio",
    rule: r("§5 Stdio file://PATH (ctr --log-uri, cio.LogFile): the shim creates PATH's directory and appends stdout and stderr to it"),
    async run(ctx) {
      const file = path.join(ctx.scratch(), "not-yet", "task.log");
      fs.mkdirSync(path.dirname(path.dirname(file)), { recursive: true });
      fs.writeFileSync(path.join(ctx.scratch(), "keep"), ""); // the directory exists, its subdirectory does not
      const uri = `file://${file}`;
      const h = await ctx.running({ args: ["/bin/sh", "-c", "echo out; echo err >&2; exit 4"], stdout: uri, stderr: uri });
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      ctx.equal("exit_status", w.exitStatus, 4);
      const lines = await ctx.until("both lines in the log file", () => {
        const got = fs.existsSync(file) ? fs.readFileSync(file, "utf8").split("\n").filter(Boolean).sort() : [];
        return got.length >= 2 && got;
      });
      ctx.equal("log file lines (sorted)", lines, ["err", "out"]);
      const st = await ctx.ok("State", h.task.State({ id: h.id }));
      ctx.equal("State.stdout", st.stdout, uri);
    },
  },
  {
    name: "stdout-to-binary-logger",
    group: "stdio",
    rule: r(
      "§5 Stdio binary://PATH?K=V: the shim runs PATH with arguments K V, only CONTAINER_ID and CONTAINER_NAMESPACE in its environment, stdout on fd 3 and stderr on fd 4, and starts the process only once the binary closed fd 5",
    ),
    async run(ctx) {
      const dir = ctx.scratch();
      const logger = path.join(dir, "logger.sh");
      // The process checks the marker the logger leaves (in the shared rootfs) just before saying it is ready.
      const marker = `tmp/${ctx.prefix}-logger-ready`;
      fs.rmSync(path.join(ctx.rootfs, marker), { force: true });
      fs.writeFileSync(
        logger,
        [
          "#!/bin/sh",
          // the environment exactly as exec(2) gave it, and the arguments
          `/usr/bin/tr '\\0' '\\n' < /proc/$$/environ | /usr/bin/sort > ${dir}/env`,
          `echo "$*" > ${dir}/args`,
          `/bin/cat <&3 5>&- > ${dir}/out &`, // fd 5 closed in the copies too, or the shim waits for them
          `/bin/cat <&4 5>&- > ${dir}/err &`,
          "/bin/sleep 0.5",
          `: > ${path.join(ctx.rootfs, marker)}`,
          "exec 5>&-",
          "wait",
          "",
        ].join("\n"),
        { mode: 0o755 },
      );
      const uri = `binary://${logger}?level=debug`;
      try {
        const h = await ctx.running({ args: ["/bin/sh", "-c", `test -e /${marker} && echo after-ready || echo before-ready; echo err >&2`], stdout: uri, stderr: uri });
        await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
        const read = (f: string) => (fs.existsSync(path.join(dir, f)) ? fs.readFileSync(path.join(dir, f), "utf8") : "");
        await ctx.until("the logger's copies of stdout and stderr", () => read("out") && read("err"));
        ctx.equal("[fd 3, fd 4] as the logger saw them", [read("out"), read("err")], ["after-ready\n", "err\n"]);
        ctx.equal("the logger's environment", read("env"), `CONTAINER_ID=${h.id}\nCONTAINER_NAMESPACE=${ctx.emu.namespace}\n`);
        ctx.equal("the logger's arguments", read("args"), "level debug\n");
      } finally {
        fs.rmSync(path.join(ctx.rootfs, marker), { force: true });
      }
    },
  },
  {
    name: "tty-output",
    group: "tty",
    rule: r("§5 Stdio terminal=true: the process runs on a pty whose output reaches the stdout fifo; State.terminal is true"),
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "tty; exit 0"], terminal: true });
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      ctx.equal("exit_status", w.exitStatus, 0);
      await h.io!.drained(100);
      ctx.expect(/\/dev\/pts\/\d+/.test(h.io!.out()), `tty printed ${JSON.stringify(h.io!.out())}, not a pty`);
      const st = await ctx.ok("State", h.task.State({ id: h.id }));
      ctx.equal("terminal", st.terminal, true);
    },
  },
  {
    name: "tty-resize",
    group: "tty",
    rule: r("§5 Stdio: ResizePty sets the pty's window size"),
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "read line; stty size"], terminal: true });
      await sleep(200);
      await ctx.ok("ResizePty", h.task.ResizePty({ id: h.id, width: 101, height: 37 }));
      h.io!.write("go\r");
      await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      await h.io!.drained(100);
      ctx.expect(/37 101/.test(h.io!.out()), `stty size printed ${JSON.stringify(h.io!.out())}, want "37 101"`);
    },
  },
  {
    name: "tty-exec",
    group: "tty",
    rule: r("§5 Stdio: ExecProcessRequest.terminal gives the exec its own pty"),
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sleep", "300"] });
      const io = await ctx.exec(h, "tt", ["/bin/sh", "-c", "tty"], { stdio: true, terminal: true });
      await ctx.ok("Start exec", h.task.Start({ id: h.id, execId: "tt" }));
      await ctx.ok("Wait exec", h.task.Wait({ id: h.id, execId: "tt" }, W));
      await io!.drained(100);
      ctx.expect(/\/dev\/pts\/\d+/.test(io!.out()), `exec tty printed ${JSON.stringify(io!.out())}`);
    },
  },
];
