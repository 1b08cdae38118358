// The small values scenarios/*.yaml repeats in many places (identifiers,
// event topics, process targets, signals, time windows), declared once so that
// the steps and every fault kind mean the same thing by them. Each pattern
// carries its own wording: format-errors.ts prints it as "expected <text>".
import { z } from "zod";

/** Letters and digits, joined by '.', '_' or '-'. */
export const ID_PATTERN = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

export const identifier = z.string().regex(ID_PATTERN, { error: "an identifier (letters, digits, '.', '_', '-')" }).meta({ id: "identifier" });

export const topic = z
  .string()
  .regex(/^\/tasks\/[a-z-]+$/, { error: "a task event topic such as /tasks/exit" })
  .meta({ id: "topic", description: "a task event topic such as /tasks/exit" });

export const posInt = z.int().min(1);
export const nonNeg = z.int().min(0);

/** Who a process fault or step hits. */
export const target = z
  .string()
  .regex(/^(shim|agent|vm|containerd|factory|warm-agent|init:[A-Za-z0-9._-]+)$/, { error: "shim, agent, vm, containerd, factory, warm-agent or init:<container>" })
  .meta({ id: "target", description: "shim, agent, vm, containerd, factory, warm-agent or init:<container>; vm is the QEMU process, factory the scenario's factory of warm sandboxes, warm-agent the next warm sandbox in its pool (an agent, or a QEMU VM)" });

/** A signal by number or by name. */
export const signal = z.union([z.int().min(1).max(64), z.string().regex(/^SIG[A-Z0-9]+$/)], { error: "a signal number or name (SIGKILL)" }).meta({ id: "signal" });

/** When a timed fault is active: from a step's start or a time, for a while (default: until healed). */
export const window = z
  .strictObject({
    after: identifier.optional().meta({ description: "activate when the step with this id begins" }),
    at_ms: nonNeg.optional().meta({ description: "or this long after the run started" }),
    for_ms: posInt.optional().meta({ description: "heal after this long (default: never, until a heal step)" }),
  })
  .meta({ id: "window", description: "when a timed fault is active" });

export type Window = z.infer<typeof window>;
