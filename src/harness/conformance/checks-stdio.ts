// Stdio through client fifos and ptys, log files and logging binaries (docs/contract/stdio.md;
// containerd's pkg/process/io.go for file:// and binary://).
import fs from "node:fs";
import path from "node:path";
import type { Check } from "./types";
import { sleep } from "./context";
import { Status_names } from "../../gen/containerd.v1.types";

const W = { timeoutMs: 15_000 };

export const stdioChecks: Check[] = [
  {
    name: "stdout-to-fifo",
    group: "stdio",
    rule: "stdio.stdout-fifo",
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
    rule: "stdio.stderr-separate",
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
    rule: "stdio.stdin-closeio",
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
    rule: "stdio.null-io",
    async run(ctx) {
      const h = await ctx.running({ args: ["/bin/sh", "-c", "echo nowhere; exit 2"], nullIo: true });
      const w = await ctx.ok("Wait", h.task.Wait({ id: h.id }, W));
      ctx.equal("exit_status", w.exitStatus, 2);
      const st = await ctx.ok("State", h.task.State({ id: h.id }));
      ctx.equal("[status, stdin, stdout, stderr]", [Status_names[st.status], st.stdin, st.stdout, st.stderr], ["STOPPED", "", "", ""]);
    },
  },
  {
    name: "stdout-to-file",
    group: "stdio",
    rule: "stdio.file-uri",
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
    rule: "stdio.binary-logger",
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
    rule: "tty.output",
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
    rule: "tty.resize",
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
    rule: "tty.exec",
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
