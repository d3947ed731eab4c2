// Discovery through a three-member etcd cluster (helpers/etcd.ts startEtcdCluster): `gravity leaf
// --etcd a,b,c` registers, a router with `discovery: etcd` watches, both given every member. One
// member down (the leader): a quorum remains, so registration, lease renewal and membership changes
// go on and the router keeps routing. Two members down: no quorum; the router keeps its last
// members, logs it and exports gravity_router_discovery_following 0, and follows etcd again once
// the quorum is back. etcd's own JSON gateway (/v3/...) says who leads and which lease holds a key.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "../src/client/index.ts";
import { parseExposition, sampleValue } from "../src/metrics/exposition.ts";
import { RouterMetrics } from "../src/metrics/names.ts";
import { type EtcdCluster, type EtcdServer, startEtcdCluster, stopAllEtcd } from "./helpers/etcd.ts";
import { startLoad } from "./helpers/load.ts";
import {
  HOST,
  type LeafProcess,
  type ServerProcess,
  startLeaf,
  startRouter,
  stopAll,
} from "./helpers/servers.ts";
import { pollUntil } from "./helpers/wait.ts";

afterAll(async () => {
  await stopAll();
  await stopAllEtcd();
});

/** Each test starts a cluster, a router and leaves, and goes through an outage: well under 60 s. */
const CLUSTER_TEST_MS = 45_000;
const PREFIX = "/quorum";
const POOL = "dyn";
const LEASE_TTL_SECONDS = 2;
const HTTP_LINE = /http on (\S+):(\d+) /;

