// The command runner reapers use unless a test gives them another. child_process
// costs a few ms to load, and `delete` (run after every task deletion) usually
// has nothing to reap: it is loaded on the first command.
import type { execFileSync as ExecFileSync } from "node:child_process";
import type { CommandRunner } from "./types";

export const runCommand: CommandRunner = (cmd, args) => {
  const execFileSync = (require("node:child_process") as { execFileSync: typeof ExecFileSync }).execFileSync;
  // stderr piped, never inherited: a failure's complaint is the caller's to word (execFileSync puts it on the error).
  return execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"] }).toString();
};

/** What a failed command complained: its stderr, else the error's message. */
export function complaint(e: unknown): string {
  const stderr = (e as { stderr?: Buffer | string }).stderr?.toString().trim();
  return stderr || (e as Error)?.message || String(e);
}

/** The first line of it, for a warning. */
export function firstLine(e: unknown): string {
  return complaint(e).split("\n")[0];
}
