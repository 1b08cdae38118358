// The vocabulary of shimlab's shim v2 contract: a rule is one obligation of a
// shim (or one behaviour of containerd a shim must meet), written once as
// data. Checks cite it by id, the docs print it, traces and scenario verdicts
// link to it; the id is what stays stable when the wording improves.

/** MUST: containerd or its clients break without it. SHOULD: expected, and shimlab holds it, but a shim can get by. */
export type Level = "MUST" | "SHOULD";

/**
 * Where a rule comes from, so a reader can weigh it:
 * - runtime-v2: containerd's runtime v2 documentation asks for it;
 * - containerd: containerd's code depends on it (seen failing without it);
 * - runc-shim: the reference shim (containerd-shim-runc-v2) behaves so, and clients rely on it;
 * - shimlab: shimlab's own choice where the others leave room (said why).
 */
export type Source = "runtime-v2" | "containerd" | "runc-shim" | "shimlab";

/**
 * How a rule is held to:
 * - checked: a conformance check or a scenario check cites it (a test proves each one is cited);
 * - ordering: the event-ordering checker (traces, scenarios' event-order) tests it on every run;
 * - prose: documentation on purpose, no single check can observe it (said in the rule's `why`).
 */
export type Kind = "checked" | "ordering" | "prose";

export interface RuleDef {
  /** `<area>.<name>`, lower-case: the anchor in the docs and what every citation names. */
  readonly id: string;
  /** The generated block (of one page) the rule is printed in. */
  readonly section: string;
  readonly level: Level;
  readonly source: Source;
  readonly kind: Kind;
  /** The rule, in one or two sentences. Markdown inline syntax allowed. */
  readonly text: string;
  /** What breaks without it: the containerd behaviour that sets it. */
  readonly why?: string;
  /** Ordering rules: the event topics at which the checker tests it. */
  readonly topics?: readonly string[];
}

export interface Section {
  readonly id: string;
  /** Page file name under docs/contract/, without .md. */
  readonly page: string;
  readonly title: string;
}
