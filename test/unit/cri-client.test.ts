// The CRI client and codecs without containerd: field numbers pinned to
// cri-api's by their bytes, and a call round trip over gRPC on a unix socket.
import { describe, it, expect, afterAll } from "vitest";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as cri from "../../src/gen/runtime.v1";
import { CriClient } from "../../src/harness/cri/client";
import { Code, RpcError } from "../../src/ttrpc/status";
import { containerConfig, hostNetworkPod } from "../../src/harness/cri/pod";

const hex = (b: Buffer) => b.toString("hex");

describe("CRI v1 codecs", () => {
  it("put fields where cri-api's api.proto numbers them", () => {
    // runtime_handler = 2
    expect(hex(cri.RunPodSandboxRequest.encode({ runtimeHandler: "shimlab" }))).toBe("1207" + Buffer.from("shimlab").toString("hex"));
    // ExecSyncResponse stdout = 1, stderr = 2, exit_code = 3
    expect(hex(cri.ExecSyncResponse.encode({ stdout: Buffer.from("a"), stderr: Buffer.from("b"), exitCode: 3 }))).toBe("0a0161" + "120162" + "1803");
    // ExecSyncRequest container_id = 1, cmd = 2 (repeated), timeout = 3
    expect(hex(cri.ExecSyncRequest.encode({ containerId: "c", cmd: ["x", "y"], timeout: 5 }))).toBe("0a0163" + "120178" + "120179" + "1805");
    // ContainerStatus exit_code = 7, reason = 10
    expect(hex(cri.ContainerStatus.encode({ exitCode: 7, reason: "E" }))).toBe("3807" + "520145");
    // NamespaceOption network = 1, pid = 2 (NODE = 2, CONTAINER = 1)
    expect(hex(cri.NamespaceOption.encode({ network: cri.NamespaceMode.NODE, pid: cri.NamespaceMode.CONTAINER }))).toBe("08021001");
    // PodSandboxConfig linux = 8 → LinuxPodSandboxConfig security_context = 2 → namespace_options = 1
    const pod = cri.PodSandboxConfig.decode(cri.PodSandboxConfig.encode(hostNetworkPod({ name: "p" })));
    expect(pod.linux?.securityContext?.namespaceOptions?.network).toBe(cri.NamespaceMode.NODE);
    expect(hex(cri.PodSandboxConfig.encode({ linux: { securityContext: { namespaceOptions: { network: 2 } } } }))).toBe("4206" + "1204" + "0a02" + "0802");
    // ContainerConfig image = 2 → ImageSpec image = 1; command = 3; linux = 15
    expect(hex(cri.ContainerConfig.encode({ image: { image: "i" }, command: ["c"] }))).toBe("1203" + "0a0169" + "1a0163");
    const cc = cri.ContainerConfig.encode(containerConfig({ name: "n", image: "i", pid: "pod" }));
    expect(cc.includes(Buffer.from([0x7a]))).toBe(true); // field 15, wire type 2
  });
});

describe("CriClient over gRPC", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "shimlab-cri-unit-"));
  const sock = path.join(dir, "cri.sock");
  let server: grpc.Server | null = null;

  afterAll(async () => {
    await new Promise<void>((r) => (server ? server.tryShutdown(() => r()) : r()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("calls RuntimeService methods by their full names and maps gRPC errors to RpcError", async () => {
    server = new grpc.Server();
    const seen: string[] = [];
    const method = (name: keyof typeof cri.RuntimeService.methods) => {
      const m = cri.RuntimeService.methods[name];
      return {
        path: `/runtime.v1.RuntimeService/${name}`,
        requestStream: false,
        responseStream: false,
        requestSerialize: (x: never) => m.requestType.encode(x),
        requestDeserialize: (b: Buffer) => m.requestType.decode(b),
        responseSerialize: (x: never) => m.responseType.encode(x),
        responseDeserialize: (b: Buffer) => m.responseType.decode(b),
      };
    };
    server.addService({ Version: method("Version"), RunPodSandbox: method("RunPodSandbox") } as never, {
      Version: (call: grpc.ServerUnaryCall<cri.VersionRequest, unknown>, cb: grpc.sendUnaryData<cri.VersionResponseInit>) => {
        seen.push(`Version ${call.request.version}`);
        cb(null, { version: "0.1.0", runtimeName: "fake", runtimeApiVersion: "v1" });
      },
      RunPodSandbox: (call: grpc.ServerUnaryCall<cri.RunPodSandboxRequest, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        seen.push(`RunPodSandbox ${call.request.runtimeHandler} ${call.request.config?.metadata?.name}`);
        cb({ code: grpc.status.NOT_FOUND, details: `no runtime for "${call.request.runtimeHandler}" is configured` });
      },
    } as never);
    await new Promise<void>((res, rej) => server!.bindAsync(`unix://${sock}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())));

    const c = new CriClient(sock, { defaultTimeoutMs: 5_000 });
    try {
      await c.waitForReady();
      expect(await c.runtime.Version({ version: "v1" })).toEqual({ version: "0.1.0", runtimeName: "fake", runtimeVersion: "", runtimeApiVersion: "v1" });
      const err = await c.runtime.RunPodSandbox({ config: hostNetworkPod({ name: "p1" }), runtimeHandler: "nope" }).then(
        () => null,
        (e: RpcError) => e,
      );
      expect(err).toBeInstanceOf(RpcError);
      expect(err?.code).toBe(Code.NotFound);
      expect(err?.message).toBe('RuntimeService/RunPodSandbox: no runtime for "nope" is configured');
      // A method the server lacks answers Unimplemented.
      const un = await c.image.ListImages({}).then(
        () => null,
        (e: RpcError) => e,
      );
      expect(un?.code).toBe(Code.Unimplemented);
      expect(seen).toEqual(["Version v1", "RunPodSandbox nope p1"]);
    } finally {
      c.close();
    }
  });
});