// etcd's JSON gateway takes and returns keys in base64 and 64-bit integers as decimal strings.
async function gateway<T>(member: EtcdServer, path: string, body: object): Promise<T> {
  const response = await fetch(`${member.clientUrl}${path}`, {
    method: "POST",
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(2000),
  });
  if (!response.ok) throw new Error(`${path} on ${member.name}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

/** The member that leads the cluster now, asked of `asked` (a running member). */
async function leaderOf(cluster: EtcdCluster, asked: EtcdServer): Promise<EtcdServer> {
  const status = await gateway<{ leader: string }>(asked, "/v3/maintenance/status", {});
  for (const member of cluster.members) {
    if (!member.running()) continue;
    const own = await gateway<{ header: { member_id: string } }>(member, "/v3/maintenance/status", {});
    if (own.header.member_id === status.leader) return member;
  }
  throw new Error(`no running member is the leader ${status.leader}`);
}

/** Each registered leaf's key and the lease that holds it, read through `member`. */
async function registrations(member: EtcdServer): Promise<Map<string, string>> {
  const base64 = (text: string) => Buffer.from(text).toString("base64");
  const start = `${PREFIX}/pools/${POOL}/`;
  const end = `${start.slice(0, -1)}0`; // the key after every key under start ("/" + 1)
  const reply = await gateway<{ kvs?: { key: string; lease?: string }[] }>(member, "/v3/kv/range", {
    key: base64(start),
    range_end: base64(end),
  });
  return new Map((reply.kvs ?? []).map((kv) => [Buffer.from(kv.key, "base64").toString(), kv.lease ?? "0"]));
}

/** A router on `cluster` with one etcd pool, its HTTP port for /metrics, and a client. */
async function routerOn(cluster: EtcdCluster) {
  const dir = mkdtempSync(join(tmpdir(), "gravity-etcd-quorum-"));
  const config = join(dir, "router.yaml");
  const endpoints = cluster.members.map((member) => `"${member.clientUrl}"`).join(", ");
  writeFileSync(
    config,
    `etcd: { endpoints: [${endpoints}], prefix: ${PREFIX} }
pools:
  ${POOL}: { discovery: etcd, timeoutMs: 2000 }
route: ${POOL}
`,
  );
  const router = await startRouter(["--port", "0", "--config", config, "--http-port", "0"]);
  const [, host, port] = (await router.waitForStdout(HTTP_LINE)) as RegExpExecArray;
  const client = createClient({ servers: [`${HOST}:${router.port}`], timeoutMs: 3000 });
  return { router, client, metricsUrl: `http://${host}:${port}/metrics` };
}

function startMember(cluster: EtcdCluster, id: string): Promise<LeafProcess> {
  return startLeaf([
    "--port",
    "0",
    "--etcd",
    cluster.endpoints,
    "--etcd-prefix",
    PREFIX,
    "--pool",
    POOL,
    "--leaf-id",
    id,
    "--lease-ttl",
    String(LEASE_TTL_SECONDS),
  ]);
}

/** How many times the router has logged that the pool now has `count` members. */
function membershipLines(router: ServerProcess, count: number): number {
  const pattern = new RegExp(`membership changed \\(pools ${POOL}: ${count}\\)`, "g");
  return [...router.stdout().matchAll(pattern)].length;
}

/** Resolves once the router logs the pool at `count` members once more than `seen` times. */
function membershipReaches(router: ServerProcess, count: number, seen: number, deadlineMs = 5000) {
  return pollUntil(() => (membershipLines(router, count) > seen ? true : undefined), {
    deadlineMs,
    what: `the router to log ${count} members in pool ${POOL}`,
  });
}

/** Resolves once the router's stderr matches `pattern`. */
function logged(router: ServerProcess, pattern: RegExp, deadlineMs: number) {
  return pollUntil(() => (pattern.test(router.stderr()) ? true : undefined), {
    deadlineMs,
    what: `the router to log ${pattern}`,
  });
}

async function following(metricsUrl: string): Promise<number | undefined> {
  const families = parseExposition(await (await fetch(metricsUrl)).text());
  return sampleValue(families, RouterMetrics.discoveryFollowing.name, { pool: POOL });
}

// A client writing and reading a new key per step: a read returns what was written, or misses if
// the key moved to another leaf in between (a member came or went).
function startClientLoad(client: ReturnType<typeof createClient>) {
  return startLoad(async (i) => {
    const key = `quorum:${i}`;
    await client.set(key, `value ${i}`);
    const value = await client.getString(key);
    return value === null || value === `value ${i}` ? undefined : `${key}: read ${value}`;
  });
}

test(
  "with the leader of three members down, leases renew, members come and go, and the router routes",
  async () => {
    const cluster = await startEtcdCluster(3);
    const { router, client } = await routerOn(cluster);
    const first = await startMember(cluster, "first");
    await membershipReaches(router, 1, 0);
    const emptied = membershipLines(router, 0); // the start, before any leaf registered
    const load = startClientLoad(client);
    await load.progress(50);

    const [asked] = cluster.members as EtcdServer[];
    const leader = await leaderOf(cluster, asked as EtcdServer);
    await leader.stop();
    const survivor = cluster.members.find((member) => member.running()) as EtcdServer;
    const before = await registrations(survivor);
    expect([...before.keys()]).toEqual([`${PREFIX}/pools/${POOL}/first`]);

    // Membership changes go through the two members left: a leaf joins, then leaves.
    const second = await startMember(cluster, "second");
    await membershipReaches(router, 2, 0);
    await load.progress(100);
    expect(await second.stop("SIGTERM")).toBe(0);
    await membershipReaches(router, 1, 1);

    // Past twice the lease TTL, the first leaf's key is still under its first lease: renewed.
    await Bun.sleep(LEASE_TTL_SECONDS * 2 * 1000 + 500); // lease time passing is what is tested
    const after = await registrations(survivor);
    expect(after).toEqual(before);
    expect(first.stderr()).not.toMatch(/is not registered/);
    await load.progress(100);

    await leader.restart(); // it rejoins as a follower
    await load.progress(50);
    expect(await load.stop()).toEqual([]);
    expect(membershipLines(router, 0)).toBe(emptied);
    await client.close();
    expect(await first.stop("SIGTERM")).toBe(0);
    expect(await router.stop("SIGTERM")).toBe(0);
    await cluster.destroy();
  },
  CLUSTER_TEST_MS,
);

test(
  "with quorum lost the router keeps its members, says so in its log and metrics, and recovers",
  async () => {
    const cluster = await startEtcdCluster(3);
    const { router, client, metricsUrl } = await routerOn(cluster);
    const leaves = [await startMember(cluster, "a"), await startMember(cluster, "b")];
    await membershipReaches(router, 2, 0);
    const emptied = membershipLines(router, 0); // the start, before any leaf registered
    expect(await following(metricsUrl)).toBe(1);
    const load = startClientLoad(client);
    await load.progress(50);

    const [, ...lost] = cluster.members as EtcdServer[];
    for (const member of lost) await member.stop();
    // The member left has no leader: it refuses the router's calls and ends its watch.
    await logged(
      router,
      new RegExp(`pool ${POOL} unreachable \\(.*\\); keeping its last 2 members and reconnecting`),
      10_000,
    );
    expect(await following(metricsUrl)).toBe(0);
    const changes = router.stdout().match(/membership changed/g)?.length;
    await load.progress(100); // the router routes on over its last two members
    expect(router.stdout().match(/membership changed/g)?.length).toBe(changes);

    await Promise.all(lost.map((member) => member.restart()));
    await logged(router, new RegExp(`pool ${POOL} reconnected and resynced: 2 members`), 10_000);
    await pollUntil(async () => ((await following(metricsUrl)) === 1 ? true : undefined), {
      deadlineMs: 5000,
      intervalMs: 100,
      what: "gravity_router_discovery_following to return to 1",
    });
    // It follows etcd again: a leaf that leaves now leaves the pool.
    const seen = membershipLines(router, 1);
    expect(await (leaves[1] as LeafProcess).stop("SIGTERM")).toBe(0);
    await membershipReaches(router, 1, seen);
    await load.progress(50);
    expect(await load.stop()).toEqual([]);
    expect(membershipLines(router, 0)).toBe(emptied); // never an empty pool through the outage
    await client.close();
    expect(await (leaves[0] as LeafProcess).stop("SIGTERM")).toBe(0);
    expect(await router.stop("SIGTERM")).toBe(0);
    await cluster.destroy();
  },
  CLUSTER_TEST_MS,
);
