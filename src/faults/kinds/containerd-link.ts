// containerd-link: a toxic on the ttrpc link from containerd to the shim
// (containerd dials the shim through a fault proxy).
import { z } from "zod";
import { faultBase, type TimedKind } from "./kind";
import { checkToxic, toToxic, toxicSchema } from "./toxic";

const schema = z.strictObject({ ...faultBase, scope: z.literal("containerd-link"), toxic: toxicSchema });

export const containerdLinkFault: TimedKind<typeof schema> = {
  schema,
  timed: true,
  emulatorOnly: true,
  needsShimLinkProxy: true,
  doc: "a toxic on the containerd→shim ttrpc link",
  carrier: "the harness (a fault proxy in front of the shim's socket)",
  check: (f, c) => checkToxic(f.name, f.toxic, c),
  async activate(f, w) {
    w.addLinkToxic(toToxic(f.name, f.toxic));
    return `toxic ${f.toxic.type} on containerd→shim`;
  },
  async heal(f, w) {
    w.removeLinkToxic(f.name);
  },
};
