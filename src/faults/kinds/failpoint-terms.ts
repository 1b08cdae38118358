// containerd's failpoint grammar as a scenario value (task-rpc and agent-rpc
// faults): a string the shim's or the agent's failpoint table will parse, so
// a bad one is refused when the file is read, not when the method is called.
import { z } from "zod";
import { parseTerms } from "../failpoint";

const GRAMMAR = "containerd's grammar: <count>*<off|error(msg)|panic(msg)|delay(ms)>[-><more>]";
const EXAMPLE = "1*off->1*error(please retry)";

export const failpointTerms = z
  .string()
  .superRefine((v, ctx) => {
    try {
      parseTerms(v);
    } catch (e) {
      ctx.addIssue({ code: "custom", message: `${(e as Error).message} (${GRAMMAR})`, input: v });
    }
  })
  .meta({ description: `failpoint terms in ${GRAMMAR}; e.g. ${EXAMPLE}` });
