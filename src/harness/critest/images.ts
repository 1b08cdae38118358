// Stand-ins for the public images critest pulls (none is reachable from the
// test machines), built in memory and pushed to a private registry that
// containerd reaches through its registry mirrors. Each image carries what
// critest observes of the real one and nothing more. Repositories are named
// as critest pulls them, without the registry host: one registry mirrors
// registry.k8s.io, k8s.gcr.io, gcr.io, docker.io and public.ecr.aws.
import fs from "node:fs";
import { ociImage, ociLayer, type ImageRunConfig, type Layer, type OciImage } from "../oci-image";
import { TarWriter } from "../tar";
import { RegistryPusher } from "../registry/push";
import { busyboxLayerTar, debianBusybox, GROUP, PASSWD } from "./busybox";
import { standinBinaries } from "./standin-binaries";

export const PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** The CRI sandbox image for critest runs (containerd 1.6's default): a pause of another image ID than the pause:3.9 the image specs remove. */
export const CRITEST_SANDBOX_IMAGE = "registry.k8s.io/pause:3.6";
/** Registries critest (and containerd's defaults) pull from; each is mirrored to the stand-ins' registry. */
export const MIRRORED_REGISTRIES = ["registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io", "public.ecr.aws"];

export interface StandinImage {
  /** Repository path inside the registry ("e2e-test-images/busybox"). */
  repo: string;
  tags: string[];
  image: OciImage;
}

const E2E = "e2e-test-images/";
const STAGING = "k8s-staging-cri-tools/";

export async function buildStandinImages(): Promise<StandinImage[]> {
  const [busybox, bins] = await Promise.all([debianBusybox(), standinBinaries()]);
  const base = ociLayer(busyboxLayerTar({ busybox }));
  const out: StandinImage[] = [];
  const img = (repo: string, tags: string[], layers: Layer[], run: ImageRunConfig) => {
    out.push({ repo, tags, image: ociImage(layers, { Env: [PATH_ENV], WorkingDir: "/", ...run }, `critest stand-in: ${repo}`) });
  };
  const sh = { Cmd: ["sh"] };

  img(`${E2E}busybox`, ["1.29-2"], [base], sh);

  // nginx: its process title and comm, /var/run/nginx.pid, and the welcome
  // page on port 80 (NGINX_PORT: hostnet-nginx listens on 12003).
  const nginx = ociLayer(
    new TarWriter()
      .dir("usr/share/nginx")
      .dir("usr/share/nginx/html")
      .file("usr/sbin/nginx", fs.readFileSync(bins.nginx), { mode: 0o755 })
      .file("usr/share/nginx/html/index.html", "<h1>Welcome to nginx!</h1>\n")
      .finish(),
  );
  const nginxCmd = ["nginx", "-g", "daemon off;"];
  img(`${E2E}nginx`, ["1.14-2"], [base, nginx], { Cmd: nginxCmd, ExposedPorts: { "80/tcp": {} }, StopSignal: "SIGTERM" });
  img(`${STAGING}hostnet-nginx-amd64`, ["latest"], [base, nginx], { Cmd: nginxCmd, Env: [PATH_ENV, "NGINX_PORT=12003"], ExposedPorts: { "12003/tcp": {} } });

  // httpd: busybox's httpd serving "It works!" on port 80, logging to stderr,
  // and stopping on the image's stop signal as Apache does (SIGWINCH, graceful
  // stop): busybox httpd ignores SIGWINCH, and a runtime that waits out the
  // stop timeout before SIGKILL (CRI-O: the whole call's deadline) would wait minutes.
  const httpdForeground = [
    "#!/bin/sh",
    "echo 'httpd stand-in: busybox httpd -f -v -p 80' >&2",
    "httpd -f -v -p 80 -h /usr/local/apache2/htdocs &",
    "pid=$!",
    "trap 'kill $pid; wait $pid; exit 0' WINCH TERM",
    "wait $pid",
    "",
  ].join("\n");
  const httpd = ociLayer(
    new TarWriter()
      .dir("usr/local/apache2")
      .dir("usr/local/apache2/htdocs")
      .file("usr/local/apache2/htdocs/index.html", "<html><body><h1>It works!</h1></body></html>\n")
      .file("usr/local/bin/httpd-foreground", httpdForeground, { mode: 0o755 })
      .finish(),
  );
  img(`${E2E}httpd`, ["2.4.39-4"], [base, httpd], { Cmd: ["httpd-foreground"], ExposedPorts: { "80/tcp": {} }, WorkingDir: "/usr/local/apache2", StopSignal: "SIGWINCH" });

  // nonewprivs: a setuid-root program printing its effective uid, run as 1000.
  const nnp = ociLayer(new TarWriter().file("usr/local/bin/nnp", fs.readFileSync(bins.nonewprivs), { mode: 0o4755 }).finish());
  img(`${E2E}nonewprivs`, ["1.3"], [base, nnp], { Entrypoint: ["/usr/local/bin/nnp"], User: "1000" });

  // pause:3.9 is pulled and removed by the image specs (from registry.k8s.io
  // and k8s.gcr.io); the sandbox image, 3.6, differs by a label so that
  // removing 3.9 never removes the image every pod runs.
  const pause = ociLayer(new TarWriter().file("pause", fs.readFileSync(bins.pause), { mode: 0o755 }).finish());
  const pauseRun = { Entrypoint: ["/pause"], User: "65535:65535" };
  img("pause", ["3.9"], [pause], pauseRun);
  img("pause", ["3.6"], [pause], { ...pauseRun, Labels: { "critest-standin": "sandbox" } });

  // The image specs' references: distinct labels give distinct image IDs where
  // critest expects different images, one image under three tags where it expects one.
  img(`${STAGING}test-image-latest`, ["latest"], [base], { ...sh, Labels: { t: "latest" } });
  img(`${STAGING}test-image-tag`, ["test"], [base], { ...sh, Labels: { t: "tag-test" } });
  img(`${STAGING}test-image-tag`, ["all"], [base], { ...sh, Labels: { t: "tag-all" } });
  for (const n of [1, 2, 3]) img(`${STAGING}test-image-${n}`, ["latest"], [base], { ...sh, Labels: { t: `image-${n}` } });
  img(`${STAGING}test-image-tags`, ["1", "2", "3"], [base], { ...sh, Labels: { t: "tags" } });

  // The image-user specs read the config's User back.
  for (const [name, user] of [["uid", "1002"], ["username", "www-data"], ["uid-group", "1003:users"], ["username-group", "www-data:www-data"]]) {
    img(`${STAGING}test-image-user-${name}`, ["latest"], [base], { ...sh, User: user });
  }
  // SupplementalGroupsPolicy: user 1000 is in group 50000 by the image's /etc/group only.
  const groupBase = ociLayer(
    busyboxLayerTar({
      busybox,
      passwd: [...PASSWD, "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh"],
      group: [...GROUP, "default-user:x:1000:", "group-defined-in-image:x:50000:default-user"],
    }),
  );
  img(`${STAGING}test-image-predefined-group`, ["latest"], [groupBase], { ...sh, User: "1000" });
  return out;
}

/** Builds the stand-ins and pushes them to the registry at url; returns them. */
export async function pushStandinImages(url: string): Promise<StandinImage[]> {
  const images = await buildStandinImages();
  const pusher = new RegistryPusher(url);
  for (const i of images) await pusher.push(i.image, i.repo, i.tags);
  return images;
}
