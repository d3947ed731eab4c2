// `gravity leaf --nats URL[,URL] --nats-pool NAME`: serving the leaf over NATS request/reply for
// router pools with `transport: nats`, over TLS and authenticated when the --nats-* flags say so.
import { UsageError } from "../errors.ts";
import { serveLeafOverNats } from "../leaf/nats-leaf.ts";
import { NativeRequestHandler } from "../leaf/nats-native-handler.ts";
import { withFlagNames } from "../security/secret-files.ts";
import {
  loadNatsCredentials,
  type NatsCredentialField,
  type NatsCredentials,
} from "../transport/nats-credentials.ts";
import { describeNatsStatus, NatsLink } from "../transport/nats-link.ts";
import { FlagKind, type FlagSpec, type FlagValues } from "./args.ts";
import { credentialFlagValues, refuseWithout } from "./credential-flags.ts";

export const NATS_FLAGS: readonly FlagSpec[] = [
  {
    name: "nats",
    kind: FlagKind.String,
    default: "",
    help: "serve over NATS too: URL[,URL] (needs --nats-pool)",
  },
  {
    name: "nats-pool",
    kind: FlagKind.String,
    default: "",
    help: "the router pool (transport: nats) this leaf serves",
  },
  { name: "nats-leaf-id", kind: FlagKind.String, default: "", help: "id in that pool (default: host:port)" },
  {
    name: "nats-prefix",
    kind: FlagKind.String,
    default: "gravity",
    help: "subject prefix (as the router's nats.prefix)",
  },
  {
    name: "nats-ca",
    kind: FlagKind.String,
    default: "",
    help: "PEM CA bundle that the NATS server's certificate must chain to (turns TLS on)",
  },
  {
    name: "nats-cert",
    kind: FlagKind.String,
    default: "",
    help: "PEM client certificate for servers with tls { verify: true } (with --nats-key)",
  },
  { name: "nats-key", kind: FlagKind.String, default: "", help: "PEM private key of --nats-cert" },
  { name: "nats-user", kind: FlagKind.String, default: "", help: "NATS user (with --nats-password-file)" },
  {
    name: "nats-password-file",
    kind: FlagKind.String,
    default: "",
    help: "file whose first line is --nats-user's password",
  },
  {
    name: "nats-token-file",
    kind: FlagKind.String,
    default: "",
    help: "file whose first line is a NATS token",
  },
  {
    name: "nats-nkey-file",
    kind: FlagKind.String,
    default: "",
    help: "file holding an NKey user seed (SU...)",
  },
  { name: "nats-creds", kind: FlagKind.String, default: "", help: "NATS .creds file (user JWT and seed)" },
];

const CREDENTIAL_FLAGS: Record<NatsCredentialField, string> = {
  servers: "--nats",
  ca: "--nats-ca",
  cert: "--nats-cert",
  key: "--nats-key",
  user: "--nats-user",
  passwordFile: "--nats-password-file",
  tokenFile: "--nats-token-file",
  nkeyFile: "--nats-nkey-file",
  credsFile: "--nats-creds",
};

/** The TLS settings and credentials the --nats-* flags name; a bad one is a UsageError naming its flag. */
function natsCredentialsFromFlags(flags: FlagValues, servers: readonly string[]): NatsCredentials {
  return withFlagNames(CREDENTIAL_FLAGS, () =>
    loadNatsCredentials({ servers, ...credentialFlagValues(flags, CREDENTIAL_FLAGS, "servers") }),
  );
}

/** Without --nats, refuses the flags that mean something only with it (UsageError); run before starting. */
export function checkNatsFlags(flags: FlagValues): void {
  if (flags.nats !== "") return;
  if (flags["nats-pool"] !== "") throw new UsageError("--nats-pool: only with --nats");
  refuseWithout(flags, CREDENTIAL_FLAGS, "servers");
}

export interface LeafNats {
  close(): Promise<void>;
}

/** Serves the leaf over NATS when --nats is given; the store is process-global, one handler serves it. */
export async function serveNatsFromFlags(
  flags: FlagValues,
  host: string,
  port: number,
): Promise<LeafNats | null> {
  checkNatsFlags(flags);
  const servers = flags.nats as string;
  const pool = flags["nats-pool"] as string;
  if (servers === "") return null;
  if (pool === "") throw new UsageError("--nats-pool: required with --nats (the pool this leaf serves)");
  const leafId = (flags["nats-leaf-id"] as string) || `${host}:${port}`;
  const serverList = servers.split(",");
  // A server that refuses these credentials ends the start with its reason (one that is down does not).
  const link = await NatsLink.openAccepted({
    servers: serverList,
    name: `gravity-leaf ${leafId}`,
    credentials: natsCredentialsFromFlags(flags, serverList),
    onStatus: (status, server, reason) =>
      console.log(`gravity leaf: ${describeNatsStatus(status, server, reason)}`),
  });
  const handler = new NativeRequestHandler();
  const service = serveLeafOverNats({
    link,
    prefix: flags["nats-prefix"] as string,
    pool,
    leafId,
    handle: (request) => handler.handle(request),
    onError: (error) => console.error(`gravity leaf: nats request failed: ${(error as Error).message}`),
  });
  console.log(`gravity leaf: serving over nats as ${service.subjects.join(", ")}`);
  return {
    async close() {
      await service.close();
      handler.close();
      await link.close();
    },
  };
}
