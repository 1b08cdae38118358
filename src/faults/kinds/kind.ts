// What a fault kind is: one scope a scenario may name, with everything about it
// in one file — its keys (a zod schema, from which the scenario format, its
// JSON Schema and its types are made), the checks a schema cannot express,
// and how it acts: carried to the shim when it starts (environment, bundle
// annotations) or activated and healed by the runner while the scenario runs.
import { z } from "zod";
import { identifier, window } from "../../scenarios/format-values";
import type { Toxic } from "../toxics";

/** Keys every fault has; a window is accepted everywhere so that the loader can say why a kind fixed at shim start refuses it. */
export const faultBase = {
  name: identifier.meta({ description: "the fault's name, for inject/heal steps and the report" }),
  window: window.optional(),
};

/** Where a problem is, relative to the fault (keys and indices), and what it is. */
export interface FaultCheck {
  /** The scenario's containers, by id. */
  containers: readonly string[];
  /** Whether the scenario runs a factory of warm sandboxes. */
  factory?: boolean;
  bad(path: (string | number)[], message: string): void;
}

/** What a fault fixed at shim start adds to the shim's launch: one entry of an environment variable, or one bundle annotation. */
export type Launch =
  /** An item of a JSON list in this variable. */
  | { env: string; item: unknown }
  /** A key of a JSON object in this variable. */
  | { env: string; key: string; value: string }
  /** An annotation on the pod's sandbox bundle (containerd's failpoint shim reads these). */
  | { annotation: string; value: string };

/** The containerd side a timed fault acts on (the runner's World). */
export interface FaultWorld {
  forwardFault: { action: "unavailable" | "delay"; ms: number } | null;
  releaseForward(): void;
  addLinkToxic(t: Toxic): void;
  removeLinkToxic(name: string): void;
  signal(target: string, sig: NodeJS.Signals): Promise<number[]>;
  /** What the scenario's factory link does to the next take. */
  factoryFault: "die-mid-handout" | "die-mid-daemon-handout" | null;
  containerdUp(): Promise<void>;
}

interface KindCommon<S extends z.ZodObject> {
  schema: S;
  /** What it does, for the fault table in scenarios/README.md. */
  doc: string;
  /** What carries it, for the same table: the variable, the annotation or the harness. */
  carrier: string;
  /** Only the emulator driver can apply it (a real containerd's side cannot be faulted). */
  emulatorOnly?: boolean;
  /**
   * Only the failpoint shim (`containerd-shim-shimlab-fp-v2`) applies it: the production shim
   * ignores its variable or annotation, so a scenario with one runs the fp shim.
   */
  fpShim?: boolean;
  /** containerd reaches the shim through a fault proxy when a scenario has one. */
  needsShimLinkProxy?: boolean;
  /** Problems a schema cannot see. */
  check?(f: z.infer<S>, c: FaultCheck): void;
}

/** Fixed when the shim starts: it goes into the shim's environment or its bundle, and counts time it. */
export interface LaunchKind<S extends z.ZodObject> extends KindCommon<S> {
  timed: false;
  launch(f: z.infer<S>): Launch;
}

/** Active from the start, a step or a time, for a while or until healed: the runner applies it to the world. */
export interface TimedKind<S extends z.ZodObject> extends KindCommon<S> {
  timed: true;
  /** Applies it; says what it did, for the fault timeline. */
  activate(f: z.infer<S>, w: FaultWorld): Promise<string>;
  heal(f: z.infer<S>, w: FaultWorld): Promise<void>;
}

export type FaultKind<S extends z.ZodObject = z.ZodObject> = LaunchKind<S> | TimedKind<S>;

/** The kind's literal scope, read from its schema. */
export function scopeOf(k: FaultKind): string {
  return (k.schema.shape.scope as z.ZodLiteral<string>).value;
}
