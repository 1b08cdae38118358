// What the fuzzer feeds: the ttrpc frame reader and envelopes, and every
// request and response type of the services the shim and the mock agent serve
// or call. A target passes when it returns or throws a ProtoDecodeError; any
// other exception is a bug.
import { FrameReader, encodeFrame, MessageType } from "../ttrpc/channel";
import { ProtoDecodeError } from "../proto/wire";
import type { MessageCodec } from "../proto/message";
import * as ttrpc from "../gen/ttrpc";
import * as task from "../gen/containerd.task.v2";
import * as events from "../gen/containerd.events";
import * as evsvc from "../gen/containerd.services.events.ttrpc.v1";
import * as grpc from "../gen/grpc";
import * as cg from "../gen/io.containerd.cgroups.v1";
import * as boot from "../gen/containerd.runtime.bootstrap.v1";
import { parseStartInput } from "../shim/bootstrap";
import { ErrdefsError } from "../errdefs";
import type { ServiceDef } from "../ttrpc/service";
import { randomMessage } from "./generate";
import type { Rng } from "./random";

export interface Target {
  name: string;
  seed(r: Rng): Buffer;
  run(input: Buffer): void;
}

function codecsOf(...services: ServiceDef[]): MessageCodec<unknown, unknown>[] {
  const out = new Map<string, MessageCodec<unknown, unknown>>();
  for (const s of services) {
    for (const m of Object.values(s.methods)) {
      out.set(m.requestType.typeName, m.requestType);
      out.set(m.responseType.typeName, m.responseType);
    }
  }
  return [...out.values()];
}

export function messageTargets(): Target[] {
  const codecs = [
    ...codecsOf(task.Task, grpc.AgentService, grpc.Health, evsvc.Events),
    ttrpc.Request,
    ttrpc.Response,
    cg.Metrics,
    boot.BootstrapParams,
    boot.BootstrapResult,
    ...(Object.values(events) as unknown[]).filter((v): v is MessageCodec<unknown, unknown> => typeof v === "object" && v !== null && "typeName" in v),
  ];
  const seen = new Set<string>();
  return codecs
    .filter((c) => !seen.has(c.typeName) && seen.add(c.typeName))
    .map((c) => ({
      name: c.typeName,
      seed: (r: Rng) => c.encode(randomMessage(c, r)),
      run: (input: Buffer) => {
        try {
          const m = c.decode(input);
          // what decodes must encode again
          c.encode(m as never);
        } catch (e) {
          if (!(e instanceof ProtoDecodeError)) throw e;
        }
      },
    }));
}

/** The frame reader on a byte stream cut at random places. */
export function frameTarget(): Target {
  return {
    name: "ttrpc.FrameReader",
    seed: (r: Rng) => {
      const frames: Buffer[] = [];
      for (let i = 1 + r.int(4); i > 0; i--) {
        const req = ttrpc.Request.encode({ service: "containerd.task.v2.Task", method: r.pick(["State", "Create", "Wait"]), payload: r.bytes(r.int(40)) });
        frames.push(encodeFrame(1 + 2 * r.int(100), r.pick([MessageType.Request, MessageType.Response, MessageType.Data]), 0, req));
      }
      return Buffer.concat(frames);
    },
    run: (input: Buffer) => {
      const fr = new FrameReader();
      // split the input into a few reads
      const cuts = [0, input.length >> 2, input.length >> 1, input.length];
      for (let i = 0; i + 1 < cuts.length; i++) {
        fr.push(input.subarray(cuts[i], cuts[i + 1]), (e) => {
          if (e.kind === "frame" && e.header.type === MessageType.Request) {
            try {
              ttrpc.Request.decode(e.body);
            } catch (err) {
              if (!(err instanceof ProtoDecodeError)) throw err;
            }
          }
        });
      }
    },
  };
}

/** What containerd 2.x may write on `start`'s stdin: protobuf or JSON params, or an options Any. */
export function startStdinTarget(): Target {
  return {
    name: "shim start stdin",
    seed: (r: Rng) => {
      const p = { ...randomMessage(boot.BootstrapParams, r), instanceId: "c1", namespace: "ns" } as boot.BootstrapParamsInit;
      return r.pick([0, 1]) === 0 ? boot.BootstrapParams.encode(p) : Buffer.from(JSON.stringify(p));
    },
    run: (input: Buffer) => {
      try {
        parseStartInput(input, "c1", "ns");
      } catch (e) {
        // A clear refusal is the contract; anything else is a crash.
        if (!(e instanceof ErrdefsError) && !(e instanceof ProtoDecodeError)) throw e;
      }
    },
  };
}
