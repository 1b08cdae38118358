// Wire faults in toxiproxy's vocabulary, for unix-socket links (toxiproxy
// itself only proxies TCP): latency, bandwidth, slicer, timeout, reset_peer,
// limit_data, slow_close; and, because ttrpc is framed, three frame-aware
// ones: corrupt_frame, oversize_frame, bad_stream_id.
//
// A toxic acts on one direction (`stream`: upstream = client→server,
// downstream = server→client) with a probability (`toxicity`, 0..1) drawn
// once per connection, as toxiproxy does.

export type Direction = "upstream" | "downstream";

export type ToxicSpec =
  | { type: "latency"; latency: number; jitter?: number }
  | { type: "bandwidth"; rate: number }
  | { type: "slicer"; average_size: number; size_variation?: number; delay?: number }
  | { type: "timeout"; timeout: number }
  | { type: "reset_peer"; timeout?: number }
  | { type: "limit_data"; bytes: number }
  | { type: "slow_close"; delay: number }
  | { type: "corrupt_frame"; every?: number }
  | { type: "oversize_frame"; every?: number }
  | { type: "bad_stream_id"; every?: number };

export interface Toxic {
  name?: string;
  stream: Direction;
  toxicity?: number;
  spec: ToxicSpec;
}

export const TOXIC_TYPES = ["latency", "bandwidth", "slicer", "timeout", "reset_peer", "limit_data", "slow_close", "corrupt_frame", "oversize_frame", "bad_stream_id"] as const;

const need = (ok: boolean, msg: string) => {
  if (!ok) throw new Error(msg);
};

/** Checks a toxic's attributes; the message names what is wrong. */
export function validateToxic(t: Toxic): void {
  need(t.stream === "upstream" || t.stream === "downstream", `stream must be "upstream" or "downstream", not ${JSON.stringify(t.stream)}`);
  need(t.toxicity === undefined || (t.toxicity >= 0 && t.toxicity <= 1), "toxicity must be between 0 and 1");
  const s = t.spec as Record<string, unknown> & { type: string };
  need((TOXIC_TYPES as readonly string[]).includes(s.type), `unknown toxic type ${JSON.stringify(s.type)} (want one of ${TOXIC_TYPES.join(", ")})`);
  const num = (k: string, required: boolean) => {
    const v = s[k];
    if (v === undefined) return need(!required, `${s.type} needs ${k}`);
    need(typeof v === "number" && v >= 0 && Number.isFinite(v), `${s.type}.${k} must be a non-negative number`);
  };
  switch (s.type) {
    case "latency":
      num("latency", true);
      num("jitter", false);
      break;
    case "bandwidth":
      num("rate", true);
      need((s.rate as number) > 0, "bandwidth.rate must be more than 0 KB/s");
      break;
    case "slicer":
      num("average_size", true);
      num("size_variation", false);
      num("delay", false);
      need((s.average_size as number) > 0, "slicer.average_size must be more than 0");
      break;
    case "timeout":
      num("timeout", true);
      break;
    case "reset_peer":
      num("timeout", false);
      break;
    case "limit_data":
      num("bytes", true);
      break;
    case "slow_close":
      num("delay", true);
      break;
    default:
      num("every", false);
  }
}
