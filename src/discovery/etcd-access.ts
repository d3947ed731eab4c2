// How gravity reaches etcd: the endpoints, TLS (the CA that verifies etcd's certificate and the
// client certificate for etcd's --client-cert-auth) and a user of etcd's RBAC. The leaf's flags
// and the router's `etcd:` section both name files; loadEtcdAccess reads them once and checks that
// the combination can work, naming the option that cannot.
//
//   endpoints   all http:// (plain) or all https:// (TLS): etcd3 uses one channel credential
//   ca          https only; without it, https verifies etcd against the system's roots
//   cert + key  both or neither, https only
//   username + passwordFile   both or neither (etcd's Auth.Authenticate, then a token per call)
import {
  type ClientTlsPem,
  CredentialError,
  isGiven as given,
  readClientTlsFiles,
  readSecretFile,
  requireBoth,
} from "../security/secret-files.ts";

/** TLS and RBAC settings with the files already read; plain data, so it can cross threads. */
export interface EtcdAccess {
  /** etcd client URLs ("http(s)://host:port"), see parseEtcdEndpoints. */
  endpoints: readonly string[];
  /**
   * Set when the endpoints are https://: the CA etcd's certificate must chain to (undefined: the
   * system's roots) and the client certificate for etcd's --client-cert-auth.
   */
  tls?: ClientTlsPem;
  /** An etcd user (etcd's RBAC, `etcdctl user add`). */
  auth?: { username: string; password: string };
}

/** The option names of loadEtcdAccess; the CLI and the config schema map them to flags and fields. */
export type EtcdAccessField = "endpoints" | "ca" | "cert" | "key" | "username" | "passwordFile";

/** Paths as given ("" or undefined = not given). */
export interface EtcdAccessFiles {
  endpoints: readonly string[];
  ca?: string;
  cert?: string;
  key?: string;
  username?: string;
  passwordFile?: string;
}

/**
 * Reads the files and checks the combination (see the table above). Throws CredentialError whose
 * `field` is the option at fault; its message names paths, never a file's contents.
 */
export function loadEtcdAccess(files: EtcdAccessFiles): EtcdAccess {
  const secure = files.endpoints.filter((endpoint) => endpoint.startsWith("https://")).length;
  if (secure !== 0 && secure !== files.endpoints.length)
    throw new CredentialError(
      "endpoints",
      "all https:// or all http:// (one TLS setting serves every endpoint)",
    );
  const access: EtcdAccess = { endpoints: files.endpoints };
  const tlsField = given(files.ca) ? "ca" : given(files.cert) ? "cert" : given(files.key) ? "key" : undefined;
  if (tlsField !== undefined && secure === 0)
    throw new CredentialError(tlsField, "needs https:// etcd endpoints (TLS)");
  const tls = readClientTlsFiles(files);
  if (secure !== 0) access.tls = tls;
  requireBoth(files, "username", "passwordFile", ["a user name", "a password file"]);
  if (given(files.username) && given(files.passwordFile))
    access.auth = { username: files.username, password: readSecretFile(files.passwordFile, "passwordFile") };
  return access;
}
