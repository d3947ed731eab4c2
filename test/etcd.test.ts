// etcd membership against a real etcd: leaf registration (key, value, lease), a router's watch
// (joins and leaves within 2 s), lease expiry of a leaf that dies, and etcd outages.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import type { Etcd3 } from "etcd3";
import { createEtcdClient, parseEtcdEndpoints } from "../src/discovery/etcd-client.ts";
import { memberKey, poolKeyPrefix } from "../src/discovery/etcd-keys.ts";
import { EtcdMembership, type EtcdMembershipOptions } from "../src/discovery/etcd-membership.ts";
import {
  type LeafRegistration,
  type LeafRegistrationOptions,
  registerLeaf,
} from "../src/discovery/etcd-registration.ts";
import type { Member, Membership } from "../src/discovery/membership.ts";
import { type EtcdServer, startEtcd, stopAllEtcd } from "./helpers/etcd.ts";
import { SERVER_TEST_MS } from "./helpers/servers.ts";
import { withDeadline } from "./helpers/wait.ts";

const PREFIX = "/gravity-test";
/** The bound: a join or a leave changes routing within this. */
const CHANGE_DEADLINE_MS = 2000;

let etcd: EtcdServer;
let client: Etcd3; // the test's own view of etcd
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  client = await createEtcdClient({ endpoints: [etcd.clientUrl] });
}, SERVER_TEST_MS);

afterAll(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  client?.close();
  await stopAllEtcd();
}, SERVER_TEST_MS);

/** Log lines collected from a discovery module, with a way to await one. */
function logCollector() {
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  return {
    lines,
    log: (line: string) => {
      lines.push(line);
      for (const wake of waiters) wake();
    },
    count: (pattern: RegExp) => lines.filter((line) => pattern.test(line)).length,
    waitFor(pattern: RegExp, deadlineMs: number): Promise<string> {
      const seen = new Promise<string>((resolveLine) => {
        const check = () => {
          const line = lines.find((candidate) => pattern.test(candidate));
          if (line === undefined) return;
          waiters.delete(check);
          resolveLine(line);
        };
        waiters.add(check);
        check();
      });
      return withDeadline(seen, deadlineMs, `a log line matching ${pattern}; got ${JSON.stringify(lines)}`);
    },
  };
}

function watch(options: Partial<EtcdMembershipOptions> & { pool: string }): EtcdMembership {
  const membership = new EtcdMembership({ endpoints: [etcd.clientUrl], prefix: PREFIX, ...options });
  cleanups.push(() => membership.stop());
  return membership;
}

async function register(
  options: Partial<LeafRegistrationOptions> & { pool: string; leafId: string },
): Promise<LeafRegistration> {
  const registration = await registerLeaf({
    endpoints: [etcd.clientUrl],
    prefix: PREFIX,
    addr: "127.0.0.1:11311",
    weight: 1,
    version: "0.1.0",
    leaseTtlSeconds: 10,
    ...options,
  });
  cleanups.push(() => registration.stop());
  return registration;
}

/** Resolves with the member list once `accept` holds for it (checked now and on every change). */
function membersWhen(
  membership: Membership,
  accept: (members: readonly Member[]) => boolean,
  deadlineMs: number,
  what: string,
): Promise<readonly Member[]> {
  let unsubscribe = () => {};
  const reached = new Promise<readonly Member[]>((resolveMembers) => {
    const check = (members: readonly Member[]) => {
      if (accept(members)) resolveMembers(members);
    };
    unsubscribe = membership.onChange(check);
    check(membership.current());
  });
  return withDeadline(
    reached,
    deadlineMs,
    `${what}; members ${JSON.stringify(membership.current())}`,
  ).finally(unsubscribe);
}

const ids = (members: readonly Member[]) => members.map((member) => member.id);
const idsAre =
  (...expected: string[]) =>
  (members: readonly Member[]) =>
    JSON.stringify(ids(members)) === JSON.stringify(expected);

async function leaseOf(key: string): Promise<string | undefined> {
  const response = await client.get(key).exec();
  return response.kvs[0]?.lease;
}

