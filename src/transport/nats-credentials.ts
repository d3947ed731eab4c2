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
  CredentialError,
  readCredentialFile,
  readPemFile,
  readSecretFile,
} from "../security/secret-files.ts";

/** The files read; plain data, so a router's configuration carries it to its worker threads. */
export interface NatsCredentials {
  /** Set when TLS is on. */
  tls?: {
    /** PEM CA bundle the server's certificate must chain to; undefined: the system's roots. */
    ca?: string;
    /** PEM client certificate chain and key, for servers whose tls block says `verify: true`. */
    cert?: string;
    key?: string;
  };
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

const given = (value: string | undefined): value is string => value !== undefined && value !== "";

/**
 * Reads the files and checks the combination (see the table above). Throws CredentialError whose
 * `field` is the option at fault; its message names paths, never a file's contents.
 */
export function loadNatsCredentials(files: NatsCredentialFiles): NatsCredentials {
  const credentials: NatsCredentials = {};
  if (given(files.cert) !== given(files.key))
    throw new CredentialError(
      given(files.cert) ? "cert" : "key",
      given(files.cert) ? "needs the client key too" : "needs the client certificate too",
    );
  const tlsScheme = files.servers.some((server) => /^tls:\/\//i.test(server));
  if (tlsScheme || given(files.ca) || given(files.cert)) {
    credentials.tls = {};
    if (given(files.ca)) credentials.tls.ca = readPemFile(files.ca, "ca");
    if (given(files.cert) && given(files.key)) {
      credentials.tls.cert = readPemFile(files.cert, "cert");
      credentials.tls.key = readPemFile(files.key, "key");
    }
  }
  if (given(files.user) !== given(files.passwordFile))
    throw new CredentialError(
      given(files.user) ? "user" : "passwordFile",
      given(files.user) ? "needs a password file too" : "needs a user too",
    );
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
