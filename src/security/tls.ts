// TLS material for the listeners that carry cache data (memcached port, HTTP, gRPC): a certificate
// chain and key in PEM, and optionally the CA that client certificates must chain to (mutual TLS).
// Read once at start, so a bad path is a startup error naming the flag, not a failed handshake later.
import { UsageError } from "../errors.ts";
import { type ClientTlsPem, readPemFile, withFlagNames } from "./secret-files.ts";

export interface TlsMaterial {
  /** PEM certificate chain, the server's first. */
  cert: string;
  /** PEM private key. */
  key: string;
  /** PEM CA bundle: when set, clients must present a certificate that chains to it. */
  ca?: string;
}

/** The paths of the TLS files, as the flags give them ("" = not given). */
export interface TlsPaths {
  cert: string;
  key: string;
  ca: string;
}

const TLS_FLAGS: Record<keyof TlsPaths, string> = { cert: "--tls-cert", key: "--tls-key", ca: "--tls-ca" };

/** The files named by --tls-cert, --tls-key and --tls-ca, or null when TLS is off (neither given). */
export function loadTls(paths: TlsPaths): TlsMaterial | null {
  if (paths.cert === "" && paths.key === "") {
    if (paths.ca !== "") throw new UsageError("--tls-ca: needs --tls-cert and --tls-key");
    return null;
  }
  if (paths.cert === "") throw new UsageError("--tls-key: needs --tls-cert");
  if (paths.key === "") throw new UsageError("--tls-cert: needs --tls-key");
  return withFlagNames(TLS_FLAGS, () => {
    const material: TlsMaterial = {
      cert: readPemFile(paths.cert, "cert"),
      key: readPemFile(paths.key, "key"),
    };
    if (paths.ca !== "") material.ca = readPemFile(paths.ca, "ca");
    return material;
  });
}

/** Bun's TLS options (Bun.listen, Bun.serve) for the material: with a CA, client certificates required. */
export function bunTlsOptions(tls: TlsMaterial): {
  cert: string;
  key: string;
  ca?: string;
  requestCert?: boolean;
  rejectUnauthorized?: boolean;
} {
  return {
    cert: tls.cert,
    key: tls.key,
    ...(tls.ca === undefined ? {} : { ca: tls.ca, requestCert: true, rejectUnauthorized: true }),
  };
}

/**
 * TLS towards a server (the router's connections to its leaves): the CA the server's certificate
 * must chain to, optionally a client certificate for servers that require one (mutual TLS), and
 * the name the certificate must carry when it is not the host connected to. PEM text, not paths.
 */
export interface ClientTls extends ClientTlsPem {
  ca: string;
  /** Checked against the server's certificate and sent as SNI; default the host connected to. */
  serverName?: string;
}

/** Bun's TLS options (Bun.connect) for a client: the server's certificate is always verified. */
export function bunClientTlsOptions(tls: ClientTls): {
  ca: string;
  cert?: string;
  key?: string;
  serverName?: string;
  rejectUnauthorized: true;
} {
  return {
    ca: tls.ca,
    ...(tls.cert === undefined || tls.key === undefined ? {} : { cert: tls.cert, key: tls.key }),
    ...(tls.serverName === undefined ? {} : { serverName: tls.serverName }),
    rejectUnauthorized: true,
  };
}

// What a TLS handshake that failed on a certificate says: BoringSSL's library and reason codes in
// Bun ("SSL routines", "SSLV3_ALERT_BAD_CERTIFICATE", "CERTIFICATE_REQUIRED"), and the verifier's
// words in Bun's and Node's tls ("unable to verify the first certificate", "... altnames").
const TLS_REFUSAL = /SSL routines|SSLV3_ALERT|CERTIFICATE|certificate|altnames/;

/**
 * Whether an error message says a TLS handshake was refused on a certificate (ours or the
 * server's) or an alert, which retrying with the same files cannot fix; a reset, a closed socket or
 * a timeout is not one.
 */
export function isTlsRefusal(message: string): boolean {
  return TLS_REFUSAL.test(message);
}
