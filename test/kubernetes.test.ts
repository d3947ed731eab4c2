// deploy/: the manifests and the image held to the binary. Every kustomize overlay (and the optional
// NATS component) renders with `kubectl kustomize` and validates against the Kubernetes API schemas
// (kubernetes-models, offline). Then the sidecar overlay's pods run here as processes with exactly
// the commands, arguments, environment and ports their containers declare (helpers/kube-pods.ts:
// one loopback address per pod, Service names resolved to pods): etcd, three leaves and the
// application's router sidecar. The probes answer on their declared paths and ports, the leaves
// register in etcd, the router finds them, a memcached client through the sidecar's port sets and
// gets, and on SIGTERM every process drains and exits within its grace period.
//
// The image is not built here: its base images come from registries this machine cannot reach.
// What is checked instead is what the runtime stage holds: dist/gravity alone, on a base with the
// libraries `ldd` says the executable and its embedded addon need (the Containerfile's list).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { Etcd3 } from "etcd3";
import { DaemonSet, Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, Service } from "kubernetes-models/v1";
import { createClient } from "../src/client/index.ts";
import { requireEtcd } from "./helpers/etcd.ts";
import {
  type Container,
  type KubeObject,
  podsOf,
  portNumber,
  type RunningContainer,
  serviceAddresses,
  startContainer,
} from "./helpers/kube-pods.ts";
import { COMPILED_GRAVITY, REPO_ROOT } from "./helpers/servers.ts";
import { pollUntil, withDeadline } from "./helpers/wait.ts";

const KUSTOMIZE_DIR = join(REPO_ROOT, "deploy/kubernetes");
const OVERLAYS = ["statefulset", "daemonset", "sidecar"] as const;
const CONTAINERFILE = join(REPO_ROOT, "deploy/Containerfile");

const running: RunningContainer[] = [];
afterAll(() => {
  for (const { proc } of running) if (proc.exitCode === null) proc.kill("SIGKILL");
});

function kustomize(dir: string): KubeObject[] {
  const result = Bun.spawnSync(["kubectl", "kustomize", dir], { stderr: "pipe" });
  if (result.exitCode !== 0) throw new Error(`kubectl kustomize ${dir}: ${result.stderr.toString()}`);
  return Bun.YAML.parse(result.stdout.toString()) as KubeObject[];
}

// Each kind the manifests use, by apiVersion/kind: its schema-checked model.
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Service": Service,
  "apps/v1/StatefulSet": StatefulSet,
  "apps/v1/Deployment": Deployment,
  "apps/v1/DaemonSet": DaemonSet,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
};

function validate(objects: readonly KubeObject[]): string[] {
  const problems: string[] = [];
  for (const object of objects) {
    const Model = MODELS[`${object.apiVersion}/${object.kind}`];
    if (Model === undefined) {
      problems.push(`${object.apiVersion}/${object.kind} ${object.metadata.name}: no schema in this test`);
      continue;
    }
    try {
      new Model(object as never).validate();
    } catch (error) {
      problems.push(`${object.kind} ${object.metadata.name}: ${String(error)}`);
    }
  }
  return problems;
}

const containersOf = (object: KubeObject): Container[] => [
  ...(object.spec?.template?.spec.initContainers ?? []),
  ...(object.spec?.template?.spec.containers ?? []),
];

