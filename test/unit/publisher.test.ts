// The shim's event publisher against a containerd that goes away and comes
// back: what a flush (the shim's last act before it exits) delivers.
import { describe, it, expect, afterEach } from "vitest";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { Server } from "../../src/ttrpc";
import { Events, type ForwardRequest } from "../../src/gen/containerd.services.events.ttrpc.v1";
import { TaskDelete, TaskExit } from "../../src/gen/containerd.events";
import { Publisher } from "../../src/shim/publisher";
import type { Logger } from "../../src/util/logger";

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A logger that keeps the publisher's retry warnings. */
function retryLog(): { logger: Logger; retries: string[] } {
  const retries: string[] = [];
  const logger: Logger = {
    debug() {},
    info() {},
    warn(msg, f) {
      if (msg.startsWith("publishing event failed")) retries.push(String(f?.topic));
    },
    error() {},
    child: () => logger,
  };
  return { logger, retries };
}

/** containerd's events endpoint: Events/Forward, recording each envelope's topic. */
async function serveEvents(sock: string): Promise<string[]> {
  const topics: string[] = [];
  const server = new Server();
  server.register(Events, {
    Forward: (req: ForwardRequest) => {
      topics.push(req.envelope?.topic ?? "");
      return {};
    },
  });
  const l = net.createServer();
  server.serve(l);
  await new Promise<void>((r) => l.listen(sock, r));
  cleanups.push(() => server.close());
  return topics;
}

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

function setup(): { sock: string; publisher: Publisher; retries: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "publisher-test-"));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, "containerd.sock.ttrpc");
  const { logger, retries } = retryLog();
  // A backoff far longer than any flush here: only a retry the flush makes can deliver.
  const publisher = new Publisher({ address: sock, namespace: "default", logger, retryDelayMs: 60_000 });
  cleanups.push(() => publisher.close());
  return { sock, publisher, retries };
}

const exit = { containerId: "c", id: "c", pid: 42, exitStatus: 3 };

describe("event publisher", () => {
  it("a flush retries an event that failed while containerd was down without waiting out its backoff, in order", async () => {
    const { sock, publisher, retries } = setup();
    publisher.publish("/tasks/exit", TaskExit, exit);
    await until(() => retries.length === 1);
    // containerd is back, and the task's deletion queues behind the exit.
    const topics = await serveEvents(sock);
    publisher.publish("/tasks/delete", TaskDelete, { containerId: "c", pid: 42, exitStatus: 3 });

    await publisher.flush(2_000);
    expect(topics).toEqual(["/tasks/exit", "/tasks/delete"]);
  });

  it("a flush while containerd stays away retries once, then gives up at its timeout", async () => {
    const { publisher, retries } = setup();
    publisher.publish("/tasks/exit", TaskExit, exit);
    await until(() => retries.length === 1);

    await publisher.flush(300);
    expect(retries).toEqual(["/tasks/exit", "/tasks/exit"]);
  });
});