describe("parseEtcdEndpoints", () => {
  test("accepts URLs and host:port, comma separated", () => {
    expect(parseEtcdEndpoints("http://127.0.0.1:2379, 10.0.0.2:2379,https://etcd:2379")).toEqual([
      "http://127.0.0.1:2379",
      "http://10.0.0.2:2379",
      "https://etcd:2379",
    ]);
  });

  test("names the bad entry", () => {
    expect(() => parseEtcdEndpoints("")).toThrow("etcd endpoints: expected URL[,URL]");
    expect(() => parseEtcdEndpoints("http://a:2379,ftp://b:21")).toThrow('"ftp://b:21"');
    expect(() => parseEtcdEndpoints("etcd")).toThrow('"etcd"');
  });
});

describe("etcd registration", () => {
  test(
    "puts {addr, weight, zone, version} under {prefix}/pools/{pool}/{leafId} with a lease; stop() removes both",
    async () => {
      const registration = await register({
        pool: "reg",
        leafId: "leaf-1",
        addr: "127.0.0.1:11411",
        weight: 3,
        zone: "zone-a",
        version: "9.8.7",
        leaseTtlSeconds: 7,
      });
      expect(registration.key).toBe(`${PREFIX}/pools/reg/leaf-1`);
      expect(await withDeadline(registration.ready, 5000, "the registration")).toBe(true);
      const leaseId = registration.leaseId();
      expect(leaseId).toBeDefined();

      const response = await client.get(registration.key).exec();
      expect(response.kvs).toHaveLength(1);
      const kv = response.kvs[0];
      expect(JSON.parse(kv?.value.toString() ?? "")).toEqual({
        addr: "127.0.0.1:11411",
        weight: 3,
        zone: "zone-a",
        version: "9.8.7",
      });
      expect(kv?.lease).toBe(leaseId as string);
      const ttl = await client.leaseClient.leaseTimeToLive({ ID: leaseId as string, keys: true });
      expect(ttl.grantedTTL).toBe("7");
      expect(Number(ttl.TTL)).toBeGreaterThan(0);
      expect(ttl.keys.map((key) => key.toString())).toEqual([registration.key]);

      await registration.stop();
      expect(registration.leaseId()).toBeUndefined();
      expect((await client.get(registration.key).exec()).kvs).toHaveLength(0);
      expect((await client.leaseClient.leaseTimeToLive({ ID: leaseId as string })).TTL).toBe("-1");
    },
    SERVER_TEST_MS,
  );

  test("stop() leaves alone a key that another registration of the same leaf id took over", async () => {
    const first = await register({ pool: "takeover", leafId: "leaf-1", addr: "127.0.0.1:1001" });
    await withDeadline(first.ready, 5000, "the first registration");
    const second = await register({ pool: "takeover", leafId: "leaf-1", addr: "127.0.0.1:1002" });
    await withDeadline(second.ready, 5000, "the second registration");
    await first.stop();
    expect(await leaseOf(second.key)).toBe(second.leaseId() as string);
    expect(JSON.parse((await client.get(second.key).string()) ?? "").addr).toBe("127.0.0.1:1002");
  });

  test("options that can never work are refused at once", async () => {
    const base = {
      endpoints: ["http://127.0.0.1:1"],
      prefix: PREFIX,
      pool: "p",
      leafId: "l",
      addr: "127.0.0.1:1",
      weight: 1,
      version: "1",
      leaseTtlSeconds: 1,
    };
    await expect(registerLeaf({ ...base, leafId: "a/b" })).rejects.toThrow("leaf id");
    await expect(registerLeaf({ ...base, addr: "nohost" })).rejects.toThrow("addr");
    await expect(registerLeaf({ ...base, weight: 0 })).rejects.toThrow("weight");
    await expect(registerLeaf({ ...base, leaseTtlSeconds: 0.5 })).rejects.toThrow("leaseTtlSeconds");
  });
});

