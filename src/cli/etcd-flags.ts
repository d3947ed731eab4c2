// `gravity leaf --etcd URL[,URL] --pool NAME`: registering the leaf in etcd for routers whose
// pool says `discovery: etcd`, over TLS and as an etcd user when the --etcd-* flags say so.
import { type EtcdAccess, type EtcdAccessField, loadEtcdAccess } from "../discovery/etcd-access.ts";
import { checkEtcdAccess, ETCD_CALL_TIMEOUT_MS, parseEtcdEndpoints } from "../discovery/etcd-client.ts";
import { poolKeyPrefix } from "../discovery/etcd-keys.ts";
import { type LeafRegistration, registerLeaf } from "../discovery/etcd-registration.ts";
import { GravityError, UsageError } from "../errors.ts";
import { withFlagNames } from "../security/secret-files.ts";
import { VERSION } from "../version.ts";
import { FlagKind, type FlagSpec, type FlagValues } from "./args.ts";
import { credentialFlagValues, refuseWithout } from "./credential-flags.ts";

export const ETCD_FLAGS: readonly FlagSpec[] = [
  { name: "etcd", kind: FlagKind.String, default: "", help: "register in etcd: URL[,URL] (needs --pool)" },
  { name: "pool", kind: FlagKind.String, default: "", help: "the router pool this leaf joins (with --etcd)" },
  {
    name: "etcd-ca",
    kind: FlagKind.String,
    default: "",
    help: "PEM CA bundle that etcd's certificate must chain to (https:// endpoints; default: system roots)",
  },
  {
    name: "etcd-cert",
    kind: FlagKind.String,
    default: "",
    help: "PEM client certificate for etcd's --client-cert-auth (with --etcd-key)",
  },
  { name: "etcd-key", kind: FlagKind.String, default: "", help: "PEM private key of --etcd-cert" },
  {
    name: "etcd-user",
    kind: FlagKind.String,
    default: "",
    help: "etcd user (RBAC; with --etcd-password-file)",
  },
  {
    name: "etcd-password-file",
    kind: FlagKind.String,
    default: "",
    help: "file whose first line is --etcd-user's password",
  },
  {
    name: "etcd-prefix",
    kind: FlagKind.String,
    default: "/gravity",
    help: "etcd key prefix (as the router's etcd.prefix)",
  },
  {
    name: "leaf-id",
    kind: FlagKind.String,
    default: "",
    help: "id in the pool (default: the advertised address)",
  },
  {
    name: "advertise",
    kind: FlagKind.String,
    default: "",
    help: "host:port routers connect to (default: --listen and the port)",
  },
  {
    name: "weight",
    kind: FlagKind.Integer,
    default: 1,
    min: 1,
    max: 65_535,
    help: "share of the pool's keys (ketama weight)",
  },
  { name: "zone", kind: FlagKind.String, default: "", help: "zone label stored with the registration" },
  {
    name: "lease-ttl",
    kind: FlagKind.Integer,
    default: 10,
    min: 1,
    max: 3600,
    help: "seconds a leaf that dies unannounced stays registered",
  },
];

const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "[::]"]);

/** Without --etcd, refuses the flags that mean something only with it (UsageError); run before starting. */
export function checkEtcdFlags(flags: FlagValues): void {
  if (flags.etcd !== "") return;
  if (flags.pool !== "") throw new UsageError("--pool: only with --etcd (the pool to register in)");
  refuseWithout(flags, ACCESS_FLAGS, "endpoints");
}

/** Registers the leaf when --etcd is given (flags checked first: a bad one is a UsageError). */
export async function registerFromFlags(
  flags: FlagValues,
  listen: string,
  port: number,
): Promise<LeafRegistration | null> {
  checkEtcdFlags(flags);
  const etcd = flags.etcd as string;
  if (etcd === "") return null;
  const pool = flags.pool as string;
  if (pool === "") throw new UsageError("--pool: required with --etcd (the router pool this leaf joins)");
  const access = etcdAccessFromFlags(flags);
  let addr = flags.advertise as string;
  if (addr === "") {
    if (WILDCARD_HOSTS.has(listen)) {
      throw new UsageError(
        `--advertise: required when --listen is ${listen} (routers need an address to connect to)`,
      );
    }
    addr = listen.includes(":") ? `[${listen}]:${port}` : `${listen}:${port}`;
  }
  const leafId = (flags["leaf-id"] as string) || addr;
  const prefix = flags["etcd-prefix"] as string;
  // A certificate or user that etcd refuses ends the start here (an etcd that is down does not).
  await checkEtcdAccess(access, poolKeyPrefix(prefix, pool), ETCD_CALL_TIMEOUT_MS);
  try {
    const registration = await registerLeaf({
      ...access,
      prefix,
      pool,
      leafId,
      addr,
      weight: flags.weight as number,
      ...((flags.zone as string) === "" ? {} : { zone: flags.zone as string }),
      version: VERSION,
      leaseTtlSeconds: flags["lease-ttl"] as number,
      log: (line) => console.error(`gravity leaf: etcd: ${line}`),
    });
    console.log(`gravity leaf: registering in etcd as ${registration.key} (${addr})`);
    return registration;
  } catch (error) {
    if (error instanceof TypeError) throw new UsageError(`--etcd/--pool/--leaf-id: ${error.message}`);
    throw new GravityError("EETCD", `cannot register in etcd: ${(error as Error).message}`, { cause: error });
  }
}

const ACCESS_FLAGS: Record<EtcdAccessField, string> = {
  endpoints: "--etcd",
  ca: "--etcd-ca",
  cert: "--etcd-cert",
  key: "--etcd-key",
  username: "--etcd-user",
  passwordFile: "--etcd-password-file",
};

/** The endpoints and credentials the --etcd* flags name; a bad one is a UsageError naming its flag. */
function etcdAccessFromFlags(flags: FlagValues): EtcdAccess {
  let endpoints: string[];
  try {
    endpoints = parseEtcdEndpoints(flags.etcd as string);
  } catch (error) {
    throw new UsageError(`--etcd: ${(error as Error).message}`);
  }
  return withFlagNames(ACCESS_FLAGS, () =>
    loadEtcdAccess({ endpoints, ...credentialFlagValues(flags, ACCESS_FLAGS, "endpoints") }),
  );
}
