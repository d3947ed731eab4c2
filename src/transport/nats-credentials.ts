// What a NATS connection presents and verifies, as nats.js supports it: TLS (the CA that verifies
// the server, a client certificate for servers with `verify: true`) and one way to authenticate:
// user and password, a token, an NKey seed, or a .creds file (JWT + seed, NATS's decentralized
// auth). The leaf's --nats-* flags and the router's `nats:` section both name files;
// loadNatsCredentials reads them once and checks that the combination can work.
//
//   TLS         on when a server is tls://host:port or ca/cert is given (then for every server)
//   cert + key  both or neither
//   user + passwordFile | tokenFile | nkeyFile | credsFile    at most one of these
import { type ConnectionOptions, credsAuthenticator, nkeyAuthenticator, nkeys } from "nats";
import {
  type ClientTlsPem,
  CredentialError,
  isGiven as given,
  readClientTlsFiles,
  readCredentialFile,
  readSecretFile,
  requireBoth,
} from "../security/secret-files.ts";

/** The files read; plain data, so a router's configuration carries it to its worker threads. */
export interface NatsCredentials {
  /**
   * Set when TLS is on: the CA the server's certificate must chain to (undefined: the system's
   * roots) and the client certificate for servers whose tls block says `verify: true`.
   */
  tls?: ClientTlsPem;
  user?: { name: string; password: string };
  token?: string;
  /** An NKey user seed ("SU..."). */
  nkeySeed?: string;
  /** The text of a .creds file (a user JWT and its seed). */
  creds?: string;
}

/** The option names of loadNatsCredentials; the CLI and the config schema map them to flags and fields. */
export type NatsCredentialField =
  | "servers"
  | "ca"
  | "cert"
  | "key"
  | "user"
  | "passwordFile"
  | "tokenFile"
  | "nkeyFile"
  | "credsFile";

/** Paths as given ("" or undefined = not given). */
export type NatsCredentialFiles = { servers: readonly string[] } & Partial<
  Record<Exclude<NatsCredentialField, "servers">, string>
>;

/**
 * Reads the files and checks the combination (see the table above). Throws CredentialError whose
 * `field` is the option at fault; its message names paths, never a file's contents.
 */
export function loadNatsCredentials(files: NatsCredentialFiles): NatsCredentials {
  const credentials: NatsCredentials = {};
  const tls = readClientTlsFiles(files);
  const tlsScheme = files.servers.some((server) => /^tls:\/\//i.test(server));
  if (tlsScheme || tls.ca !== undefined || tls.cert !== undefined) credentials.tls = tls;
  requireBoth(files, "user", "passwordFile", ["a user", "a password file"]);
  const ways = (["passwordFile", "tokenFile", "nkeyFile", "credsFile"] as const).filter((field) =>
    given(files[field]),
  );
  if (ways.length > 1)
    throw new CredentialError(ways[1] as string, `only one way to authenticate (${ways.join(" or ")})`);
  if (given(files.user) && given(files.passwordFile))
    credentials.user = { name: files.user, password: readSecretFile(files.passwordFile, "passwordFile") };
  if (given(files.tokenFile)) credentials.token = readSecretFile(files.tokenFile, "tokenFile");
  if (given(files.nkeyFile)) {
    const seed = readSecretFile(files.nkeyFile, "nkeyFile").trim();
    if (!isUserSeed(seed))
      throw new CredentialError(
        "nkeyFile",
        `${JSON.stringify(files.nkeyFile)} holds no NKey user seed (SU...)`,
      );
    credentials.nkeySeed = seed;
  }
  if (given(files.credsFile)) {
    const creds = readCredentialFile(files.credsFile, "credsFile");
    if (!/-----BEGIN NATS USER JWT-----/.test(creds) || !/-----BEGIN USER NKEY SEED-----/.test(creds))
      throw new CredentialError(
        "credsFile",
        `${JSON.stringify(files.credsFile)} is not a .creds file (a user JWT and an NKey seed)`,
      );
    credentials.creds = creds;
  }
  return credentials;
}

function isUserSeed(seed: string): boolean {
  if (!seed.startsWith("SU")) return false;
  try {
    nkeys.fromSeed(new TextEncoder().encode(seed));
    return true;
  } catch {
    return false;
  }
}

/** nats.js connect() options for `credentials`. */
export function natsConnectionOptions(credentials: NatsCredentials): Partial<ConnectionOptions> {
  const options: Partial<ConnectionOptions> = {};
  if (credentials.tls !== undefined) options.tls = { ...credentials.tls };
  if (credentials.user !== undefined) {
    options.user = credentials.user.name;
    options.pass = credentials.user.password;
  }
  if (credentials.token !== undefined) options.token = credentials.token;
  const encoder = new TextEncoder();
  if (credentials.nkeySeed !== undefined)
    options.authenticator = nkeyAuthenticator(encoder.encode(credentials.nkeySeed));
  if (credentials.creds !== undefined)
    options.authenticator = credsAuthenticator(encoder.encode(credentials.creds));
  return options;
}