describe("etcd membership", () => {
  test(
    "loads the pool's members, then sees a join and a leave within 2 s each",
    async () => {
      const early = await register({ pool: "watch", leafId: "b-early", addr: "127.0.0.1:2001", zone: "z1" });
      await withDeadline(early.ready, 5000, "the early registration");
      const other = await register({ pool: "watch-other", leafId: "elsewhere" }); // another pool: never listed
      await withDeadline(other.ready, 5000, "the other pool's registration");

      const membership = watch({ pool: "watch" });
      const changes: (readonly Member[])[] = [];
      membership.onChange((members) => changes.push(members));
      await withDeadline(membership.start(), 5000, "the first load");
      expect(membership.current()).toEqual([
        { id: "b-early", addr: "127.0.0.1:2001", weight: 1, zone: "z1", version: "0.1.0" },
      ]);

      let started = performance.now();
      const joined = await register({ pool: "watch", leafId: "a-joiner", addr: "127.0.0.1:2002", weight: 2 });
      await membersWhen(membership, idsAre("a-joiner", "b-early"), CHANGE_DEADLINE_MS, "the join");
      expect(performance.now() - started).toBeLessThan(CHANGE_DEADLINE_MS);
      expect(membership.current()[0]).toEqual({
        id: "a-joiner",
        addr: "127.0.0.1:2002",
        weight: 2,
        version: "0.1.0",
      });

      started = performance.now();
      await early.stop();
      await membersWhen(membership, idsAre("a-joiner"), CHANGE_DEADLINE_MS, "the leave");
      expect(performance.now() - started).toBeLessThan(CHANGE_DEADLINE_MS);

      // Every change was reported once, as the whole list.
      expect(changes.map(ids)).toEqual([["b-early"], ["a-joiner", "b-early"], ["a-joiner"]]);
      await joined.stop();
      await membersWhen(membership, idsAre(), CHANGE_DEADLINE_MS, "the last leave");
    },
    SERVER_TEST_MS,
  );

  test("ignores a value that is not a registration, with one log line", async () => {
    const bad = memberKey(PREFIX, "invalid", "bad");
    await client.put(bad).value("{not json");
    await client.put(memberKey(PREFIX, "invalid", "no-addr")).value(JSON.stringify({ weight: 1 }));
    const logs = logCollector();
    const membership = watch({ pool: "invalid", log: logs.log });
    await withDeadline(membership.start(), 5000, "the first load");
    expect(membership.current()).toEqual([]);
    expect(logs.lines).toHaveLength(2);
    expect(logs.count(/ignoring \/gravity-test\/pools\/invalid\/bad: value is not JSON$/)).toBe(1);
    expect(logs.count(/no-addr: addr: expected "host:port"$/)).toBe(1);

    // A valid member arriving later: the invalid ones stay out and are not logged again.
    await client.put(memberKey(PREFIX, "invalid", "good")).value(JSON.stringify({ addr: "127.0.0.1:3001" }));
    await membersWhen(membership, idsAre("good"), CHANGE_DEADLINE_MS, "the valid member");
    expect(membership.current()[0]).toEqual({ id: "good", addr: "127.0.0.1:3001", weight: 1 });
    expect(logs.lines).toHaveLength(2);

    // A member whose value turns invalid leaves the pool (logged once), and comes back when fixed.
    await client
      .put(memberKey(PREFIX, "invalid", "good"))
      .value(JSON.stringify({ addr: "127.0.0.1:3001", weight: -1 }));
    await membersWhen(membership, idsAre(), CHANGE_DEADLINE_MS, "the member with a bad weight to leave");
    expect(logs.count(/good: weight: expected a positive integer$/)).toBe(1);
    await client.put(memberKey(PREFIX, "invalid", "good")).value(JSON.stringify({ addr: "127.0.0.1:3001" }));
    await membersWhen(membership, idsAre("good"), CHANGE_DEADLINE_MS, "the fixed member");
    expect(logs.lines).toHaveLength(3);
  });

  test(
    "a leaf that dies without stop() leaves when its lease expires",
    async () => {
      const ttlSeconds = 2;
      const membership = watch({ pool: "expiry" });
      await withDeadline(membership.start(), 5000, "the first load");
      const registration = resolve(import.meta.dir, "../src/discovery/etcd-registration.ts");
      const options: LeafRegistrationOptions = {
        endpoints: [etcd.clientUrl],
        prefix: PREFIX,
        pool: "expiry",
        leafId: "doomed",
        addr: "127.0.0.1:4001",
        weight: 1,
        version: "0.1.0",
        leaseTtlSeconds: ttlSeconds,
      };
      const code = `
        const { registerLeaf } = await import(${JSON.stringify(registration)});
        const handle = await registerLeaf(${JSON.stringify(options)});
        if (await handle.ready) console.log("registered " + handle.leaseId());
        setInterval(() => {}, 60_000);
      `;
      const child = Bun.spawn([process.execPath, "-e", code], { stdout: "pipe", stderr: "pipe" });
      cleanups.push(async () => {
        child.kill("SIGKILL");
        await child.exited;
      });
      const reader = child.stdout.getReader();
      const { value } = await withDeadline(reader.read(), 10_000, "the child's registration");
      const leaseId = /^registered (\d+)/.exec(new TextDecoder().decode(value))?.[1];
      expect(leaseId).toBeDefined();
      await membersWhen(membership, idsAre("doomed"), CHANGE_DEADLINE_MS, "the child leaf to join");

      child.kill("SIGKILL");
      await child.exited;
      const killed = performance.now();
      // Still registered right after the death: only the lease's expiry removes it.
      expect(await leaseOf(memberKey(PREFIX, "expiry", "doomed"))).toBe(leaseId as string);
      await membersWhen(membership, idsAre(), ttlSeconds * 1000 + CHANGE_DEADLINE_MS, "the lease to expire");
      // The last keep-alive was at most TTL/3 before the kill.
      expect(performance.now() - killed).toBeGreaterThan(((ttlSeconds * 2) / 3) * 1000 - 100);
    },
    SERVER_TEST_MS,
  );

  test(
    "a leaf whose lease was revoked under it registers again, and the watcher sees it again",
    async () => {
      const logs = logCollector();
      const membership = watch({ pool: "revoked" });
      await withDeadline(membership.start(), 5000, "the first load");
      const registration = await register({
        pool: "revoked",
        leafId: "phoenix",
        leaseTtlSeconds: 3,
        log: logs.log,
      });
      await withDeadline(registration.ready, 5000, "the registration");
      await membersWhen(membership, idsAre("phoenix"), CHANGE_DEADLINE_MS, "the join");
      const oldLease = registration.leaseId() as string;

      await client.leaseClient.leaseRevoke({ ID: oldLease });
      await membersWhen(membership, idsAre(), CHANGE_DEADLINE_MS, "the revoked leaf to leave");
      // The next keep-alive (every TTL/3) learns the lease is gone.
      await logs.waitFor(/registered again/, 3000 + CHANGE_DEADLINE_MS);
      await membersWhen(membership, idsAre("phoenix"), CHANGE_DEADLINE_MS, "the leaf to come back");
      const newLease = registration.leaseId();
      expect(newLease).toBeDefined();
      expect(newLease).not.toBe(oldLease);
      expect(await leaseOf(registration.key)).toBe(newLease as string);
      expect(logs.count(/is not registered/)).toBe(1);
      // Lines carry no prefix of their own: the CLI adds "gravity leaf: etcd: " once.
      expect(logs.lines.filter((line) => /gravity: |^etcd: /.test(line))).toEqual([]);
    },
    SERVER_TEST_MS,
  );
});

