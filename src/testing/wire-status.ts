// What a refusal looks like to containerd: the status code on the wire. Tests
// of the core assert on this, never on the class of what was thrown, so that
// they hold whatever the code throws (RpcError, an errdefs kind, a typed state
// error) to the one thing containerd acts on.
import { duplexPair } from "node:stream";
import { Client } from "../ttrpc/client";
import { Server } from "../ttrpc/server";
import { Health } from "../gen/grpc";
import { codeName } from "../ttrpc/status";

/** "OK", or the code's name ("NotFound", "FailedPrecondition"…), of a call made over ttrpc. */
export function statusOf(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => "OK",
    (e: unknown) => {
      const code = (e as { code?: unknown })?.code;
      if (typeof code !== "number") throw e; // not a status from the wire: the test should see it as it is
      return codeName[code] ?? `Code(${code})`;
    },
  );
}

/**
 * The status containerd would read for what fn throws (or "OK"): fn runs as a
 * ttrpc handler and the code is read off the wire, as the shim's server would
 * send it. For code below the Task service (a state machine, a container).
 */
export async function wireStatus(fn: () => unknown): Promise<string> {
  const [a, b] = duplexPair();
  const server = new Server();
  server.register(Health, {
    Check: async () => {
      await fn();
      return { status: 1 };
    },
    Version: () => ({ grpcVersion: "", agentVersion: "" }),
  });
  server.handle(a);
  const client = new Client(b);
  try {
    return await statusOf(client.service(Health).Check({ service: "" }));
  } finally {
    // One end's destroy does not reach the other in a duplexPair.
    client.close();
    a.destroy();
  }
}

/** The status and message of a call made over ttrpc, for the refusals whose wording containerd's users meet. */
export function refusalOf(call: Promise<unknown>): Promise<string> {
  return call.then(
    () => "OK",
    (e: unknown) => {
      const code = (e as { code?: unknown })?.code;
      if (typeof code !== "number") throw e;
      return `${codeName[code] ?? `Code(${code})`}: ${(e as Error).message}`;
    },
  );
}
