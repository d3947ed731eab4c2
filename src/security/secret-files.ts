// Reading the files that hold credentials for the connections gravity makes (etcd, NATS): PEM
// certificates and keys, passwords, tokens, NATS seeds and .creds files. A file is read once, when
// its flag or config field is taken; what goes wrong names the flag or field and the path, never
// the file's contents.
import { readFileSync } from "node:fs";
import { GravityError, UsageError } from "../errors.ts";

/**
 * A credential setting that cannot work; `field` is the option's name in its loader's terms, the
 * one given. `missing`, when set, names the option that must be given with it (requireBoth): a
 * flag's error names the flag typed, a config's the field to add.
 */
export class CredentialError extends GravityError {
  readonly field: string;
  readonly missing: string | undefined;

  constructor(field: string, message: string, missing?: string) {
    super("ECREDENTIAL", message);
    this.name = "CredentialError";
    this.field = field;
    this.missing = missing;
  }
}

/**
 * Runs `load`; a CredentialError becomes a UsageError naming the flag that `flagOf` maps its field
 * to (for loaders called with command-line flags: the user typed a flag, not a field).
 */
export function withFlagNames<Field extends string, T>(flagOf: Record<Field, string>, load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (error instanceof CredentialError)
      throw new UsageError(`${flagOf[error.field as Field]}: ${error.message}`);
    throw error;
  }
}

function readText(path: string, field: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new CredentialError(field, `cannot read ${JSON.stringify(path)} (${reason})`);
  }
}

/** The PEM text of `path` (a certificate bundle or a key). */
export function readPemFile(path: string, field: string): string {
  const text = readText(path, field);
  if (!text.includes("-----BEGIN "))
    throw new CredentialError(field, `${JSON.stringify(path)} is not a PEM file`);
  return text;
}

/**
 * A password or token from `path`: the first line, without its line ending (as `kubectl create
 * secret --from-file` and `echo secret > file` both leave it). An empty first line is an error.
 */
export function readSecretFile(path: string, field: string): string {
  const secret = readText(path, field).split(/\r?\n/, 1)[0] ?? "";
  if (secret === "") throw new CredentialError(field, `${JSON.stringify(path)} is empty`);
  return secret;
}

/** The whole text of `path` (a NATS .creds file or NKey seed file), which must not be empty. */
export function readCredentialFile(path: string, field: string): string {
  const text = readText(path, field);
  if (text.trim() === "") throw new CredentialError(field, `${JSON.stringify(path)} is empty`);
  return text;
}

/** Whether an optional path or name was given ("" and undefined: not given). */
export function isGiven(value: string | undefined): value is string {
  return value !== undefined && value !== "";
}

/**
 * Throws CredentialError unless both or neither of the options `first` and `second` is given:
 * its field is the one given, its `missing` the other, and `what` names each ("needs <what of the
 * other> too").
 */
export function requireBoth<Options extends object>(
  options: Options,
  first: keyof Options & string,
  second: keyof Options & string,
  what: readonly [string, string],
): void {
  const hasFirst = isGiven(options[first] as string | undefined);
  if (hasFirst !== isGiven(options[second] as string | undefined)) {
    const [given, missing] = hasFirst ? [first, second] : [second, first];
    throw new CredentialError(given, `needs ${hasFirst ? what[1] : what[0]} too`, missing);
  }
}

/**
 * PEM material for a TLS client: the CA that verifies the server (default the system's roots) and
 * a client certificate for servers that require one. security/tls.ts's ClientTls extends it.
 */
export interface ClientTlsPem {
  ca?: string;
  /** Client certificate chain and its key: both or neither. */
  cert?: string;
  key?: string;
}

/**
 * Reads the TLS files given, under the option names "ca", "cert" and "key" (cert and key both or
 * neither); none given is {}: verify against the system's roots, no client certificate.
 */
export function readClientTlsFiles(files: { ca?: string; cert?: string; key?: string }): ClientTlsPem {
  requireBoth(files, "cert", "key", ["the client certificate", "the client key"]);
  const pem: ClientTlsPem = {};
  if (isGiven(files.ca)) pem.ca = readPemFile(files.ca, "ca");
  if (isGiven(files.cert) && isGiven(files.key)) {
    pem.cert = readPemFile(files.cert, "cert");
    pem.key = readPemFile(files.key, "key");
  }
  return pem;
}
