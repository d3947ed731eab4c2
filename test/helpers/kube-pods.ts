// Runs the containers a rendered Kubernetes manifest declares as local processes, as a kubelet would
// start them, so a test can hold the manifests to the binary:
//
//   rendered objects ──> pods (one per replica) ──> containers: command/args/env as declared
//        Service names ──> the first matching pod's IP (the test's DNS)
//        pod IPs       ──> 127.0.0.N, one loopback address per pod, so declared ports stay exact
//        volumes       ──> a temporary directory per volume (a configMap's files written into it)
//
// What a kubelet would resolve is resolved the same way: env in order with `$(VAR)` references,
// fieldRefs (status.podIP, metadata.name, metadata.namespace, spec.nodeName), args with `$(VAR)`.
// Within a pod, 127.0.0.1 is the pod's own address (a pod has its own loopback), and a volume's
// mount path is its directory. The image's entrypoint is given by the caller (dist/gravity for the
// gravity image, the etcd binary for etcd's).
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { killOnExit } from "./processes.ts";

// The subset of the Kubernetes API objects these manifests use.
export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
export interface Probe {
  httpGet?: { path: string; port: number | string };
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
  volumeMounts?: { name: string; mountPath: string }[];
  restartPolicy?: string;
}
export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; configMap?: { name: string }; emptyDir?: object }[];
  terminationGracePeriodSeconds?: number;
}
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  spec?: {
    replicas?: number;
    selector?: { matchLabels?: Record<string, string> } | Record<string, string>;
    template?: { metadata?: { labels?: Record<string, string> }; spec: PodSpec };
  };
}

/** A pod of a workload: its name, loopback IP, labels and spec. */
export interface Pod {
  name: string;
  ip: string;
  labels: Record<string, string>;
  spec: PodSpec;
}

/** A started container: its process and what was resolved for it. */
export interface RunningContainer {
  pod: Pod;
  container: Container;
  proc: Subprocess;
  /** stdout and stderr so far. */
  output(): string;
}

/** The pods of every StatefulSet, Deployment and DaemonSet (one node) in `objects`, with their IPs. */
export function podsOf(objects: readonly KubeObject[], firstIp = 2): Pod[] {
  const pods: Pod[] = [];
  let ip = firstIp;
  for (const object of objects) {
    const template = object.spec?.template;
    if (template === undefined) continue;
    const replicas = object.kind === "DaemonSet" ? 1 : (object.spec?.replicas ?? 1);
    for (let i = 0; i < replicas; i++) {
      const name =
        object.kind === "StatefulSet" ? `${object.metadata.name}-${i}` : `${object.metadata.name}-pod${i}`;
      pods.push({
        name,
        ip: `127.0.0.${ip++}`,
        labels: template.metadata?.labels ?? {},
        spec: template.spec,
      });
    }
  }
  return pods;
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/** Service name -> the IP of its first matching pod: what the test's processes resolve names to. */
export function serviceAddresses(objects: readonly KubeObject[], pods: readonly Pod[]): Map<string, string> {
  const addresses = new Map<string, string>();
  for (const object of objects) {
    if (object.kind !== "Service") continue;
    const selector = (object.spec?.selector ?? {}) as Record<string, string>;
    const pod = pods.find((p) => selects(selector, p.labels));
    if (pod !== undefined) addresses.set(object.metadata.name, pod.ip);
  }
  return addresses;
}

/** The port number a probe or Service names (a number, or a container port's name). */
export function portNumber(container: Container, port: number | string): number {
  if (typeof port === "number") return port;
  const found = container.ports?.find((p) => p.name === port)?.containerPort;
  if (found === undefined) throw new Error(`container ${container.name} declares no port named ${port}`);
  return found;
}

/** Replaces `$(NAME)` with the variable's value, as Kubernetes expands env and args. */
function expand(text: string, vars: ReadonlyMap<string, string>): string {
  return text.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => vars.get(name) ?? whole);
}

export interface StartOptions {
  /** The executable that stands for an image's entrypoint (by image name without the tag). */
  entrypoints: Record<string, string>;
  objects: readonly KubeObject[];
  services: ReadonlyMap<string, string>;
}

/**
 * Starts one container of `pod` as a process. Service host names become their addresses, the pod's
 * 127.0.0.1 its IP, mount paths their directories (configMap data written there).
 */
export function startContainer(pod: Pod, container: Container, options: StartOptions): RunningContainer {
  const root = mkdtempSync(join(tmpdir(), `gravity-pod-${pod.name}-`));
  const mounts = new Map<string, string>(); // mount path -> directory
  for (const mount of container.volumeMounts ?? []) {
    if (mount.mountPath === "/tmp") continue; // the host's /tmp serves
    const dir = join(root, mount.name);
    mkdirSync(dir, { recursive: true });
    const volume = pod.spec.volumes?.find((v) => v.name === mount.name);
    const configMap = volume?.configMap?.name;
    if (configMap !== undefined) {
      const data = options.objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === configMap)?.data;
      if (data === undefined) throw new Error(`pod ${pod.name}: no ConfigMap ${configMap}`);
      for (const [file, text] of Object.entries(data)) writeFileSync(join(dir, file), localize(text));
    }
    mounts.set(mount.mountPath, dir);
  }
  // Host names, the pod's loopback and mount paths, in what a process reads.
  function localize(text: string): string {
    let out = text.replace(/\b127\.0\.0\.1\b/g, pod.ip);
    for (const [name, ip] of options.services) {
      out = out.replace(new RegExp(`(?<![\\w.-])${name}(?=:\\d)`, "g"), ip);
    }
    for (const [path, dir] of mounts) out = out.split(path).join(dir);
    return out;
  }
  const vars = new Map<string, string>();
  const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", TMPDIR: tmpdir() };
  for (const variable of container.env ?? []) {
    let value: string;
    const field = variable.valueFrom?.fieldRef?.fieldPath;
    if (field !== undefined) {
      const fields: Record<string, string> = {
        "status.podIP": pod.ip,
        "metadata.name": pod.name,
        "metadata.namespace": "default",
        "spec.nodeName": "node-1",
      };
      const resolved = fields[field];
      if (resolved === undefined) throw new Error(`pod ${pod.name}: fieldRef ${field} is not emulated`);
      value = resolved;
    } else {
      value = localize(expand(variable.value ?? "", vars));
    }
    vars.set(variable.name, value);
    env[variable.name] = value;
  }
  const image = container.image.replace(/:[^/:]+$/, "");
  const entrypoint = options.entrypoints[image];
  if (entrypoint === undefined) throw new Error(`no entrypoint given for image ${container.image}`);
  const [command, ...commandArgs] = container.command ?? [entrypoint];
  const executable =
    command === undefined || container.command === undefined ? entrypoint : Bun.which(command);
  if (executable === null || executable === undefined) throw new Error(`${command} is not installed`);
  const args = [...commandArgs, ...(container.args ?? [])].map((arg) => localize(expand(arg, vars)));
  let output = "";
  const proc = Bun.spawn([executable, ...args], { env, stdout: "pipe", stderr: "pipe" });
  killOnExit(proc);
  for (const stream of [proc.stdout, proc.stderr]) {
    void (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) output += decoder.decode(chunk, { stream: true });
    })();
  }
  return { pod, container, proc, output: () => output };
}
