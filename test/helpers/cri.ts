// A minimal CRI client (runtime.v1.RuntimeService, the calls a kubelet makes
// for a pod sandbox) over gRPC, to drive containerd's CRI plugin as Kubernetes
// would with a RuntimeClass handler. The message subset is written here with
// cri-api's field numbers; protobufjs parses it at test time only.
import * as grpc from "@grpc/grpc-js";
import protobuf from "protobufjs";

const PROTO = `
syntax = "proto3";
package runtime.v1;
message PodSandboxMetadata { string name = 1; string uid = 2; string namespace = 3; uint32 attempt = 4; }
message NamespaceOption { int32 network = 1; int32 pid = 2; int32 ipc = 3; }
message LinuxSandboxSecurityContext { NamespaceOption namespace_options = 1; }
message LinuxPodSandboxConfig { string cgroup_parent = 1; LinuxSandboxSecurityContext security_context = 2; }
message PodSandboxConfig {
  PodSandboxMetadata metadata = 1;
  string hostname = 2;
  string log_directory = 3;
  map<string, string> labels = 6;
  map<string, string> annotations = 7;
  LinuxPodSandboxConfig linux = 8;
}
message RunPodSandboxRequest { PodSandboxConfig config = 1; string runtime_handler = 2; }
message RunPodSandboxResponse { string pod_sandbox_id = 1; }
message StopPodSandboxRequest { string pod_sandbox_id = 1; }
message StopPodSandboxResponse {}
message RemovePodSandboxRequest { string pod_sandbox_id = 1; }
message RemovePodSandboxResponse {}
`;

/** NamespaceMode.NODE: the pod shares the host's network, so no CNI is needed. */
export const NODE_NAMESPACE = 2;

export class CriClient {
  private readonly root = protobuf.parse(PROTO, { keepCase: true }).root;
  private readonly client: grpc.Client;

  constructor(containerdAddress: string) {
    this.client = new grpc.Client(`unix://${containerdAddress}`, grpc.credentials.createInsecure());
  }

  private call<T>(method: string, req: Record<string, unknown>, timeoutMs = 60_000): Promise<T> {
    const reqType = this.root.lookupType(`runtime.v1.${method}Request`);
    const resType = this.root.lookupType(`runtime.v1.${method}Response`);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/runtime.v1.RuntimeService/${method}`,
        (v: Record<string, unknown>) => Buffer.from(reqType.encode(reqType.fromObject(v)).finish()),
        (b: Buffer) => resType.toObject(resType.decode(b)) as T,
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, v) => (err ? reject(new Error(`CRI ${method}: ${err.details || err.message}`)) : resolve(v as T)),
      );
    });
  }

  /** A host-network pod sandbox on the given RuntimeClass handler; returns its id. */
  async runPodSandbox(name: string, handler: string): Promise<string> {
    const r = await this.call<{ pod_sandbox_id: string }>("RunPodSandbox", {
      config: {
        // No hostname: a host-network pod has no UTS namespace of its own (the kubelet sends none either).
        metadata: { name, uid: `uid-${name}`, namespace: "default", attempt: 0 },
        linux: { security_context: { namespace_options: { network: NODE_NAMESPACE } } },
      },
      runtime_handler: handler,
    });
    return r.pod_sandbox_id;
  }

  async removePodSandbox(id: string): Promise<void> {
    await this.call("StopPodSandbox", { pod_sandbox_id: id });
    await this.call("RemovePodSandbox", { pod_sandbox_id: id });
  }

  close(): void {
    this.client.close();
  }
}