describe("the manifests render and validate", () => {
  for (const overlay of OVERLAYS) {
    test(`overlays/${overlay}`, () => {
      const objects = kustomize(join(KUSTOMIZE_DIR, "overlays", overlay));
      expect(validate(objects)).toEqual([]);
      const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
      const leaves = overlay === "daemonset" ? "DaemonSet/gravity-leaf" : "StatefulSet/gravity-leaf";
      expect(kinds).toContain(leaves);
      expect(kinds).toContain("StatefulSet/gravity-etcd");
      expect(kinds).toContain("PodDisruptionBudget/gravity-leaf");
      expect(kinds).toContain(overlay === "sidecar" ? "Deployment/example-app" : "Deployment/gravity-router");
      // Every gravity container: probes on its HTTP port, a memory limit, and a grace period that
      // covers its preStop sleep and the drain on SIGTERM (at most 6 s for a leaf, 5 s for a router).
      for (const object of objects) {
        for (const container of containersOf(object).filter((c) => c.image.startsWith("gravity:"))) {
          const where = `${object.metadata.name}/${container.name}`;
          expect(container.readinessProbe?.httpGet?.path, where).toBe("/readyz");
          expect(container.livenessProbe?.httpGet?.path, where).toBe("/healthz");
          const grace = object.spec?.template?.spec.terminationGracePeriodSeconds ?? 30;
          const preStop = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
          expect(preStop + 6, where).toBeLessThanOrEqual(grace);
          const limits = (container as { resources?: { limits?: { memory?: string } } }).resources?.limits;
          expect(limits?.memory, where).toBeDefined();
        }
      }
    });
  }

  test("the optional NATS component renders and validates beside an overlay", () => {
    const dir = mkdtempSync(join(tmpdir(), "gravity-kustomize-"));
    writeFileSync(
      join(dir, "kustomization.yaml"),
      [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "resources:",
        `  - ${relative(dir, join(KUSTOMIZE_DIR, "overlays/statefulset"))}`,
        "components:",
        `  - ${relative(dir, join(KUSTOMIZE_DIR, "components/nats"))}`,
        "",
      ].join("\n"),
    );
    const objects = kustomize(dir);
    expect(validate(objects)).toEqual([]);
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`)).toContain("Deployment/gravity-nats");
  });
});

describe("the image", () => {
  const text = readFileSync(CONTAINERFILE, "utf8");
  const stages = text.split(/^FROM /m).slice(1);
  const runtime = stages.at(-1) ?? "";

  test("the runtime stage holds dist/gravity alone, runs it as non-root, and is the entrypoint", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const copies = runtime.split("\n").filter((line) => /^(COPY|ADD) /.test(line));
    expect(copies).toEqual(["COPY --from=build /src/dist/gravity /usr/local/bin/gravity"]);
    expect(runtime).toMatch(/^USER 65532:65532$/m);
    expect(runtime).toMatch(/^ENTRYPOINT \["\/usr\/local\/bin\/gravity"\]$/m);
  });

  test("the runtime base provides every library ldd finds in dist/gravity and its embedded addon", () => {
    const declared = /^# runtime-libraries: (.+)$/m.exec(text)?.[1]?.split(/\s+/) ?? [];
    const needed = new Set<string>();
    for (const file of [COMPILED_GRAVITY, join(REPO_ROOT, "build/Release/gravity.node")]) {
      const ldd = Bun.spawnSync(["ldd", file]).stdout.toString();
      for (const line of ldd.split("\n")) {
        const name = /^\s*(\S+)/.exec(line)?.[1];
        if (name === undefined || name.startsWith("linux-vdso")) continue;
        needed.add(name.replace(/^.*\//, ""));
      }
    }
    expect(needed.size).toBeGreaterThan(3);
    expect([...needed].filter((library) => !declared.includes(library))).toEqual([]);
  });
});

test("the sidecar overlay's pods run as declared: probes, etcd registration, routing, drain on SIGTERM", async () => {
  const objects = kustomize(join(KUSTOMIZE_DIR, "overlays/sidecar"));
  const pods = podsOf(objects);
  const services = serviceAddresses(objects, pods);
  const options = {
    objects,
    services,
    entrypoints: { gravity: COMPILED_GRAVITY, "quay.io/coreos/etcd": requireEtcd() },
  };
  const byName = (prefix: string) => pods.filter((pod) => pod.name.startsWith(prefix));
  const start = (pod: (typeof pods)[number], container: Container) => {
    const started = startContainer(pod, container, options);
    running.push(started);
    return started;
  };
  const etcdPod = byName("gravity-etcd-")[0];
  const leafPods = byName("gravity-leaf-");
  const appPod = byName("example-app-")[0];
  if (etcdPod === undefined || appPod === undefined) throw new Error("the overlay lacks etcd or the app");
  expect(leafPods.map((p) => p.name)).toEqual(["gravity-leaf-0", "gravity-leaf-1", "gravity-leaf-2"]);

  const etcd = start(etcdPod, etcdPod.spec.containers[0] as Container);
  const leaves = leafPods.map((pod) => start(pod, pod.spec.containers[0] as Container));
  // One pod of the application, its router sidecar (the test plays the application container).
  const sidecarSpec = appPod.spec.initContainers?.find((c) => c.restartPolicy === "Always");
  if (sidecarSpec === undefined) throw new Error("example-app has no sidecar");
  const sidecar = start(appPod, sidecarSpec);
  const gravityContainers = [...leaves, sidecar];

  const httpStatus = async (ip: string, port: number, path: string) => {
    try {
      return (await fetch(`http://${ip}:${port}${path}`)).status;
    } catch {
      return 0;
    }
  };
  // Every declared probe answers 200 on its path and port.
  for (const { pod, container } of [etcd, ...gravityContainers]) {
    for (const probe of [container.startupProbe, container.readinessProbe, container.livenessProbe]) {
      if (probe?.httpGet === undefined) continue;
      const port = portNumber(container, probe.httpGet.port);
      const path = probe.httpGet.path;
      await pollUntil(async () => ((await httpStatus(pod.ip, port, path)) === 200 ? true : undefined), {
        deadlineMs: 20_000,
        intervalMs: 100,
        what: `${pod.name}/${container.name} to answer 200 on ${path} at port ${port}`,
      });
    }
  }

  // The leaves registered under their pod names with their pod IPs.
  const etcdClient = new Etcd3({ hosts: `http://${services.get("gravity-etcd")}:2379` });
  try {
    // A leaf is ready once its store is up; it registers just after, so wait for all three keys.
    const expected = leafPods.map((p) => `/gravity/pools/main/${p.name}`);
    const registered = await pollUntil(
      async () => {
        const keys = await etcdClient.getAll().prefix("/gravity/pools/main/").strings();
        return Object.keys(keys).length >= expected.length ? keys : undefined;
      },
      { deadlineMs: 20_000, intervalMs: 100, what: "the three leaves to register in etcd" },
    );
    expect(Object.keys(registered).sort()).toEqual(expected);
    for (const pod of leafPods)
      expect(registered[`/gravity/pools/main/${pod.name}`]).toContain(`${pod.ip}:11211`);
  } finally {
    etcdClient.close();
  }

  // The sidecar router follows etcd: wait until it routes to all three leaves, or the first sets
  // could land on a pool of one or two and read back as misses once the others join.
  await pollUntil(() => (/pools main: 3\b/.test(sidecar.output()) ? true : undefined), {
    deadlineMs: 20_000,
    intervalMs: 100,
    what: "the sidecar router to find all three leaves",
  });

  // The application's client talks to its pod's loopback:11211 (here, the pod's address).
  const app = createClient({ servers: [`${appPod.ip}:11211`] });
  const direct = leafPods.map((pod) => createClient({ servers: [`${pod.ip}:11211`] }));
  try {
    const keys = Array.from({ length: 60 }, (_, i) => `sidecar:${i}`);
    await pollUntil(
      () =>
        app.set(keys[0] as string, "v").then(
          () => true,
          () => undefined,
        ),
      { deadlineMs: 15_000, intervalMs: 100, what: "a set through the sidecar to succeed" },
    );
    for (const key of keys) await app.set(key, `value of ${key}`);
    for (const key of keys) expect(await app.getString(key)).toBe(`value of ${key}`);
    // The router found every leaf: each key is on exactly one of them, and each holds some.
    const holders = await Promise.all(
      keys.map(async (key) => {
        const found = await Promise.all(direct.map((client) => client.getString(key)));
        return found.filter((value) => value !== null).length;
      }),
    );
    expect(holders.every((count) => count === 1)).toBe(true);
    for (const client of direct) {
      const held = await Promise.all(keys.map((key) => client.getString(key)));
      expect(held.some((value) => value !== null)).toBe(true);
    }
  } finally {
    await app.close();
    await Promise.all(direct.map((client) => client.close()));
  }

  // SIGTERM: each gravity process exits 0 within its grace period less its preStop sleep.
  for (const { pod, container, proc, output } of gravityContainers) {
    const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
    const preStop = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
    proc.kill("SIGTERM");
    const code = await withDeadline(proc.exited, (grace - preStop) * 1000, `${pod.name} to drain on SIGTERM`);
    expect(code, `${pod.name}: ${output()}`).toBe(0);
  }
  etcd.proc.kill("SIGTERM");
  await withDeadline(etcd.proc.exited, 10_000, "etcd to stop");
}, 120_000);
