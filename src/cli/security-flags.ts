// The TLS and bearer-token flags shared by `gravity leaf` and `gravity router`.

import type { SaslPasswords } from "../protocol/sasl-plain.ts";
import { exposureWarning } from "../security/exposure.ts";
import { loadTls, type TlsMaterial } from "../security/tls.ts";
import { BearerTokens } from "../security/tokens.ts";
import { FlagKind, type FlagSpec, type FlagValues } from "./args.ts";
import { readSaslFile } from "./sasl-flag.ts";

export const SECURITY_FLAGS: readonly FlagSpec[] = [
  {
    name: "tls-cert",
    kind: FlagKind.String,
    default: "",
    help: "PEM certificate chain: TLS on the HTTP and gRPC ports",
  },
  { name: "tls-key", kind: FlagKind.String, default: "", help: "PEM private key of --tls-cert" },
  {
    name: "tls-ca",
    kind: FlagKind.String,
    default: "",
    help: "PEM CA bundle: clients must present a certificate it signed (mutual TLS)",
  },
  {
    name: "auth-file",
    kind: FlagKind.String,
    default: "",
    short: "Y",
    help: "memcached's -Y: user:password lines; a client's first command must be `set` with \"user password\" as its data",
  },
  {
    name: "auth-token-file",
    kind: FlagKind.String,
    default: "",
    help: "bearer tokens, one per line, required by the HTTP cache API, /metrics and gRPC (not the probes)",
  },
];

export interface Security {
  tls: TlsMaterial | null;
  tokens: BearerTokens | null;
  /** memcached's text authentication on the memcached port: user -> password. */
  authPasswords: SaslPasswords | null;
}

/** Reads the files the flags name; a missing or bad one is a UsageError naming its flag. */
export function securityFromFlags(flags: FlagValues): Security {
  const tls = loadTls({
    cert: flags["tls-cert"] as string,
    key: flags["tls-key"] as string,
    ca: flags["tls-ca"] as string,
  });
  const tokenFile = flags["auth-token-file"] as string;
  const authFile = flags["auth-file"] as string;
  return {
    tls,
    tokens: tokenFile === "" ? null : BearerTokens.fromFile(tokenFile),
    authPasswords: readSaslFile(authFile, "--auth-file") ?? null,
  };
}

/**
 * Says how the memcached port of `role` on `host` is protected: a line when it speaks TLS only, and
 * a warning when other machines can reach it with neither TLS nor authentication (`authenticated`:
 * SASL or --auth-file is on).
 */
export function announceMemcachedPort(
  role: string,
  host: string,
  security: Security,
  authenticated: boolean,
): void {
  if (security.tls !== null) {
    const mutual = security.tls.ca === undefined ? "" : " (client certificates required)";
    console.log(`gravity ${role}: memcached protocol over TLS only${mutual}`);
  }
  const exposed = exposureWarning(role, "the memcached port", host, security.tls !== null || authenticated);
  if (exposed !== null) console.warn(exposed);
}