describe("etcd outages", () => {
  test("etcd stopped and restarted: the watcher keeps its list, logs once and resyncs; a lost lease re-registers", async () => {
    const own = await startEtcd();
    const ownClient = await createEtcdClient({ endpoints: [own.clientUrl] });
    cleanups.push(async () => ownClient.close());
    const watchLog = logCollector();
    const membership = new EtcdMembership({
      endpoints: [own.clientUrl],
      prefix: PREFIX,
      pool: "outage",
      log: watchLog.log,
    });
    cleanups.push(() => membership.stop());
    await withDeadline(membership.start(), 5000, "the first load");
    const leafOptions = {
      endpoints: [own.clientUrl],
      prefix: PREFIX,
      pool: "outage",
      weight: 1,
      version: "1",
    };
    const shortLog = logCollector();
    // TTL 1 s: the client declares the lease lost after 2 x TTL without a keep-alive.
    const short = await registerLeaf({
      ...leafOptions,
      leafId: "short",
      addr: "127.0.0.1:5001",
      leaseTtlSeconds: 1,
      log: shortLog.log,
    });
    cleanups.push(() => short.stop());
    const long = await registerLeaf({
      ...leafOptions,
      leafId: "long",
      addr: "127.0.0.1:5002",
      leaseTtlSeconds: 60,
      log: () => {},
    });
    cleanups.push(() => long.stop());
    await withDeadline(Promise.all([short.ready, long.ready]), 5000, "both registrations");
    await membersWhen(membership, idsAre("long", "short"), CHANGE_DEADLINE_MS, "both leaves");
    const shortLease = short.leaseId() as string;

    await own.stop();
    await watchLog.waitFor(/pool outage unreachable .*keeping its last 2 members and reconnecting/, 5000);
    // The outage lasts at least until the short lease is lost; the watcher retries meanwhile.
    await shortLog.waitFor(/short is not registered/, 10_000);
    expect(short.leaseId()).toBeUndefined();
    expect(ids(membership.current())).toEqual(["long", "short"]);
    expect(watchLog.count(/unreachable/)).toBe(1);

    await own.restart();
    await watchLog.waitFor(/pool outage reconnected and resynced: 2 members/, 10_000);
    await shortLog.waitFor(/short registered again/, 10_000);
    const newLease = short.leaseId();
    expect(newLease).toBeDefined();
    expect(newLease).not.toBe(shortLease);
    expect(watchLog.count(/unreachable/)).toBe(1);
    expect(shortLog.count(/is not registered/)).toBe(1);

    // The key now lives under the new lease: revoking the old one (etcd restored it on restart)
    // must not remove it. A sentinel put after the revoke is a barrier: watch events arrive in
    // revision order, so had the revoke deleted the key, the watcher would see that first.
    expect(await withDeadline(ownClient.get(short.key).exec(), 5000, "get")).toMatchObject({
      kvs: [{ lease: newLease }],
    });
    await ownClient.leaseClient.leaseRevoke({ ID: shortLease }).catch(() => {}); // may be gone already
    await ownClient
      .put(memberKey(PREFIX, "outage", "sentinel"))
      .value(JSON.stringify({ addr: "127.0.0.1:5003" }));
    await membersWhen(
      membership,
      (members) => ids(members).includes("sentinel"),
      CHANGE_DEADLINE_MS,
      "the sentinel",
    );
    expect(ids(membership.current())).toEqual(["long", "sentinel", "short"]);
  }, 60_000);

  test("etcd restarted empty: the watcher resyncs from the new snapshot and every leaf registers again", async () => {
    const own = await startEtcd();
    const watchLog = logCollector();
    const membership = new EtcdMembership({
      endpoints: [own.clientUrl],
      prefix: PREFIX,
      pool: "amnesia",
      log: watchLog.log,
    });
    cleanups.push(() => membership.stop());
    await withDeadline(membership.start(), 5000, "the first load");
    const leafLog = logCollector();
    const leaf = await registerLeaf({
      endpoints: [own.clientUrl],
      prefix: PREFIX,
      pool: "amnesia",
      leafId: "leaf",
      addr: "127.0.0.1:6001",
      weight: 1,
      version: "1",
      leaseTtlSeconds: 3,
      log: leafLog.log,
    });
    cleanups.push(() => leaf.stop());
    await membersWhen(membership, idsAre("leaf"), 5000, "the leaf");
    // A stray key the restarted etcd will not have: the resync must drop it.
    const stray = await createEtcdClient({ endpoints: [own.clientUrl] });
    await stray.put(memberKey(PREFIX, "amnesia", "stray")).value(JSON.stringify({ addr: "127.0.0.1:6002" }));
    stray.close();
    await membersWhen(membership, idsAre("leaf", "stray"), CHANGE_DEADLINE_MS, "the stray key");

    await own.stop();
    await watchLog.waitFor(/unreachable/, 5000);
    await own.restart({ wipe: true });
    // The new etcd starts at revision 1: a watch resumed from the old revision would wait for
    // revisions that may never come; the snapshot shows the truth at once.
    await watchLog.waitFor(/reconnected and resynced/, 10_000);
    await leafLog.waitFor(/registered again/, 10_000);
    await membersWhen(membership, idsAre("leaf"), CHANGE_DEADLINE_MS, "only the re-registered leaf");
    expect(watchLog.count(/unreachable/)).toBe(1);
  }, 60_000);
});

test("keys live under {prefix}/pools/{pool}/ whatever the prefix's trailing slashes", () => {
  expect(poolKeyPrefix("/gravity/", "main")).toBe("/gravity/pools/main/");
  expect(memberKey("/gravity", "main", "leaf-1")).toBe("/gravity/pools/main/leaf-1");
});
