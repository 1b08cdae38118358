// deploy/: the manifests parse as YAML and carry what a RuntimeClass, a
// DaemonSet and their RBAC need, and they agree with each other, with the
// installer script and with what `shimlab install` writes. No cluster needed.
import { helpText } from "../../src/cli/args";
import { describe, it, expect } from "vitest";
import fs from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";

const DEPLOY = path.resolve(__dirname, "..", "..", "deploy");
const REPO = path.dirname(DEPLOY);
type Obj = Record<string, any>;

function load(file: string): Obj[] {
  const docs = parseAllDocuments(fs.readFileSync(path.join(DEPLOY, file), "utf8"));
  for (const d of docs) expect(d.errors, `${file}: ${d.errors.map((e) => e.message).join("; ")}`).toEqual([]);
  return docs.map((d) => d.toJS() as Obj).filter((o) => o !== null);
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// A Kubernetes resource quantity (decimal or binary suffix).
const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;
// A label key: optional DNS prefix, then a name of up to 63 characters.
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

function expectMeta(o: Obj, namespaced: boolean): void {
  expect(typeof o.apiVersion).toBe("string");
  expect(typeof o.kind).toBe("string");
  expect(o.metadata?.name).toMatch(DNS1123_SUBDOMAIN);
  if (namespaced) expect(o.metadata?.namespace).toMatch(DNS1123_LABEL);
  else expect(o.metadata?.namespace).toBeUndefined();
}

const all = ["runtimeclass.yaml", "shimlab-rbac.yaml", "shimlab-deploy.yaml", "example-pod.yaml"].flatMap((f) => load(f).map((o) => ({ file: f, o })));
const one = (kind: string) => {
  const found = all.filter((x) => x.o.kind === kind);
  expect(found.length, `one ${kind}`).toBe(1);
  return found[0].o;
};
const script = fs.readFileSync(path.join(DEPLOY, "shimlab-deploy.sh"), "utf8");
const LABEL = /^LABEL=(\S+)$/m.exec(script)?.[1] ?? "";

describe("deploy/ manifests", () => {
  it("are all YAML objects with the kinds and API versions expected", () => {
    expect(all.map((x) => `${x.o.apiVersion} ${x.o.kind}`).sort()).toEqual(
      ["apps/v1 DaemonSet", "node.k8s.io/v1 RuntimeClass", "rbac.authorization.k8s.io/v1 ClusterRole", "rbac.authorization.k8s.io/v1 ClusterRoleBinding", "v1 Pod", "v1 ServiceAccount"].sort(),
    );
  });

  it("RuntimeClass: handler is the runtime install adds; overhead and scheduling are well formed", () => {
    const rc = one("RuntimeClass");
    expectMeta(rc, false);
    // The handler is the CRI runtime name `shimlab install` writes by default (a DNS label, as the API requires).
    expect(rc.handler).toBe("shimlab");
    expect(rc.handler).toMatch(DNS1123_LABEL);
    expect(helpText(["install"])).toContain("CRI runtime handler name (default shimlab)");
    for (const [k, v] of Object.entries(rc.overhead.podFixed)) {
      expect(["cpu", "memory"]).toContain(k);
      expect(String(v)).toMatch(QUANTITY);
    }
    // It schedules on the label the installer puts on nodes.
    expect(LABEL).toMatch(LABEL_KEY);
    expect(rc.scheduling.nodeSelector).toEqual({ [LABEL]: "true" });
  });

  it("DaemonSet: selector matches the template, stdio of the installer is wired, volumes exist, privileges are there", () => {
    const ds = one("DaemonSet");
    expectMeta(ds, true);
    const tpl = ds.spec.template;
    for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) expect(tpl.metadata.labels[k]).toBe(v);
    expect(ds.spec.updateStrategy.type).toMatch(/^(RollingUpdate|OnDelete)$/);
    const pod = tpl.spec;
    expect(pod.hostPID).toBe(true); // nsenter -t 1 reaches the host's systemd
    expect(pod.containers).toHaveLength(1);
    const c = pod.containers[0];
    expect(c.name).toMatch(DNS1123_LABEL);
    expect(typeof c.image).toBe("string");
    expect(c.securityContext.privileged).toBe(true);
    // The entrypoint is the script shipped in deploy/ (the image puts the checkout at /opt/shimlab-src).
    const inImage = (p: string) => path.join(REPO, path.relative("/opt/shimlab-src", p));
    expect(fs.existsSync(inImage(c.command[0]))).toBe(true);
    expect(fs.statSync(inImage(c.command[0])).mode & 0o111).toBeTruthy();
    expect(c.command.slice(1)).toEqual(["install"]);
    expect(c.lifecycle.preStop.exec.command).toEqual([c.command[0], "cleanup"]);
    expect(fs.readFileSync(path.join(DEPLOY, "Dockerfile"), "utf8")).toMatch(/WORKDIR \/opt\/shimlab-src/);
    // NODE_NAME comes from the downward API: the script labels that node.
    const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e]));
    expect(env.NODE_NAME.valueFrom.fieldRef.fieldPath).toBe("spec.nodeName");
    expect(script).toContain("${NODE_NAME}");
    // Every mount names a volume; the script's --root holds each mount.
    const volumes = new Map(pod.volumes.map((v: Obj) => [v.name, v]));
    const root = /^ROOT=\$\{SHIMLAB_HOST_ROOT:-(\S+)\}$/m.exec(script)?.[1];
    expect(root).toBe("/host");
    for (const m of c.volumeMounts) {
      const v = volumes.get(m.name) as Obj | undefined;
      expect(v, `volume ${m.name}`).toBeDefined();
      // Mounted at the same path under the root as on the host, which is what `install --root` assumes.
      expect(m.mountPath).toBe(path.join(root!, v!.hostPath.path));
    }
    const hostPaths = [...volumes.values()].map((v: any) => v.hostPath.path);
    expect(hostPaths).toContain(path.dirname(env.CONTAINERD_CONFIG.value));
    expect(hostPaths).toContain(env.SHIMLAB_PREFIX.value);
    // It runs as the service account the RBAC file makes, in the same namespace.
    const sa = one("ServiceAccount");
    expect(pod.serviceAccountName).toBe(sa.metadata.name);
    expect(sa.metadata.namespace).toBe(ds.metadata.namespace);
  });

  it("RBAC: the service account may get and patch nodes, and nothing else", () => {
    const role = one("ClusterRole");
    const binding = one("ClusterRoleBinding");
    const sa = one("ServiceAccount");
    expectMeta(role, false);
    expectMeta(binding, false);
    expectMeta(sa, true);
    expect(role.rules).toEqual([{ apiGroups: [""], resources: ["nodes"], verbs: ["get", "patch"] }]);
    expect(binding.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: sa.metadata.name, namespace: sa.metadata.namespace }]);
    // The script labels with a merge patch on the node, which is what "patch" allows.
    expect(script).toContain("application/merge-patch+json");
  });

  it("the example pod asks for the RuntimeClass", () => {
    const pod = one("Pod");
    expect(pod.spec.runtimeClassName).toBe(one("RuntimeClass").metadata.name);
    expect(pod.spec.containers[0].image).toBeTruthy();
  });
});
