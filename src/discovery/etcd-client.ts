// The etcd client every discovery module uses: endpoints from a flag, per-call deadlines, and
// reconnection tuned so that a restarted etcd is noticed within about a second.
import { InterceptingCall, type Interceptor } from "@grpc/grpc-js";
import { ConsecutiveBreaker, circuitBreaker, ExponentialBackoff, handleWhen, type IBackoff } from "cockatiel";
import type { Etcd3 } from "etcd3";
import { GravityError } from "../errors.ts";
import { isTlsRefusal } from "../security/tls.ts";
import type { EtcdAccess } from "./etcd-access.ts";
import { loadEtcd3 } from "./etcd3-module.ts";
import { describeError } from "./retry.ts";
import { omitIpServername } from "./tls-ip-servername.ts";

/** How long a unary etcd call (get, put, grant, revoke) may take before it fails, default. */
export const ETCD_CALL_TIMEOUT_MS = 2000;

/**
 * Parses `--etcd URL[,URL]`: each entry is "http(s)://host:port" or "host:port" (then http).
 * Throws a GravityError (code EINVAL) naming the bad entry.
 */
export function parseEtcdEndpoints(text: string): string[] {
  const entries = text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  if (entries.length === 0) throw new GravityError("EINVAL", "etcd endpoints: expected URL[,URL]");
  return entries.map((entry) => {
    const url = /^[a-z]+:\/\//i.test(entry) ? entry : `http://${entry}`;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new GravityError(
        "EINVAL",
        `etcd endpoint ${JSON.stringify(entry)}: expected http(s)://host:port`,
      );
    }
    if (
      (parsed.protocol !== "http:" && parsed.protocol !== "https:") ||
      parsed.port === "" ||
      parsed.pathname !== "/"
    )
      throw new GravityError(
        "EINVAL",
        `etcd endpoint ${JSON.stringify(entry)}: expected http(s)://host:port`,
      );
    return `${parsed.protocol}//${parsed.host}`;
  });
}

/**
 * Marks every call "require a leader", as etcd's Go client does with clientv3.WithRequireLeader:
 * a member cut off from its cluster's quorum then refuses unary calls at once ("etcdserver: no
 * leader") and cancels its open watch and keep-alive streams after a few election timeouts
 * (etcd v3rpc's monitorLeader), instead of serving a watch that can no longer see any change.
 */
const requireLeader: Interceptor = (options, nextCall) =>
  new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set("hasleader", "true"); // etcd's rpctypes.MetadataRequireLeaderKey, MetadataHasLeader
      next(metadata, listener);
    },
  });

/**
 * A client for `access` (endpoints, TLS, user). etcd3's defaults suit long-lived services badly
 * here: its per-host circuit breaker stays open 5 s after three failures and its watch reconnect
 * backoff grows to 30 s, so a restarted etcd would go unnoticed for that long. Unary calls get a
 * deadline; streams (watch, lease keep-alive) get gRPC keepalive pings so a silent partition ends
 * them; every call requires a leader (requireLeader), so a member without quorum ends them too.
 * With a user, etcd3 exchanges the password for a token (Auth.Authenticate) before the first call
 * and again when etcd says the token expired. The first call imports etcd3 (etcd3-module.ts).
 */
export async function createEtcdClient(
  access: EtcdAccess,
  callTimeoutMs = ETCD_CALL_TIMEOUT_MS,
): Promise<Etcd3> {
  const { Etcd3, isRecoverableError } = await loadEtcd3();
  if (access.tls !== undefined) omitIpServername();
  const tls = access.tls;
  return new Etcd3({
    hosts: [...access.endpoints],
    // grpc-js's createSsl: a null root certificate means the system's roots.
    ...(tls === undefined
      ? {}
      : {
          credentials: {
            rootCertificate: (tls.ca === undefined ? null : Buffer.from(tls.ca)) as Buffer,
            ...(tls.cert === undefined || tls.key === undefined
              ? {}
              : { certChain: Buffer.from(tls.cert), privateKey: Buffer.from(tls.key) }),
          },
        }),
    ...(access.auth === undefined
      ? {}
      : {
          // Its Authenticate call takes the deadline of defaultCallOptions below.
          auth: { username: access.auth.username, password: access.auth.password },
        }),
    defaultCallOptions: (context) =>
      context.isStream
        ? { interceptors: [requireLeader] }
        : { deadline: Date.now() + callTimeoutMs, interceptors: [requireLeader] },
    // etcd refuses pings more often than every 5 s (--grpc-keepalive-min-time).
    grpcOptions: { "grpc.keepalive_time_ms": 10_000, "grpc.keepalive_timeout_ms": 5_000 },
    faultHandling: {
      host: () =>
        circuitBreaker(handleWhen(isRecoverableError), {
          halfOpenAfter: 500,
          breaker: new ConsecutiveBreaker(3),
        }),
      // etcd3 types this as an IBackoff but calls next() on it as a factory, as on its own default.
      watchBackoff: new ExponentialBackoff({
        initialDelay: 100,
        maxDelay: 1000,
      }) as unknown as IBackoff<unknown>,
    },
  });
}

/**
 * Whether `error` says etcd refused who we are (a rejected or unverifiable certificate, a wrong
 * user or password, no permission), which retrying cannot fix, as opposed to etcd being unreachable.
 */
function isAccessRefusal(error: unknown, etcd3: Awaited<ReturnType<typeof loadEtcd3>>): boolean {
  return (
    error instanceof etcd3.EtcdAuthenticationFailedError ||
    error instanceof etcd3.EtcdPermissionDeniedError ||
    error instanceof etcd3.EtcdUserNotFoundError ||
    isTlsRefusal(describeError(error)) // in grpc-js's "Last error: ..."
  );
}

/**
 * Checks at start that etcd accepts `access` (TLS, a user): one read of `key` within
 * `deadlineMs`. Throws GravityError (code EETCDACCESS) with etcd's reason when etcd refuses the
 * certificate or the user; resolves when it answers, and also when it cannot be reached (the
 * caller's retry loop then waits for it, as without credentials).
 */
export async function checkEtcdAccess(access: EtcdAccess, key: string, deadlineMs: number): Promise<void> {
  if (access.tls === undefined && access.auth === undefined) return; // nothing etcd could refuse
  const etcd3 = await loadEtcd3();
  const client = await createEtcdClient(access, deadlineMs);
  try {
    await client.get(key).exec();
  } catch (error) {
    if (isAccessRefusal(error, etcd3))
      throw new GravityError(
        "EETCDACCESS",
        `etcd ${access.endpoints.join(",")} refused the connection: ${describeGrpcError(error)}`,
        { cause: error },
      );
  } finally {
    client.close();
  }
}

/**
 * describeError without what grpc-js appends to a failed connection's "Last error": the time it
 * happened and an empty resolution note ("... (2026-01-01T00:00:00.000Z). Resolution note: ").
 */
function describeGrpcError(error: unknown): string {
  return describeError(error).replace(/ \(\d{4}-\d\d-\d\dT[\d:.]+Z\)\. Resolution note:\s*$/, "");
}
